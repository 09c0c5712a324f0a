"""README.md's examples, run as written.

The Python blocks continue one another (the README says so), so they run in
order in one namespace, in an empty working directory, and the test then
checks what each one promises. The command lines of the shell blocks are
parsed by the real CLI, so that a renamed command or option fails here.
"""

import math
import pathlib
import re
import shlex

import click
import pytest

from flatnas_tf.cli.main import main

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _blocks(*languages: str) -> list[str]:
    """The README's fenced code blocks in these languages ("" for a fence without one)."""
    blocks, language, lines = [], None, []
    for line in README.read_text().splitlines():
        if not line.startswith("```"):
            lines.append(line)
        elif language is None:  # an opening fence
            language, lines = line[3:].strip(), []
        else:
            if language in languages:
                blocks.append("\n".join(lines) + "\n")
            language = None
    return blocks


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """The namespace after every Python block of the README ran, in order."""
    workdir = tmp_path_factory.mktemp("readme")
    namespace: dict = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        for number, block in enumerate(_blocks("python"), start=1):
            exec(compile(block, f"README.md, Python block {number}", "exec"), namespace)
    return namespace, workdir


def test_the_sam_model_example_learns(session):
    namespace, _ = session
    model, data = namespace["model"], namespace["data"]
    validation = model.evaluate(data.batches("validation", 128), verbose=0, return_dict=True)
    assert validation["accuracy"] > 0.9  # 98-99 % after its epochs, as the README says


def test_the_flatness_example_measures_r(session):
    namespace, _ = session
    robustness, curve = namespace["robustness"], namespace["curve"]
    assert 0 <= robustness.R < 100 and math.isfinite(robustness.loss_gap)
    assert [point.sigma for point in curve] == [0.01, 0.05, 0.1]
    assert curve[0].R <= curve[-1].R  # more noise, more accuracy lost
    assert len(namespace["history"].history["robustness"]) == 1  # the last epoch


def test_the_subclassing_example_builds_a_sam_model(session):
    namespace, _ = session
    from flatnas_tf import SAMModel

    assert isinstance(namespace["resnet"], SAMModel)
    assert namespace["resnet"].output_shape == (None, 10)


def test_the_ood_example_averages_the_applicable_corruptions(session):
    namespace, _ = session
    ood = namespace["ood"]
    assert "saturate" in ood.skipped  # grey digits: not applicable
    assert 0 < ood.mean_corruption_accuracy < ood.clean_accuracy
    assert "| **mean** |" in ood.to_markdown()


def test_the_search_example_finds_a_front_of_trained_models(session):
    namespace, workdir = session
    result = namespace["result"]
    assert [t.status for t in result.trials] == ["COMPLETED"] * 4
    assert all(result.figures(t)["val_accuracy"] > 0.5 for t in result.front())
    assert namespace["same"] is namespace["chosen"]
    assert (workdir / "models" / "best" / "manifest.json").is_file()
    assert namespace["best"].count_params() > 0


def test_the_regime_and_weight_sharing_examples_learn(session):
    namespace, _ = session
    assert namespace["scores"]["accuracy"] > 0.5
    assert namespace["ws_tuner"].pareto_front()


def _command_lines() -> list[list[str]]:
    """Every `flatnas-tf ...` line of the shell and output blocks, as arguments."""
    lines = []
    for block in _blocks("bash", ""):
        for line in block.splitlines():
            # A command begins a line (after a prompt), or follows "&&" or "...: ".
            found = re.search(r"(?:^(?:\$ )?|&& |: )flatnas-tf (.*)", line)
            if found:
                command = found.group(1).split("  #")[0]
                command = re.sub(r"\[[^]]*\]", "", command)  # optional parts of a synopsis
                lines.append(shlex.split(command))
    return lines


def test_every_command_line_names_real_commands_and_options():
    with pytest.raises(click.NoSuchOption):  # what a stale option in the README gives
        main.commands["search"].make_context("search", ["--no-such-option"])
    lines = _command_lines()
    assert len(lines) >= 5
    for arguments in lines:
        command = main.commands.get(arguments[0])
        assert command is not None, f"README: flatnas-tf {shlex.join(arguments)}: no such command"
        try:
            command.make_context(arguments[0], arguments[1:])
        except (click.NoSuchOption, click.BadOptionUsage) as error:
            pytest.fail(f"README: flatnas-tf {shlex.join(arguments)}: {error.format_message()}")
        except click.UsageError:  # a file or directory of the example that is not here
            pass
