"""benchmarks/cli_startup.py: each command timed under both interpreters, none loads TensorFlow."""

import sys

import cli_startup
from support.benchmarks import run_benchmark


def test_light_commands_start_without_tensorflow_and_both_interpreters_are_timed(tmp_path):
    argv = ["--repeats", "1", "--trials", "12", "--before-python", sys.executable]
    result = run_benchmark(cli_startup.main, tmp_path / "cli_startup.json", *argv)
    assert result["repeats"] == 1 and result["report_trials"] == 12
    for label in ("after", "before"):
        commands = result[label]
        assert set(commands) == set(cli_startup._commands(tmp_path))
        assert all(c["median_s"] > 0 and c["ratio_to_python"] > 0 for c in commands.values())
        for name in ("flatnas-tf --help", "flatnas-tf --version", "flatnas-tf report --help"):
            assert commands[name]["heavy_modules_imported"] == [], name
            assert commands[name]["stderr_lines"] == 0, name
        assert commands["flatnas-tf report DIR"]["stderr_lines"] == 0  # the report was built
    assert result["help_after_over_before"] > 0 and result["report_after_over_before"] > 0
