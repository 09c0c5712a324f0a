import shutil
import subprocess

import pytest
from click.testing import CliRunner

from flatnas_tf import __version__
from flatnas_tf.cli.main import main


def test_version_option_prints_package_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"flatnas-tf, version {__version__}"


def test_help_describes_the_tool():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Pareto front" in result.output


def test_unknown_command_exits_with_usage_error():
    result = CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output


@pytest.mark.skipif(shutil.which("flatnas-tf") is None, reason="console script not on PATH")
def test_console_script_is_installed():
    completed = subprocess.run(
        ["flatnas-tf", "--version"], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0
    assert __version__ in completed.stdout
