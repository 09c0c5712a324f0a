import re
import subprocess
import sys

import flatnas_tf

# Log lines carry a timestamp and a thread id: compare their text only.
_LOG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ ")


def _stderr_lines(code: str) -> tuple[str, set[str]]:
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    lines = {_LOG_PREFIX.sub("", line) for line in completed.stderr.splitlines() if line}
    return completed.stdout, lines


def test_import_adds_no_output_beyond_tensorflow():
    stdout, ours = _stderr_lines("import flatnas_tf")
    _, tensorflows = _stderr_lines("import tensorflow, keras; tensorflow.constant(0)")
    assert stdout == ""
    assert ours <= tensorflows, ours - tensorflows


def test_subpackages_install_under_the_flatnas_tf_namespace():
    import flatnas_tf.cli.main
    import flatnas_tf.tuners

    assert flatnas_tf.tuners.__name__ == "flatnas_tf.tuners"
    assert flatnas_tf.cli.main.__name__ == "flatnas_tf.cli.main"


def test_public_api_is_declared():
    for name in flatnas_tf.__all__:
        assert hasattr(flatnas_tf, name), name
