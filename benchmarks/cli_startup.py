"""Start-up cost of the command line and of the light modules, against `python -c pass`.

Each command runs `--repeats` times, interleaved (pass, --help, --version,
report --help, import pareto, pass, ...), so that the machine's noise hits
all of them alike; the median wall time of each is reported, with its ratio
to `python -c pass` and the modules it imported that it should not have
(TensorFlow, Keras, KerasTuner). With `--before-python`, the same commands
also run under another environment's interpreter (e.g. a checkout of an
earlier version), side by side.

Usage:
    python benchmarks/cli_startup.py [--repeats 10] [--before-python PATH]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import print_json

HEAVY = ("tensorflow", "keras", "keras_tuner")
_EMPTY = tempfile.mkdtemp(prefix="cli-startup-")
_CLI = (
    "import sys; from flatnas_tf.cli.main import main; sys.argv = ['flatnas-tf', *{args!r}]; main()"
)


def _commands() -> dict[str, str]:
    """Name -> Python code; each also prints the heavy modules it imported."""
    report = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print('HEAVY', *[m for m in {HEAVY!r} if m in sys.modules],"
        " file=sys.stderr))\n"
    )
    return {
        "python -c pass": "pass",
        "flatnas-tf --help": report + _CLI.format(args=["--help"]),
        "flatnas-tf --version": report + _CLI.format(args=["--version"]),
        "flatnas-tf report --help": report + _CLI.format(args=["report", "--help"]),
        "import flatnas_tf.tuners.pareto": report + "import flatnas_tf.tuners.pareto",
    }


def _time(python: str, code: str) -> tuple[float, list[str], int]:
    start = time.perf_counter()
    done = subprocess.run(  # in an empty directory: the installed package, not a checkout's
        [python, "-c", code], capture_output=True, text=True, timeout=120, cwd=_EMPTY
    )
    elapsed = time.perf_counter() - start
    heavy = [line.split()[1:] for line in done.stderr.splitlines() if line.startswith("HEAVY")]
    other = [line for line in done.stderr.splitlines() if not line.startswith("HEAVY")]
    return elapsed, heavy[0] if heavy else [], len(other)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--before-python", default=None, help="another environment's python")
    args = parser.parse_args()
    pythons = {"after": sys.executable}
    if args.before_python:
        pythons["before"] = str(Path(args.before_python))
    commands = _commands()
    times = {(p, c): [] for p in pythons for c in commands}
    heavy, stderr_lines = {}, {}
    for _ in range(args.repeats):
        for label, python in pythons.items():
            for name, code in commands.items():
                elapsed, modules, lines = _time(python, code)
                times[(label, name)].append(elapsed)
                heavy[(label, name)] = modules
                stderr_lines[(label, name)] = lines
    result: dict = {"repeats": args.repeats}
    for label in pythons:
        baseline = statistics.median(times[(label, "python -c pass")])
        result[label] = {
            name: {
                "median_s": round(statistics.median(times[(label, name)]), 3),
                "ratio_to_python": round(statistics.median(times[(label, name)]) / baseline, 2),
                "heavy_modules_imported": heavy[(label, name)],
                "stderr_lines": stderr_lines[(label, name)],
            }
            for name in commands
        }
    if "before" in pythons:
        result["help_after_over_before"] = round(
            result["after"]["flatnas-tf --help"]["median_s"]
            / result["before"]["flatnas-tf --help"]["median_s"],
            3,
        )
    print_json("cli_startup", result)


if __name__ == "__main__":
    main()
