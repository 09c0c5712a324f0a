"""README.md's examples, run as written."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_block(heading: str) -> str:
    """The first Python code block under a README heading."""
    text = README.read_text()
    section = text.split(f"\n{heading}\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


# Keras warns that fit's default shuffle=True is ignored for a tf.data dataset (which shuffles
# itself): kept out of the README's example, which stays as a user would write it.
@pytest.mark.filterwarnings("ignore:`shuffle=True` was passed:UserWarning")
def test_the_sam_model_example_runs_and_learns():
    namespace: dict = {}
    exec(compile(_python_block("## SAMModel in one example"), "README.md", "exec"), namespace)
    model, data = namespace["model"], namespace["data"]
    validation = model.evaluate(data.batches("validation", 128), verbose=0, return_dict=True)
    assert validation["accuracy"] > 0.9  # 98-99 % in 6 epochs, as the README says
