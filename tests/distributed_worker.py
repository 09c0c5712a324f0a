"""One process of a distributed KerasTuner search, started by `test_distributed.py`.

Run it with KerasTuner's distributed variables set (KERASTUNER_TUNER_ID
"chief" or "tuner0", "tuner1", ..., KERASTUNER_ORACLE_IP,
KERASTUNER_ORACLE_PORT). The chief serves the oracle until the search ends
and then writes its oracle's state to `--summary`; a worker runs trials.

Two kinds of search:

- "synthetic": a minimal `BaseTuner` whose trials compute two objectives from
  the hyperparameters (no model, no training) after sleeping `--trial-sleep`
  seconds, with `NSGA2Oracle`;
- "flatnas": `FlatNASTuner` itself, a two-convolution hypermodel and tiny
  random images, one epoch per trial.

Each run of a trial appends "<trial_id> <tuner_id> <pid> start" to `--log`
and writes the marker file `<markers>/<tuner_id>-<pid>` (holding the trial id)
before it sleeps or trains, then appends "... end" when it returns.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types

import keras_tuner
from keras_tuner.engine.base_tuner import BaseTuner

from flatnas_tf.tuners import NSGA2Oracle

OBJECTIVES = [keras_tuner.Objective("f1", "min"), keras_tuner.Objective("f2", "min")]


def _arguments(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=("synthetic", "flatnas"), required=True)
    parser.add_argument("--directory", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--markers", required=True)
    parser.add_argument("--max-trials", type=int, required=True)
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--trial-sleep", type=float, default=0.2)
    parser.add_argument(
        "--hold-first-trial",
        type=float,
        default=0.0,
        help="sleep this long in this process's first trial (to be killed in it)",
    )
    parser.add_argument(
        "--wait-for",
        help="after writing <markers>/<pid>.ready, wait for this file to join the search",
    )
    parser.add_argument("--summary", help="chief: where to write the oracle's final state")
    parser.add_argument("--lease", type=float, default=None, help="flatnas chief: trial_lease_s")
    parser.add_argument(
        "--fast-poll",
        action="store_true",
        help="chief: poll for the end of the search every 0.2 s instead of every 20 s",
    )
    return parser.parse_args(argv)


class _Recorder:
    """Writes the log lines and marker files of the trials this process runs."""

    def __init__(self, args, tuner_id: str):
        self.args = args
        self.tuner_id = tuner_id
        self.first = True

    def _line(self, trial_id: str, event: str) -> None:
        with open(self.args.log, "a") as log:
            log.write(f"{trial_id} {self.tuner_id} {os.getpid()} {event}\n")

    def start(self, trial_id: str) -> None:
        self._line(trial_id, "start")
        marker = os.path.join(self.args.markers, f"{self.tuner_id}-{os.getpid()}")
        with open(marker + ".tmp", "w") as file:
            file.write(trial_id)
        os.replace(marker + ".tmp", marker)
        hold = self.first and self.args.hold_first_trial
        self.first = False
        if hold:
            time.sleep(self.args.hold_first_trial)

    def end(self, trial_id: str) -> None:
        self._line(trial_id, "end")


class SyntheticTuner(BaseTuner):
    """Trials that report two conflicting objectives computed from `a` and `b`."""

    def __init__(self, recorder: _Recorder, trial_sleep: float, **kwargs):
        super().__init__(**kwargs)
        self.recorder = recorder
        self.trial_sleep = trial_sleep

    def run_trial(self, trial, *args, **kwargs):
        self.recorder.start(trial.trial_id)
        time.sleep(self.trial_sleep)
        a = trial.hyperparameters.get("a") / 31.0
        b = trial.hyperparameters.get("b") / 31.0
        f1, f2 = a + 0.1 * b, (1.0 - a) ** 2 + 0.1 * (1.0 - b)
        self.recorder.end(trial.trial_id)
        return {"f1": f1, "f2": f2, "multi_objective": f1 + f2}


def _synthetic(args, recorder):
    hp = keras_tuner.HyperParameters()
    hp.Int("a", 0, 31)
    hp.Int("b", 0, 31)
    oracle = NSGA2Oracle(
        objective=OBJECTIVES,
        population_size=args.population,
        max_trials=args.max_trials,
        seed=args.seed,
        hyperparameters=hp,
    )
    tuner = SyntheticTuner(
        recorder,
        args.trial_sleep,
        oracle=oracle,
        directory=args.directory,
        project_name="search",
        overwrite=False,  # True would delete the directory the other processes share
    )
    return tuner, (), {}


def _flatnas(args, recorder):
    import keras
    import numpy as np
    import tensorflow as tf

    from flatnas_tf import FlatNASHyperModel, TrainingSettings
    from flatnas_tf.tuners import FlatNASTuner

    class TinySpace(FlatNASHyperModel):
        def build_backbone(self, hp, x):
            filters = hp.Choice("filters", [4, 8, 16])
            kernel = hp.Choice("kernel", [1, 3])
            return keras.layers.Conv2D(filters, kernel, padding="same", activation="relu")(x)

    class LoggingFlatNASTuner(FlatNASTuner):
        def run_trial(self, trial, *fit_args, **fit_kwargs):
            recorder.start(trial.trial_id)
            figures = super().run_trial(trial, *fit_args, **fit_kwargs)
            recorder.end(trial.trial_id)
            return figures

    hypermodel = TinySpace(
        (8, 8, 1),
        4,
        training=TrainingSettings(learning_rate=0.05, rho=0.5),
        width_multipliers=[0.05, 0.1],
    )
    tuner = LoggingFlatNASTuner(
        hypermodel,
        mode="flatnas",
        alpha=0.5,
        max_params=None,
        chance_significance=None,  # random labels: every model is at chance
        population_size=args.population,
        max_trials=args.max_trials,
        seed=args.seed,
        samples=2,
        trial_lease_s=args.lease,
        directory=args.directory,
        project_name="search",
        overwrite=False,
    )
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(96, 8, 8, 1), dtype=np.uint8)
    labels = rng.integers(0, 4, size=(96,), dtype=np.int32)
    train = tf.data.Dataset.from_tensor_slices((images[:64], labels[:64])).batch(32)
    validation = tf.data.Dataset.from_tensor_slices((images[64:], labels[64:])).batch(32)
    return tuner, (train,), {"validation_data": validation, "epochs": 1, "verbose": 0}


def _summary(oracle) -> dict:
    """The chief's oracle state after the search, as plain JSON."""
    trials = {
        trial_id: {
            "status": trial.status,
            "values": trial.hyperparameters.values,
            "score": trial.score,
        }
        for trial_id, trial in oracle.trials.items()
    }
    return {
        "trials": trials,
        "start_order": list(oracle.start_order),
        "end_order": list(oracle.end_order),
        "ongoing_trials": {k: t.trial_id for k, t in oracle.ongoing_trials.items()},
        "tuner_ids": sorted(oracle.tuner_ids),
        "pareto_front": [t.trial_id for t in oracle.pareto_front()],
        "generation": oracle.generation,
        "parents": {trial_id: oracle.parents_of(trial_id) for trial_id in oracle.trials},
    }


