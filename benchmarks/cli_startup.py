"""Start-up cost of the command line and of the light modules, against `python -c pass`.

Each command runs `--repeats` times, interleaved (pass, --help, --version,
report --help, report DIR, import pareto, pass, ...), so that the machine's
noise hits all of them alike; `report DIR` rebuilds the report (tables and
plots) of a synthetic search of `--trials` trials written once beforehand.
The median wall time of each is reported, with its ratio to `python -c
pass` and the modules it imported that it should not have
(TensorFlow, Keras, KerasTuner). With `--before-python`, the same commands
also run under another environment's interpreter (e.g. a checkout of an
earlier version), side by side.

Usage:
    python benchmarks/cli_startup.py [--repeats 10] [--before-python PATH]
        [--out docs/benchmarks/cli_startup.json]

Prints one JSON object (with the run's settings, machine, commit and date: `common.report`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import add_out_argument, report

from flatnas_tf.figures import FIGURES

HEAVY = ("tensorflow", "keras", "keras_tuner")
_EMPTY = tempfile.mkdtemp(prefix="cli-startup-")
_CLI = (
    "import sys; from flatnas_tf.cli.main import main; sys.argv = ['flatnas-tf', *{args!r}]; main()"
)


def _make_search(directory: Path, trials: int) -> None:
    """A finished search with synthetic figures (a FlatNASOracle's files, no training)."""
    import keras_tuner

    from flatnas_tf import compat
    from flatnas_tf.tuners import FlatNASOracle

    hp = keras_tuner.HyperParameters()
    hp.Int("width", 8, 4096, step=8)
    oracle = FlatNASOracle(population_size=10, max_trials=trials, seed=0, hyperparameters=hp)
    compat.set_project_dir(oracle, str(directory), "search")
    oracle.verbose = 0
    rng = np.random.default_rng(0)
    for _ in range(trials):
        trial = oracle.create_trial("bench")
        accuracy, robustness = rng.uniform(0.3, 0.99), rng.uniform(0.5, 30.0)
        figures = {name: float(rng.uniform(0, 1)) for name in FIGURES}
        figures.update(
            val_accuracy=accuracy,
            robustness=robustness,
            flatnas_objective=100 * (1 - accuracy) + robustness,
            params=float(rng.integers(1_000, 1_000_000)),
            chance_p_value=1e-9,
        )
        oracle.update_trial(trial.trial_id, figures)
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    oracle.save()
    (directory / "run.json").write_text(json.dumps({"format": "flatnas-tf search"}))


def _commands(search: Path) -> dict[str, str]:
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
        "flatnas-tf report DIR": report + _CLI.format(args=["report", str(search)]),
        "import flatnas_tf.tuners.pareto": report + "import flatnas_tf.tuners.pareto",
    }


#: Bytecode caches are written (and a first, untimed round writes them), so that
#: every environment runs from cached bytecode, whatever the caller's setting.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _time(python: str, code: str) -> tuple[float, list[str], int]:
    start = time.perf_counter()
    done = subprocess.run(  # in an empty directory: the installed package, not a checkout's
        [python, "-c", code], capture_output=True, text=True, timeout=120, cwd=_EMPTY, env=_ENV
    )
    elapsed = time.perf_counter() - start
    heavy = [line.split()[1:] for line in done.stderr.splitlines() if line.startswith("HEAVY")]
    other = [line for line in done.stderr.splitlines() if not line.startswith("HEAVY")]
    return elapsed, heavy[0] if heavy else [], len(other)


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark on `argv` (default: the command line); returns the printed JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--before-python", default=None, help="another environment's python")
    parser.add_argument("--trials", type=int, default=200, help="trials of the reported search")
    add_out_argument(parser, "cli_startup")
    args = parser.parse_args(argv)
    search = Path(tempfile.mkdtemp(prefix="cli-startup-search-"))
    _make_search(search, args.trials)
    pythons = {"after": sys.executable}
    if args.before_python:
        pythons["before"] = str(Path(args.before_python))
    commands = _commands(search)
    times = {(p, c): [] for p in pythons for c in commands}
    heavy, stderr_lines = {}, {}
    for repeat in range(args.repeats + 1):
        for label, python in pythons.items():
            for name, code in commands.items():
                elapsed, modules, lines = _time(python, code)
                if repeat:  # round 0 writes the bytecode caches
                    times[(label, name)].append(elapsed)
                heavy[(label, name)] = modules
                stderr_lines[(label, name)] = lines
    result: dict = {"repeats": args.repeats, "report_trials": args.trials}
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
        for name in ("flatnas-tf --help", "flatnas-tf report DIR"):
            key = name.split()[1].strip("-") + "_after_over_before"
            result[key] = round(
                result["after"][name]["median_s"] / result["before"][name]["median_s"], 3
            )
    return report("cli_startup", result, args)


if __name__ == "__main__":
    main()
