"""What a surrogate refit costs against what it saves: one refit beside one digits trial.

A surrogate-assisted search (`flatnas_tf.tuners.surrogate`) pays, at every
refit, for adaptive switching (each pool member cross-validated, the winner
kept) on two figures and an inner NSGA-II of `--population` x
`--generations` predicted candidates (parameters counted exactly). This
measures that, on the default space of the digits search (widths 0.25 and
0.5), for archives of `--sizes` trained-looking points, and one real digits
trial (`FlatNASTuner.train_and_measure`, 8 epochs: what one refit decides to
spend) in the same run:

    archive        random configurations of the space; accuracy and R are a
                   smooth function of their encoding plus noise (what is
                   predicted does not change the cost)
    refit_s        both predictors fitted with adaptive switching (every pool
                   member cross-validated, the winner refitted): a refit at
                   which the switching runs
    winner_refit_s both switching winners refitted alone on the archive: a
                   refit between two switchings (`reselect_growth`)
    propose_s      the inner NSGA-II and the hypervolume choice of
                   `--candidates`
    ratio          (refit_s + propose_s) / trial_s, and
                   (winner_refit_s + propose_s) / trial_s between switchings

Usage:
    python benchmarks/surrogate_cost.py [--sizes 50,100,300] [--folds 10]
        [--out docs/benchmarks/surrogate_cost.json]
"""

from __future__ import annotations

import argparse
import pathlib
import random
import sys
import tempfile
import time

import numpy as np

if __package__ in (None, ""):  # run as a script: make the sibling modules importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from common import add_out_argument, number_list, report  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--sizes", type=number_list(int), default=[50, 100, 300])
    add("--folds", type=int, default=10)
    add("--population", type=int, default=40)
    add("--generations", type=int, default=20)
    add("--candidates", type=int, default=8)
    add("--epochs", type=int, default=8, help="Epochs of the digits trial timed beside.")
    add_out_argument(parser, "surrogate_cost")
    return parser.parse_args(argv)


def trial_seconds(epochs: int) -> float:
    """Wall time of one digits trial of the default search (build, train, measure)."""
    import keras

    from flatnas_tf import FlatNASHyperModel, load_dataset
    from flatnas_tf.tuners import FlatNASTuner

    data = load_dataset("digits")
    space = FlatNASHyperModel(data.input_shape, data.num_classes, width_multipliers=[0.25, 0.5])
    with tempfile.TemporaryDirectory() as directory:
        tuner = FlatNASTuner(space, seed=0, samples=10, directory=directory, project_name="t")
        start = time.perf_counter()
        tuner.train_and_measure(
            space.random_hyperparameters(seed=0),
            data.batches("train", 64, training=True, seed=0),
            validation_data=data.batches("validation", 64),
            epochs=epochs,
            verbose=0,
        )
        seconds = time.perf_counter() - start
    keras.backend.clear_session()
    return seconds


def refit_and_propose(space, hypermodel, size: int, args) -> dict[str, float]:
    """Seconds of one refit and one proposal on an archive of `size` points."""
    from flatnas_tf.tuners import objectives, pareto
    from flatnas_tf.tuners.predictors import AdaptivePredictor
    from flatnas_tf.tuners.surrogate import propose

    rng = np.random.default_rng(size)
    configurations = [hypermodel.random_hyperparameters(seed=s).values for s in range(size)]
    x = AdaptivePredictor(space).encoding.encode(configurations)
    weights = rng.normal(size=x.shape[1])
    signal = (x @ weights) / np.sqrt(x.shape[1])
    accuracy = 0.95 + 0.01 * signal + rng.normal(0, 0.005, size)
    robustness = 1.0 - 0.3 * signal + rng.normal(0, 0.1, size)
    start = time.perf_counter()
    predictors = {
        name: AdaptivePredictor(space, folds=args.folds).fit(configurations, y)
        for name, y in (("val_accuracy", accuracy), ("robustness", robustness))
    }
    refit_s = time.perf_counter() - start
    start = time.perf_counter()
    for name, y in (("val_accuracy", accuracy), ("robustness", robustness)):
        winner = predictors[name].selection.winner
        AdaptivePredictor(space, folds=args.folds).fit_member(configurations, y, winner)
    winner_refit_s = time.perf_counter() - start
    counted = hypermodel.random_hyperparameters(seed=0)
    defaults = dict(counted.values)

    def params(values) -> float:
        counted.values = {**defaults, **values}
        return float(hypermodel.count_params(counted))

    norm = objectives.alpha_norm(accuracy, robustness, 1)

    def evaluate(candidates):
        first = objectives.robust_error(
            predictors["val_accuracy"].predict(candidates),
            predictors["robustness"].predict(candidates),
            0.5,
            norm,
        )
        sizes = [params(c) for c in candidates]
        return np.stack([first, sizes], axis=1), np.zeros(len(candidates))

    first = objectives.robust_error(accuracy, robustness, 0.5, norm)
    archive = np.stack([first, [params(c) for c in configurations]], axis=1)
    seen = {str(sorted(c.items())) for c in configurations}
    start = time.perf_counter()
    proposal = propose(
        space.space,
        configurations,
        pareto.to_minimisation(archive, "min"),
        np.zeros(size),
        evaluate,
        lambda values: str(sorted(values.items())) not in seen,
        args.candidates,
        random.Random(0),
        population=args.population,
        generations=args.generations,
    )
    propose_s = time.perf_counter() - start
    return {
        "refit_s": round(refit_s, 3),
        "winner_refit_s": round(winner_refit_s, 3),
        "propose_s": round(propose_s, 3),
        "winners": {name: p.selection.winner for name, p in predictors.items()},
        "predicted_candidates": proposal.predicted,
    }


def main(argv: list[str] | None = None) -> dict:
    """Times refits beside one trial and reports them (see the module docstring)."""
    from flatnas_tf import FlatNASHyperModel

    args = parse_args(argv)
    hypermodel = FlatNASHyperModel((8, 8, 1), 10, width_multipliers=[0.25, 0.5])
    space = hypermodel.random_hyperparameters(seed=0)
    trial_s = trial_seconds(args.epochs)
    sizes = {}
    for size in args.sizes:
        timing = refit_and_propose(space, hypermodel, size, args)
        total = timing["refit_s"] + timing["propose_s"]
        between = timing["winner_refit_s"] + timing["propose_s"]
        sizes[str(size)] = {
            **timing,
            "ratio_to_trial": round(total / trial_s, 3),
            "ratio_between_switchings": round(between / trial_s, 3),
        }
        print(f"{size} points: {timing}", file=sys.stderr, flush=True)
    return report("surrogate_cost", {"trial_s": round(trial_s, 2), "archives": sizes}, args)


if __name__ == "__main__":
    main()
