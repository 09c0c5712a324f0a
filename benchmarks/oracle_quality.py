"""Search quality and bookkeeping cost of NSGA2Oracle, side by side with two baselines.

Problems (all objectives minimised; every variable a grid of 101 values, 0.00 to
1.00 in steps of 0.01: `hp.Float(step=0.01)` for KerasTuner,
`suggest_float(step=0.01)` for Optuna):

    ZDT1, ZDT2, ZDT3   n = 8 variables, 2 objectives, reference point (1.1, 10)
    DTLZ2              n = 7 variables (k = 5), 3 objectives, reference (2.5, 2.5, 2.5)

The reference points bound every attainable point (ZDT: f1 <= 1, f2 <= g <= 10;
DTLZ2: f_i <= 1 + g <= 2.25), so no evaluated point is dropped and the
hypervolume rewards both convergence and spread. Each method gets the same
budget of evaluations per run and the same seeds:

    nsga2_oracle     NSGA2Oracle(population_size=20)
    surrogate_oracle NSGA2Oracle(population_size=20, surrogate=SurrogateSettings(
                     initial_trials=20, candidates=--surrogate-candidates)): after one
                     random population, each refit predicts the objectives and queues
                     the candidates an inner NSGA-II (40 x 20) finds, chosen by
                     hypervolume contribution (issue 26)
    surrogate_spread the same, the candidates chosen as CNAS does: an even spread of
                     the second objective (SurrogateSettings(choice="spread"))
    random_search    keras_tuner.oracles.RandomSearchOracle
    optuna_nsgaii    optuna.samplers.NSGAIISampler(population_size=20), otherwise
                     its defaults (uniform crossover, crossover probability 0.9)

The hypervolume of all points a run evaluated (exact, `pareto.hypervolume`) is
reported as the median over seeds. The KerasTuner oracles run their own
bookkeeping (trial files, oracle.json) in a temporary directory, as in a search.

Overhead: a separate run of `--overhead-trials` trials on ZDT1 with its (trivial)
metrics times create_trial + update_trial + end_trial per trial, for NSGA2Oracle
and for RandomSearchOracle, without KerasTuner's progress display and with it
(printed to /dev/null; it calls `get_best_trials` twice per trial). These
totals include KerasTuner's own bookkeeping, the same for every oracle: three
trial.json and two oracle.json writes per trial, growing with the archive.
`nsga2_code_ms_per_trial_last_100` is the part spent in NSGA-II's own code
(populate_space, score_trial, get_best_trials) over the last 100 trials, the
figure the < 10 ms target is checked against.

Bookkeeping curves: `--curve-trials` (10,000) trials on ZDT1 with the display
on, KerasTuner's JSON writes off (they are KerasTuner's, the same for every
oracle; see `InMemoryNSGA2Oracle`), NSGA-II code ms per trial averaged over
the 100 trials ending at 100, 1,000, 3,000 and 10,000 trials: for
NSGA2Oracle (its objectives never change once reported, so its ranks are
updated by insertion) and for a subclass whose objectives are normalised by
archive means (re-ranked from scratch at every completion, as FlatNAS's
alpha_norm is). With `--before-python` (another checkout's interpreter) the
same curves run there first, and the ratios after / before are printed.

Usage:
    python benchmarks/oracle_quality.py [--seeds 10] [--budget 300]
        [--overhead-trials 1000] [--curve-trials 10000]
        [--before-python PATH] [--curve-only] [--out docs/benchmarks/oracle_quality.json]

Prints one JSON object (with the run's settings, machine, commit and date:
`common.report`); with --curve-only it is named oracle_bookkeeping and holds
the curves only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import tempfile
import time

import keras_tuner as kt
import numpy as np
from common import add_out_argument, report

from flatnas_tf import compat
from flatnas_tf.tuners import pareto
from flatnas_tf.tuners.nsga2 import NSGA2Oracle
from flatnas_tf.tuners.surrogate import SurrogateSettings

STEP = 0.01


def zdt(kind: int):
    def evaluate(x: np.ndarray) -> list[float]:
        f1 = float(x[0])
        g = 1.0 + 9.0 * float(np.mean(x[1:]))
        h = f1 / g
        if kind == 1:
            f2 = g * (1.0 - math.sqrt(h))
        elif kind == 2:
            f2 = g * (1.0 - h * h)
        else:
            f2 = g * (1.0 - math.sqrt(h) - h * math.sin(10.0 * math.pi * f1))
        return [f1, f2]

    return evaluate


def dtlz2(x: np.ndarray, n_objectives: int = 3) -> list[float]:
    g = float(np.sum((x[n_objectives - 1 :] - 0.5) ** 2))
    angles = x[: n_objectives - 1] * math.pi / 2
    values = []
    for i in range(n_objectives):
        f = 1.0 + g
        for angle in angles[: n_objectives - 1 - i]:
            f *= math.cos(angle)
        if i > 0:
            f *= math.sin(angles[n_objectives - 1 - i])
        values.append(f)
    return values


PROBLEMS = {
    "ZDT1": (zdt(1), 8, 2, [1.1, 10.0]),
    "ZDT2": (zdt(2), 8, 2, [1.1, 10.0]),
    "ZDT3": (zdt(3), 8, 2, [1.1, 10.0]),
    "DTLZ2": (dtlz2, 7, 3, [2.5, 2.5, 2.5]),
}


def space(n_variables: int) -> kt.HyperParameters:
    hp = kt.HyperParameters()
    for i in range(n_variables):
        hp.Float(f"x{i}", 0.0, 1.0, step=STEP)
    return hp


METHODS = ("nsga2_oracle", "random_search", "optuna_nsgaii", "surrogate_oracle", "surrogate_spread")
#: The surrogate modes, by the choice each makes (`SurrogateSettings.choice`).
SURROGATES = {"surrogate_oracle": "hypervolume", "surrogate_spread": "spread"}


def objectives(n_objectives: int) -> list[kt.Objective]:
    return [kt.Objective(f"f{j}", "min") for j in range(n_objectives)]


def run_keras_oracle(
    oracle, evaluate, n_variables: int, budget: int, directory: str, verbose: int = 0
) -> tuple[list[list[float]], list[float]]:
    """KerasTuner's loop without a model: create, evaluate, report, end (timed)."""
    compat.set_project_dir(oracle, directory, "search")
    oracle.verbose = verbose
    first = len(oracle.trials)
    points, times = [], []
    while len(oracle.trials) < first + budget:
        start = time.perf_counter()
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            break
        values = trial.hyperparameters.values
        f = evaluate(np.array([values[f"x{i}"] for i in range(n_variables)]))
        metrics = {f"f{j}": v for j, v in enumerate(f)}
        metrics["multi_objective"] = sum(f)  # what a Tuner reports; RandomSearch scores it
        oracle.update_trial(trial.trial_id, metrics)
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        times.append(time.perf_counter() - start)
        points.append(f)
    return points, times


