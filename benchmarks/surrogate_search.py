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

After each trial a set-up ends: its machine seconds so far (below) and the
hypervolume of its trials so far in (objective 1,
params), objective 1 being `tuners.objectives.robust_error` with one norm for
every set-up (alpha_norm over all their trials) and the reference point 1.1
x the largest objective 1 and params of all their trials, so every point
counts and the set-ups are on one scale.

A set-up's machine time is the supernet's training (its epochs' seconds, as
its state records them) and, for each trial, the seconds since the previous
trial ended (or its search began): training, measurement and the oracle's
proposals (a surrogate's refit) alike.

The run lives in --work (default runs/surrogate_search/<data>-w<width>-s<seed>):
the supernet, each set-up's search and a JSONL line per ended trial (its
seconds and figures). It goes on in chunks of --max-minutes: a supernet epoch
or a trial starts only if it is expected to end within them (`common.Chunk`);
when one would not, the run stops and says so, and the same command resumes
it, in this sitting or a later one, until the report is written. (A run
killed mid-trial rather than stopped by its budget loses that trial's
seconds, which the resumed search spends again and counts.)

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
        [--work DIR] [--max-minutes 55] [--out docs/benchmarks/surrogate_search.json]
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys

import numpy as np

if __package__ in (None, ""):  # run as a script: make the sibling modules importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ROOT,
    Chunk,
    add_out_argument,
    append_json_line,
    check_work_settings,
    number_list,
    report,
    safe_name,
    settings_of,
)

SETUPS = ("plain", "supernet", "supernet_surrogate")
FIGURES = {"accuracy": "val_accuracy", "robustness": "robustness", "params": "params"}
TRIAL_LOG = "trials.jsonl"  # in --work: a line per ended trial of every set-up
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
    add("--work", type=pathlib.Path, default=None, help="The run's directory (see above).")
    add("--max-minutes", type=float, default=math.inf, help="This chunk's budget.")
    add_out_argument(parser, "surrogate_search")
    return parser.parse_args(argv)


def searched_space(args, data):
    """The space every set-up searches: the default space at `--width` and `--depths`."""
    from flatnas_tf import FlatNASHyperModel

    return FlatNASHyperModel(
        data.input_shape, data.num_classes, width_multipliers=[args.width], depths=args.depths
    )


class ChunkEnded(Exception):  # noqa: N818 (the end of a chunk, not an error)
    """The chunk's budget has no room for another unit: run the command again to go on."""


NOT_DEFINING = ("out", "setups", "work", "max_minutes")  # arguments that change no figure


def work_directory(args) -> pathlib.Path:
    """--work (default under runs/), holding this run's settings; another run's are refused."""
    name = f"{safe_name(args.data)}-w{args.width:g}-s{args.seed}"
    work = args.work or ROOT / "runs" / "surrogate_search" / name
    check_work_settings(work, settings_of(args, exclude=NOT_DEFINING))
    return work


