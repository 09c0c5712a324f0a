"""Search efficiency: the front a search reaches per trained candidate and per machine hour.

Issue 26's third measure. Three set-ups search one space (the default space
at one width and the stage depths `--depths`) on one data set, with FlatNAS's
objectives (alpha 0.5), the same budget of `--trials` trials and the same seed:

    plain               FlatNASTuner: every candidate trained from random
                        weights for `--epochs`
    supernet            SupernetTuner: every candidate inherits the weights of
                        a supernet trained once (`--supernet-epochs`; its time
                        is charged to this set-up and the next), fine-tuned
                        `--fine-tune-epochs`
    supernet_surrogate  the same, with surrogate=SurrogateSettings(
                        initial_trials=--surrogate-initial, candidates=
                        --surrogate-candidates)

After each trial a set-up ends: the seconds since it began (the supernet's
training included) and the hypervolume of its trials so far in (objective 1,
params), objective 1 being `tuners.objectives.robust_error` with one norm for
every set-up (alpha_norm over all their trials) and the reference point 1.1
x the largest objective 1 and params of all their trials, so every point
counts and the set-ups are on one scale.

Reported per set-up: the curve (trials, seconds, hypervolume), the final
hypervolume, machine seconds and hypervolume per machine hour; and
`surrogate_trials_to_plain_hv`, the trials the surrogate set-up took to reach
the plain search's final hypervolume (None: never; target at most half the
budget), and `hv_per_hour_surrogate_over_plain` (goal 10). Each set-up's
figures are its own measurement (inherited and fine-tuned weights against
weights trained from random): the comparison is of what each search sees.

Usage:
    python benchmarks/surrogate_search.py --data npz:../shared/data/cifar10_subset_dev.npz
        [--trials 60] [--epochs 10] [--supernet-epochs 30] [--fine-tune-epochs 1]
        [--out docs/benchmarks/surrogate_search.json]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

import numpy as np

if __package__ in (None, ""):  # run as a script: make the sibling modules importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from common import add_out_argument, number_list, report  # noqa: E402

SETUPS = ("plain", "supernet", "supernet_surrogate")
ALPHA = 0.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--data", default="digits", help="Data set spec (flatnas_tf.load_dataset).")
    add("--width", type=float, default=0.25)
    add("--depths", type=number_list(int), default=[2, 3, 4], help="Choices of stage depth.")
    add("--trials", type=int, default=60)
    add("--population", type=int, default=10)
    add("--epochs", type=int, default=8, help="Epochs of a plain trial.")
    add("--supernet-epochs", type=int, default=30)
    add("--fine-tune-epochs", type=int, default=1)
    add("--surrogate-initial", type=int, default=20)
    add("--surrogate-candidates", type=int, default=5)
    add("--batch-size", type=int, default=64)
    add("--samples", type=int, default=10, help="Weight perturbations per R.")
    add("--seed", type=int, default=0)
    add("--setups", nargs="*", default=list(SETUPS), choices=list(SETUPS))
    add_out_argument(parser, "surrogate_search")
    return parser.parse_args(argv)


def searched_space(args, data):
    """The space every set-up searches: the default space at `--width` and `--depths`."""
    from flatnas_tf import FlatNASHyperModel

    return FlatNASHyperModel(
        data.input_shape, data.num_classes, width_multipliers=[args.width], depths=args.depths
    )


def _timed(tuner_class):
    """`tuner_class` that notes the moment each trial ends."""

    class Timed(tuner_class):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            self.ended_at.append((trial.trial_id, time.monotonic()))

    return Timed


def _search(setup: str, args, data, supernet, directory: str) -> tuple[list[dict], float]:
    """Runs one set-up; returns its trials' figures (in end order) and when it began."""
    from flatnas_tf.tuners import FlatNASTuner, SupernetTuner, SurrogateSettings

    common = dict(
        mode="flatnas", alpha=ALPHA, max_params=None, population_size=args.population,
        max_trials=args.trials, seed=args.seed, samples=args.samples, directory=directory,
        project_name=setup,
    )  # fmt: skip
    if setup == "plain":
        tuner, epochs = _timed(FlatNASTuner)(searched_space(args, data), **common), args.epochs
    else:
        surrogate = None
        if setup == "supernet_surrogate":
            surrogate = SurrogateSettings(
                initial_trials=args.surrogate_initial, candidates=args.surrogate_candidates
            )
        tuner = _timed(SupernetTuner)(supernet, surrogate=surrogate, **common)
        epochs = args.fine_tune_epochs
    tuner.ended_at = []
    began = time.monotonic()
    tuner.search(
        data.batches("train", args.batch_size, training=True, seed=args.seed),
        validation_data=data.batches("validation", args.batch_size),
        epochs=epochs,
        verbose=0,
    )
    trials = []
    for trial_id, ended in tuner.ended_at:
        metrics = tuner.oracle.trials[trial_id].metrics
        accuracy, robustness, params = (
            metrics.get_last_value(name) for name in ("val_accuracy", "robustness", "params")
        )
        figures = {"accuracy": accuracy, "robustness": robustness, "params": params}
        if all(f is not None and np.isfinite(f) for f in figures.values()):
            trials.append({**figures, "at": ended})
    return trials, began