def run_method(
    method: str, problem: str, seed: int, budget: int, population: int, candidates: int = 5
) -> float:
    evaluate, n_variables, n_objectives, reference = PROBLEMS[problem]
    if method == "optuna_nsgaii":
        import optuna  # the bench extra; the other methods run without it

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
        study = optuna.create_study(directions=["minimize"] * n_objectives, sampler=sampler)

        def objective(trial):
            x = np.array(
                [trial.suggest_float(f"x{i}", 0.0, 1.0, step=STEP) for i in range(n_variables)]
            )
            return tuple(evaluate(x))

        study.optimize(objective, n_trials=budget)
        points = [t.values for t in study.trials]
    else:
        common = dict(
            objective=objectives(n_objectives),
            max_trials=budget,
            seed=seed,
            hyperparameters=space(n_variables),
        )
        if method == "nsga2_oracle":
            oracle = NSGA2Oracle(population_size=population, **common)
        elif method in SURROGATES:
            surrogate = SurrogateSettings(
                initial_trials=population, candidates=candidates, choice=SURROGATES[method]
            )
            oracle = NSGA2Oracle(population_size=population, surrogate=surrogate, **common)
        else:
            oracle = kt.oracles.RandomSearchOracle(**common)
        with tempfile.TemporaryDirectory() as directory:
            points, _ = run_keras_oracle(oracle, evaluate, n_variables, budget, directory)
    assert len(points) == budget, (method, problem, len(points))  # no early stop
    return pareto.hypervolume(points, "min", reference=reference)


