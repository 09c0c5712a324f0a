"""What `flatnas-tf search` costs and finds with its defaults, beside other budgets.

The main job of the README's first set-up command: a search of the bundled
digits data set, offline, on a laptop CPU. Each `--variant` (extra options
for `flatnas-tf search`; "" is the defaults) runs as a user runs it, as a
subprocess into a fresh directory, one after another (never two at once), in
the order given, `--repeats` times; for each run:

    wall_s        from the command's start to its exit (import, search,
                  report and exports included)
    trials        trials in the search
    front         trials on its Pareto front
    front_best    the front's best validation accuracy (percent)
    front_median  the front's median validation accuracy (percent)
    trial_s       each trial's seconds of training and measurement, in trial order

Issue 27's aim for the defaults: wall <= 300 s on 2 cores, front best >= 97 %,
front median >= 95 %.

With `--before-python` (the interpreter of an environment where another
checkout is installed, e.g. an earlier commit), each run here is followed by
the same run there, alternating, so that both see the same machine; each
variant then reports the other checkout's runs under "before" and the ratio
of the median wall times (here / before).

Usage:
    python benchmarks/default_search.py [--variant ""] [--variant "--max-trials 8 --epochs 5"]
        [--repeats 1] [--before-python PATH] [--out docs/benchmarks/default_search.json]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import add_out_argument, report

_CLI = "from flatnas_tf.cli.main import main; main()"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variant",
        action="append",
        default=None,
        help='Extra options of `flatnas-tf search` (repeatable; "" = the defaults, the default).',
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--before-python", default=None, help="another checkout's python")
    add_out_argument(parser, "default_search")
    args = parser.parse_args(argv)
    args.variant = args.variant or [""]
    return args


def front_figures(out: Path) -> dict:
    """Trials, front size, the front's best and median validation accuracy, trial seconds."""
    from flatnas_tf.tuners.result import SearchResult

    result = SearchResult.load(out / "search")
    accuracies = [100 * t.figures["val_accuracy"] for t in result.front()]
    return {
        "trials": len(result.trials),
        "front": len(accuracies),
        "front_best": round(max(accuracies), 2) if accuracies else None,
        "front_median": round(statistics.median(accuracies), 2) if accuracies else None,
        "trial_s": [
            round(t.figures.get("train_time_s", 0) + t.figures.get("measure_time_s", 0), 1)
            for t in result.trials
        ],
    }


def run_search(options: str, python: str = sys.executable) -> dict:
    """One `flatnas-tf search` with `options` in a fresh directory: its wall time and front.

    Args:
        options: Extra command-line options of `flatnas-tf search`.
        python: The interpreter whose installed flatnas-tf runs the search.

    Returns:
        {"wall_s", "trials", "front", "front_best", "front_median", "trial_s"}.
    """
    with tempfile.TemporaryDirectory(prefix="default-search-") as directory:
        out = Path(directory) / "run"
        command = [python, "-c", _CLI, "search", "--out", str(out), *shlex.split(options)]
        started = time.perf_counter()
        # In the fresh directory: `python -c` puts the working directory first on
        # sys.path, and a checkout there would shadow the interpreter's installed one.
        completed = subprocess.run(command, capture_output=True, text=True, cwd=directory)
        wall = time.perf_counter() - started
        if completed.returncode != 0:
            raise RuntimeError(f"{options!r} failed:\n{completed.stderr[-3000:]}")
        return {"wall_s": round(wall, 1), **front_figures(out)}


def _median_wall(runs: list[dict]) -> float:
    return round(statistics.median(run["wall_s"] for run in runs), 1)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    variants = []
    for options in args.variant:
        runs, before = [], []
        for _ in range(args.repeats):
            runs.append(run_search(options))
            if args.before_python:
                before.append(run_search(options, args.before_python))
        variant = {"options": options, "median_wall_s": _median_wall(runs), "runs": runs}
        if before:
            variant["before"] = {"median_wall_s": _median_wall(before), "runs": before}
            variant["wall_ratio"] = round(_median_wall(runs) / _median_wall(before), 3)
        variants.append(variant)
        print(f"{options or '(defaults)'}: {variant}", file=sys.stderr, flush=True)
    return report("default_search", {"variants": variants}, args)


if __name__ == "__main__":
    main()
