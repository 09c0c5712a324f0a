"""The surrogate-assisted search at small budgets, side by side with three searches without one.

Issue 26's measure: the problems, methods and hypervolumes of
`oracle_quality.py` (ZDT1-3, DTLZ2; every point a run evaluated counts;
reference points there), at the small budgets where a surrogate should pay
(`--budgets`, 50 and 100 evaluations), `--seeds` seeds each:

    surrogate_oracle   NSGA2Oracle(surrogate=SurrogateSettings(initial_trials=
                       population, candidates=--candidates)): the default pool
                       and inner search (40 x 20), the hypervolume choice
    surrogate_spread   the same with CNAS's choice (an even spread of the
                       second objective)
    nsga2_oracle       plain NSGA2Oracle (population 20)
    optuna_nsgaii      Optuna's NSGAIISampler (population 20)
    random_search      KerasTuner's RandomSearchOracle

Targets: the surrogate (hypervolume choice) ahead of the three without a
surrogate on at least 3 of 4 problems at every budget; and whether the
hypervolume choice does at least as well as the spread choice.

Usage:
    python benchmarks/surrogate_quality.py [--budgets 50,100] [--seeds 10]
        [--out docs/benchmarks/surrogate_quality.json]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

if __package__ in (None, ""):  # run as a script: make the sibling modules importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from common import add_out_argument, number_list, report  # noqa: E402
from oracle_quality import METHODS, PROBLEMS, quality, targets  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--budgets", type=number_list(int), default=[50, 100])
    add("--seeds", type=int, default=10)
    add("--population-size", type=int, default=20)
    add("--candidates", type=int, default=5, help="Candidates trained per refit.")
    add("--problems", nargs="*", default=list(PROBLEMS), choices=list(PROBLEMS))
    add("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    add_out_argument(parser, "surrogate_quality")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Runs every budget and reports them (see the module docstring)."""
    args = parse_args(argv)
    if "optuna_nsgaii" in args.methods:  # the bench extra
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    budgets = {}
    for budget in args.budgets:
        started = time.perf_counter()
        problems = quality(
            args.problems,
            args.methods,
            args.seeds,
            budget,
            args.population_size,
            args.candidates,
        )
        medians = [p["median_hypervolume"] for p in problems.values()]
        budgets[str(budget)] = {
            "problems": problems,
            "targets": targets(medians),
            "wall_s": round(time.perf_counter() - started, 1),
        }
        print(f"budget {budget}: {budgets[str(budget)]['targets']}", file=sys.stderr, flush=True)
    return report("surrogate_quality", {"seeds": args.seeds, "budgets": budgets}, args)


if __name__ == "__main__":
    main()