def stop_at_budget(chunk: Chunk):
    """A Keras callback that ends `fit` after an epoch when `chunk` has no room for another."""
    import keras

    class StopAtBudget(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.began = chunk.clock()

        def on_epoch_end(self, epoch, logs=None):
            chunk.add(chunk.clock() - self.began)
            if not chunk.room_for_another():
                self.model.stop_training = True

    return StopAtBudget()


def _unfinished(oracle) -> bool:
    """Whether a search has trials to start, or one to run again (interrupted by a kill)."""
    return bool(oracle.remaining_trials) or any(
        trial.status == "RUNNING" for trial in oracle.trials.values()
    )


def _logged(tuner_class, log: pathlib.Path, setup: str, chunk: Chunk):
    """`tuner_class` that logs each ended trial (seconds, figures) and stops at the budget."""

    class Logged(tuner_class):
        def on_trial_end(self, trial):
            now = chunk.clock()
            metrics = self.oracle.trials[trial.trial_id].metrics  # none if the trial failed
            figures = {
                name: metrics.get_last_value(metric) if metrics.exists(metric) else None
                for name, metric in FIGURES.items()
            }
            # Logged before the trial is ended: a kill in between runs it again, and
            # `trial_log` adds the seconds of both runs.
            seconds = now - self.last_ended
            append_json_line(log, {"setup": setup, "trial_id": trial.trial_id,
                                   "seconds": seconds, **figures})  # fmt: skip
            super().on_trial_end(trial)
            chunk.add(seconds)
            self.last_ended = now
            if _unfinished(self.oracle) and not chunk.room_for_another():
                raise ChunkEnded(f"{setup}: trial {trial.trial_id} ended")

    return Logged


def trial_log(log: pathlib.Path, setup: str) -> list[dict]:
    """A set-up's trials in the order they ended, each with its machine seconds.

    A trial logged twice (run again after a kill) is placed where it last
    ended, with the seconds of both runs and its last run's figures. The
    seconds of a trial without finite figures (failed) go to the next one.
    """
    lines = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    trials: dict[str, dict] = {}
    carried = 0.0
    for line in lines:
        if line["setup"] != setup:
            continue
        carried += line["seconds"]
        if all(line[f] is not None and np.isfinite(line[f]) for f in FIGURES):
            earlier = trials.pop(line["trial_id"], {"seconds": 0.0})["seconds"]
            trials[line["trial_id"]] = {**line, "seconds": earlier + carried}
            carried = 0.0
    return list(trials.values())


def _search(setup: str, args, data, supernet, work: pathlib.Path, chunk: Chunk) -> None:
    """Runs (or resumes) one set-up's search; ends early with `ChunkEnded`."""
    from flatnas_tf.tuners import FlatNASTuner, SupernetTuner, SurrogateSettings

    common = dict(
        mode="flatnas", alpha=ALPHA, max_params=None, population_size=args.population,
        max_trials=args.trials, seed=args.seed, samples=args.samples, directory=str(work),
        project_name=setup,
    )  # fmt: skip
    log = work / TRIAL_LOG
    if setup == "plain":
        tuner_class, epochs = _logged(FlatNASTuner, log, setup, chunk), args.epochs
        tuner = tuner_class(searched_space(args, data), **common)
    else:
        surrogate = None
        if setup == "supernet_surrogate":
            surrogate = SurrogateSettings(
                initial_trials=args.surrogate_initial, candidates=args.surrogate_candidates
            )
        tuner_class = _logged(SupernetTuner, log, setup, chunk)
        tuner, epochs = tuner_class(supernet, surrogate=surrogate, **common), args.fine_tune_epochs
    if _unfinished(tuner.oracle):
        for logged in trial_log(log, setup):  # this set-up's mean trial so far, for the budget
            chunk.add(logged["seconds"])
        if not chunk.room_for_another():
            raise ChunkEnded(f"{setup}: no room for another trial")
    tuner.last_ended = chunk.clock()
    tuner.search(  # returns at once when finished
        data.batches("train", args.batch_size, training=True, seed=args.seed),
        validation_data=data.batches("validation", args.batch_size),
        epochs=epochs,
        verbose=0,
    )


def _trained_supernet(args, data, work: pathlib.Path, chunk: Chunk):
    """The set-ups' supernet, trained or resumed in `work`, and its training seconds.

    Raises:
        ChunkEnded: Epochs are left that the chunk has no room for (its
            epochs so far, recorded in the supernet's state, give the mean).
    """
    from flatnas_tf.space import sandwich
    from flatnas_tf.space.supernet import Supernet

    directory = work / "supernet"
    done = 0
    if (directory / sandwich.STATE_FILE).exists():  # written after each finished epoch
        saved = sandwich.read_supernet_state(directory)
        done = saved["epochs_done"]
        for epoch in saved["history"]:
            chunk.add(epoch["seconds"])
    if done < args.supernet_epochs and not chunk.room_for_another():
        raise ChunkEnded(f"supernet: {done} of {args.supernet_epochs} epochs")
    supernet = Supernet(searched_space(args, data), width=args.width)
    state = sandwich.train_supernet(  # returns at once when finished
        supernet,
        data.batches("train", args.batch_size, training=True, seed=args.seed),
        sandwich.SupernetSettings(epochs=args.supernet_epochs, seed=args.seed),
        directory=directory,
        verbose=0,
        callbacks=[stop_at_budget(chunk)],
    )
    if state["epochs_done"] < args.supernet_epochs:
        raise ChunkEnded(f"supernet: {state['epochs_done']} of {args.supernet_epochs} epochs")
    return supernet, sum(epoch["seconds"] for epoch in state["history"])


def curves(runs: dict[str, tuple[list[dict], float]]) -> dict[str, list[list[float]]]:
    """(trials, seconds, hypervolume) after each trial of each set-up, on one scale.

    Args:
        runs: {setup: (its trials as `trial_log` gives them, the seconds
            charged before its first trial)}.
    """
    from flatnas_tf.tuners import objectives, pareto

    pooled = [t for trials, _ in runs.values() for t in trials]
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
    for setup, (trials, charged) in runs.items():
        every = points(trials)
        seconds = charged + np.cumsum([t["seconds"] for t in trials])
        result[setup] = [
            [k, round(float(seconds[k - 1]), 1), volume(every[:k])]
            for k in range(1, len(trials) + 1)
        ]
    return result


def main(argv: list[str] | None = None) -> dict | None:
    """Runs the set-ups and reports them (None: the chunk ended first; see the module docstring)."""
    from flatnas_tf import load_dataset

    args = parse_args(argv)
    work = work_directory(args)
    data = load_dataset(args.data, seed=args.seed)
    chunk = Chunk(args.max_minutes)
    supernet, supernet_s = None, 0.0
    try:
        if any(s != "plain" for s in args.setups):
            supernet, supernet_s = _trained_supernet(args, data, work, chunk)
        for setup in args.setups:
            _search(setup, args, data, supernet, work, chunk.for_other_units())
            print(f"{setup}: searched", file=sys.stderr, flush=True)
    except ChunkEnded as ended:
        print(f"chunk of {args.max_minutes:g} min used ({ended}); run the same command "
              f"again to go on ({work})", file=sys.stderr, flush=True)  # fmt: skip
        return None
    runs = {
        setup: (trial_log(work / TRIAL_LOG, setup), 0.0 if setup == "plain" else supernet_s)
        for setup in args.setups
    }
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