def main(argv=None) -> int:
    args = _arguments(argv)
    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    chief = "chief" in tuner_id
    if args.wait_for:
        open(os.path.join(args.markers, f"{os.getpid()}.ready"), "w").close()
        deadline = time.monotonic() + 120
        while not os.path.exists(args.wait_for):
            if time.monotonic() > deadline:
                print(f"{args.wait_for} never appeared", file=sys.stderr)
                return 3
            time.sleep(0.05)
    if chief and args.fast_poll:
        # KerasTuner's chief checks every 20 s whether the search is over once a
        # worker has been told to stop; the test shortens that wait (only the
        # interval: the chief's logic is KerasTuner's own).
        from keras_tuner.src.distribute import oracle_chief

        oracle_chief.time = types.SimpleNamespace(sleep=lambda s: time.sleep(min(s, 0.2)))
    recorder = _Recorder(args, tuner_id)
    build = _synthetic if args.kind == "synthetic" else _flatnas
    tuner, fit_args, fit_kwargs = build(args, recorder)
    print(f"{tuner_id} (pid {os.getpid()}) joins the search", flush=True)
    tuner.search(*fit_args, **fit_kwargs)
    print(f"{tuner_id} (pid {os.getpid()}) leaves the search", flush=True)
    if chief and args.summary:
        with open(args.summary + ".tmp", "w") as file:
            json.dump(_summary(tuner.oracle), file, default=str)
        os.replace(args.summary + ".tmp", args.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