class TimedNSGA2Oracle(NSGA2Oracle):
    """NSGA2Oracle that records the time spent in its own (NSGA-II) code, per trial."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.spent_s = 0.0
        self.spent_per_trial_s: list[float] = []  # NSGA-II time of each finished trial

    def _timed(self, method, *args):
        start = time.perf_counter()
        try:
            return method(*args)
        finally:
            self.spent_s += time.perf_counter() - start

    def populate_space(self, trial_id):  # breeding, duplicate checks
        return self._timed(super().populate_space, trial_id)

    def end_trial(self, trial):  # scoring (ranking) + KerasTuner's end, display, saves
        super().end_trial(trial)
        self.spent_per_trial_s.append(self.spent_s)
        self.spent_s = 0.0

    def score_trial(self, trial):  # ranking when a trial ends
        return self._timed(super().score_trial, trial)

    def get_best_trials(self, num_trials=1):  # the display calls it twice per trial
        return self._timed(super().get_best_trials, num_trials)


class InMemoryNSGA2Oracle(TimedNSGA2Oracle):
    """TimedNSGA2Oracle without KerasTuner's JSON writes (oracle.json, trial.json).

    Those writes are KerasTuner's, the same for every oracle, and grow with
    the archive (oracle.json holds every trial id, hash and display time):
    at 1,000 trials they are most of a trial's bookkeeping. Switched off here
    so that a 10,000-trial curve of the NSGA-II code runs in minutes.
    """

    def save(self):
        pass

    def _save_trial(self, trial):
        pass


class ArchiveNormalisedOracle(InMemoryNSGA2Oracle):
    """Objectives divided by their archive means: every ranking sees new values.

    What `objective_values` overrides that normalise over the archive do (as
    FlatNAS's alpha_norm does), so no incremental ranking applies.
    """

    def objective_values(self, trials):
        values = super().objective_values(trials)
        return values / np.maximum(np.nanmean(values, axis=0), 1e-12) if len(values) else values


def bookkeeping(
    oracle_class: type, n_trials: int, population: int, checkpoints: list[int]
) -> dict[str, float]:
    """ms of NSGA-II code per trial over the 100 trials ending at each checkpoint,
    KerasTuner's display on (it ranks twice per trial), no JSON written."""
    evaluate, n_variables, n_objectives, _ = PROBLEMS["ZDT1"]
    oracle = oracle_class(
        objective=objectives(n_objectives),
        max_trials=n_trials,
        seed=0,
        hyperparameters=space(n_variables),
        population_size=population,
    )
    with (
        tempfile.TemporaryDirectory() as directory,
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stdout(devnull),
    ):
        _, times = run_keras_oracle(oracle, evaluate, n_variables, n_trials, directory, verbose=1)
    spent = np.array(oracle.spent_per_trial_s) * 1e3
    total = np.array(times) * 1e3
    return {
        f"at_{n}": {
            "nsga2_code_ms_per_trial": round(float(spent[n - 100 : n].mean()), 3),
            "whole_trial_ms_incl_keras_tuner": round(float(total[n - 100 : n].mean()), 3),
        }
        for n in checkpoints
        if n <= len(spent)
    }


def overhead(n_trials: int, population: int, display: bool) -> dict[str, dict[str, float]]:
    """ms per trial of create_trial + update_trial + end_trial, KerasTuner's file
    writes included, and the part of it spent in NSGA-II's own code."""
    evaluate, n_variables, n_objectives, _ = PROBLEMS["ZDT1"]
    result = {}
    for name, cls, extra in (
        ("nsga2_oracle", TimedNSGA2Oracle, {"population_size": population}),
        ("random_search", kt.oracles.RandomSearchOracle, {}),
    ):
        oracle = cls(
            objective=objectives(n_objectives),
            max_trials=n_trials,
            seed=0,
            hyperparameters=space(n_variables),
            **extra,
        )
        with (
            tempfile.TemporaryDirectory() as directory,
            open(os.devnull, "w") as devnull,
            contextlib.redirect_stdout(devnull),
        ):
            _, times = run_keras_oracle(
                oracle, evaluate, n_variables, n_trials - 100, directory, verbose=int(display)
            )
            _, last = run_keras_oracle(
                oracle, evaluate, n_variables, 100, directory, verbose=int(display)
            )
        ms = np.array(times + last) * 1e3
        result[name] = {
            "mean_ms_per_trial": round(float(ms.mean()), 3),
            "mean_ms_last_100_trials": round(float(ms[-100:].mean()), 3),
            "median_ms_per_trial": round(float(np.median(ms)), 3),
        }
        if name == "nsga2_oracle":
            spent = np.array(oracle.spent_per_trial_s[-100:]) * 1e3
            result[name]["nsga2_code_ms_per_trial_last_100"] = round(float(spent.mean()), 3)
    return result


def bookkeeping_curves(n_trials: int, population: int) -> dict[str, dict]:
    """`bookkeeping` of NSGA2Oracle and of an archive-normalising subclass."""
    checkpoints = [n for n in (100, 1000, 3000, 10000, 30000) if n <= n_trials]
    return {
        "nsga2_oracle": bookkeeping(InMemoryNSGA2Oracle, n_trials, population, checkpoints),
        "archive_normalised_objectives": bookkeeping(
            ArchiveNormalisedOracle, n_trials, population, checkpoints
        ),
    }


def curves_side_by_side(args: argparse.Namespace) -> dict:
    """This checkout's bookkeeping curves and, with --before-python, another's."""
    if args.before_python:
        command = [args.before_python, __file__, "--curve-only"]
        command += ["--curve-trials", str(args.curve_trials)]
        command += ["--population-size", str(args.population_size)]
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode != 0:
            last = run.stderr.strip().splitlines()[-1:] or ["no output"]
            raise SystemExit(f"--before-python {args.before_python} failed: {last[0]}")
        before = json.loads(run.stdout[run.stdout.index("{") :])["curves"]["after"]
    after = bookkeeping_curves(args.curve_trials, args.population_size)
    if not args.before_python:
        return {"after": after}
    ratios = {
        oracle: {
            at: round(
                after[oracle][at]["nsga2_code_ms_per_trial"]
                / before[oracle][at]["nsga2_code_ms_per_trial"],
                3,
            )
            for at in after[oracle]
        }
        for oracle in after
    }
    return {"after": after, "before": before, "ratio_after_over_before": ratios}


def quality(
    problems: list[str],
    methods: list[str],
    seeds: int,
    budget: int,
    population: int,
    candidates: int,
) -> dict[str, dict]:
    """Median (and min, max) hypervolume of each method on each problem, seeds 1..`seeds`."""
    results = {}
    for problem in problems:
        volumes = {
            method: [
                run_method(method, problem, seed, budget, population, candidates)
                for seed in range(1, seeds + 1)
            ]
            for method in methods
        }
        _, n_variables, n_objectives, reference = PROBLEMS[problem]
        results[problem] = {
            "n_variables": n_variables,
            "n_objectives": n_objectives,
            "reference_point": reference,
            "median_hypervolume": {m: round(statistics.median(v), 4) for m, v in volumes.items()},
            "min_max_hypervolume": {
                m: [round(min(v), 4), round(max(v), 4)] for m, v in volumes.items()
            },
        }
    return results


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark on `argv` (default: the command line); returns the printed JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="runs per problem and method")
    parser.add_argument("--budget", type=int, default=300, help="evaluations per run")
    parser.add_argument("--population-size", type=int, default=20)
    parser.add_argument("--overhead-trials", type=int, default=1000)
    parser.add_argument("--curve-trials", type=int, default=10000)
    parser.add_argument("--curve-only", action="store_true", help="only the bookkeeping curves")
    parser.add_argument("--quality-only", action="store_true", help="only the hypervolumes")
    parser.add_argument("--before-python", default=None, help="another checkout's python")
    parser.add_argument("--problems", nargs="*", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--surrogate-candidates", type=int, default=5)
    add_out_argument(parser, "oracle_quality")
    args = parser.parse_args(argv)
    if args.curve_only:
        return report("oracle_bookkeeping", {"curves": curves_side_by_side(args)}, args)

    started = time.perf_counter()
    problems = quality(
        args.problems,
        args.methods,
        args.seeds,
        args.budget,
        args.population_size,
        args.surrogate_candidates,
    )
    quality_s = time.perf_counter() - started

    medians = [p["median_hypervolume"] for p in problems.values()]
    figures = {
        "budget": args.budget,
        "seeds": args.seeds,
        "population_size": args.population_size,
        "grid_step": STEP,
        "problems": problems,
        "targets": targets(medians),
        "quality_wall_s": round(quality_s, 1),
    }
    if not args.quality_only:
        curves = curves_side_by_side(args)
        costs = overhead(args.overhead_trials, args.population_size, display=False)
        nsga_ms = costs["nsga2_oracle"]["nsga2_code_ms_per_trial_last_100"]
        figures.update(
            overhead_trials=args.overhead_trials,
            overhead=costs,
            overhead_with_display=overhead(
                args.overhead_trials, args.population_size, display=True
            ),
            curve_trials=args.curve_trials,
            bookkeeping_curves=curves,
        )
        figures["targets"].update(
            nsga2_overhead_below_10_ms=nsga_ms < 10.0,
            nsga2_code_at_most_3_ms_at_every_checkpoint=all(
                point["nsga2_code_ms_per_trial"] <= 3.0
                for point in curves["after"]["nsga2_oracle"].values()
            ),
        )
    return report("oracle_quality", figures, args)


def targets(medians: list[dict[str, float]]) -> dict[str, bool]:
    """The quality targets the methods run can answer (median hypervolume per problem)."""
    answers = {}

    def ahead(first: str, second: str) -> int:
        return sum(m[first] >= m[second] for m in medians)

    present = set(medians[0]) if medians else set()
    if {"nsga2_oracle", "optuna_nsgaii"} <= present:
        answers["nsga2_ge_optuna_on_at_least_3_of_4"] = ahead(
            "nsga2_oracle", "optuna_nsgaii"
        ) >= min(3, len(medians))
    if {"nsga2_oracle", "random_search"} <= present:
        answers["nsga2_gt_random_on_all"] = all(
            m["nsga2_oracle"] > m["random_search"] for m in medians
        )
    others = present - set(SURROGATES)
    if "surrogate_oracle" in present and others:
        answers["surrogate_ahead_of_all_others_on_at_least_3_of_4"] = sum(
            all(m["surrogate_oracle"] > m[o] for o in others) for m in medians
        ) >= min(3, len(medians))
    if set(SURROGATES) <= present:
        answers["hypervolume_choice_ge_spread_on_at_least_3_of_4"] = ahead(
            "surrogate_oracle", "surrogate_spread"
        ) >= min(3, len(medians))
    return answers


if __name__ == "__main__":
    main()