def curves(runs: dict[str, tuple[list[dict], float, float]]) -> dict[str, list[list[float]]]:
    """(trials, seconds, hypervolume) after each trial of each set-up, on one scale."""
    from flatnas_tf.tuners import objectives, pareto

    pooled = [t for trials, _, _ in runs.values() for t in trials]
    accuracy = np.array([t["accuracy"] for t in pooled])
    robustness = np.array([t["robustness"] for t in pooled])
    norm = objectives.alpha_norm(accuracy, robustness, population_size=1)

    def points(trials):
        first = objectives.robust_error(
            np.array([t["accuracy"] for t in trials]),
            np.array([t["robustness"] for t in trials]),
            ALPHA,
            norm,
        )
        return np.stack([first, [t["params"] for t in trials]], axis=1)

    reference = 1.1 * points(pooled).max(axis=0)

    def volume(front):
        return pareto.hypervolume(front, "min", reference)

    result = {}
    for setup, (trials, began, charged) in runs.items():
        every = points(trials)
        result[setup] = [
            [k, round(t["at"] - began + charged, 1), volume(every[:k])]
            for k, t in enumerate(trials, start=1)
        ]
    return result


def main(argv: list[str] | None = None) -> dict:
    """Runs the set-ups and reports them (see the module docstring)."""
    from flatnas_tf import load_dataset
    from flatnas_tf.space.sandwich import SupernetSettings, train_supernet
    from flatnas_tf.space.supernet import Supernet

    args = parse_args(argv)
    data = load_dataset(args.data, seed=args.seed)
    runs = {}
    with tempfile.TemporaryDirectory() as directory:
        supernet, supernet_s = None, 0.0
        if any(s != "plain" for s in args.setups):
            supernet = Supernet(searched_space(args, data), width=args.width)
            started = time.monotonic()
            train_supernet(
                supernet,
                data.batches("train", args.batch_size, training=True, seed=args.seed),
                SupernetSettings(epochs=args.supernet_epochs, seed=args.seed),
                directory=pathlib.Path(directory) / "supernet",
                verbose=0,
            )
            supernet_s = time.monotonic() - started
        for setup in args.setups:
            trials, began = _search(setup, args, data, supernet, directory)
            runs[setup] = (trials, began, 0.0 if setup == "plain" else supernet_s)
            print(f"{setup}: {len(trials)} trials measured", file=sys.stderr, flush=True)
    curve = curves(runs)
    setups = {}
    for setup, points in curve.items():
        trials, seconds, volume = points[-1] if points else (0, 0.0, 0.0)
        setups[setup] = {
            "trials": trials,
            "machine_s": seconds,
            "final_hv": volume,
            "hv_per_hour": volume / (seconds / 3600) if seconds else None,
            "curve": points,
        }
    figures = {"supernet_s": round(supernet_s, 1), "setups": setups}
    if {"plain", "supernet_surrogate"} <= set(setups):
        target = setups["plain"]["final_hv"]
        reached = [k for k, _, v in curve["supernet_surrogate"] if v >= target]
        figures["surrogate_trials_to_plain_hv"] = reached[0] if reached else None
        plain_rate = setups["plain"]["hv_per_hour"]
        figures["hv_per_hour_surrogate_over_plain"] = (
            setups["supernet_surrogate"]["hv_per_hour"] / plain_rate if plain_rate else None
        )
    return report("surrogate_search", figures, args)


if __name__ == "__main__":
    main()
