"""Crash soak: kill a tiny search at random moments, rerun it, check its state every round.

A round starts `crash_soak.py child DIR` (a `FlatNASTuner` search on digits:
tiny convolutional candidates, 1 epoch each, training data in a fixed order,
TensorFlow op determinism, every fsync slowed by --write-delay so that kills
also land inside state writes), waits until the child has started searching,
kills it with SIGKILL after a random delay, and reads the directory back
without changing it:

  unreadable   oracle.json or a trial.json that does not parse
  lost         a trial seen finished in an earlier round that is no longer
               finished, or whose values or figures changed
  duplicated   a trial that started again after it was seen finished, or two
               trials with one configuration

and counts the kills that landed inside a state write (the temporary file
of the write is still there; the next run deletes it). Each kill comes about
one trial's time (at random, up to 1.5 trials) after the child starts
searching, so the search advances by about a trial per round.

After the rounds the search runs to its end, and is compared with an
uninterrupted run of the same seed in another directory:

  mismatched   a trained, finished trial whose checkpoint does not score the
               val_accuracy its trial.json records (clean accuracy on the
               validation data, as the trial measured it)
  archive_equal / front_equal   every trial's values and figures (to 1e-6), and
               the Pareto front's trial ids, equal the uninterrupted run's

Usage:
    python benchmarks/crash_soak.py [--rounds 50] [--trials 40] [--write-delay 0.1]
        [--out docs/benchmarks/crash_soak.json]

Prints one JSON object (with the run's settings, machine, commit and date:
`common.report`); the target is 0 unreadable, lost, duplicated and
mismatched, and equal archive and front.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import add_out_argument, report

from flatnas_tf.persistence.storage import PARTIAL

CHILD_READY = "searching"
RUN_LOG = "runs.log"  # "<trial_id>" per started trial, appended by the child
PROJECT = "search"
SEED = 5


def _settings(max_trials: int) -> dict:
    return dict(
        mode="flatnas",
        alpha=0.5,
        max_params=25_000,  # the widest candidates are over budget: recorded, never trained
        population_size=3,
        max_trials=max_trials,
        seed=SEED,
        samples=2,
        project_name=PROJECT,
    )


def _space():
    import keras

    from flatnas_tf import FlatNASHyperModel, TrainingSettings
    from flatnas_tf.space.hypermodel import batch_norm

    class TinySpace(FlatNASHyperModel):
        """Two convolutions with BatchNorm: 54 candidates of 11k to 60k parameters."""

        def build_backbone(self, hp, x):
            kernel = hp.Choice("kernel", [1, 3, 5])
            for stride in (1, 2):
                filters = hp.Choice(f"filters_{stride}", [8, 16, 32])
                x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False)(x)
                x = keras.layers.ReLU()(batch_norm()(x))
            return x

    settings = TrainingSettings(learning_rate=0.2, rho=0.5)
    return TinySpace((8, 8, 1), 10, training=settings, width_multipliers=[0.05, 0.1])


def _data():
    from flatnas_tf import load_dataset

    data = load_dataset("digits")
    return data.batches("train", 128), data.batches("validation", 90)  # fixed order


def _tuner(directory: Path, max_trials: int, log: Path | None = None):
    from flatnas_tf.tuners import FlatNASTuner

    class LoggingTuner(FlatNASTuner):
        def run_trial(self, trial, *args, **kwargs):
            if log is not None:
                with open(log, "a") as file:
                    file.write(f"{trial.trial_id}\n")
                    file.flush()
                    os.fsync(file.fileno())
            return super().run_trial(trial, *args, **kwargs)

    return LoggingTuner(_space(), directory=str(directory), **_settings(max_trials))


def child(directory: Path, max_trials: int, write_delay: float) -> None:
    """Runs the search in `directory` (resuming it), with slowed state writes."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    fsync = os.fsync

    def slow_fsync(handle: int) -> None:
        time.sleep(write_delay)
        fsync(handle)

    os.fsync = slow_fsync
    tuner = _tuner(directory, max_trials, directory / RUN_LOG)
    train, validation = _data()
    print(CHILD_READY, flush=True)
    tuner.search(train, validation_data=validation, epochs=1, verbose=0)


def _start_child(directory: Path, max_trials: int, write_delay: float) -> subprocess.Popen:
    command = [sys.executable, __file__, "child", str(directory), str(max_trials)]
    command.append(str(write_delay))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def _wait_ready(process: subprocess.Popen, timeout: float) -> list[str]:
    """Lines the child printed until it started searching (or exited)."""
    lines, deadline = [], time.monotonic() + timeout
    for line in process.stdout:
        lines.append(line)
        if line.strip() == CHILD_READY or time.monotonic() > deadline:
            break
    return lines


def run_to_end(directory: Path, max_trials: int, write_delay: float, timeout: float) -> float:
    """Runs (or resumes) the child search until it exits; returns its time after start-up."""
    process = _start_child(directory, max_trials, write_delay)
    try:
        lines = _wait_ready(process, timeout)
        start = time.monotonic()
        output, _ = process.communicate(timeout=timeout)
    finally:
        process.kill()
        process.wait()
    if process.returncode:
        raise RuntimeError(
            f"the search exited with {process.returncode}:\n{''.join(lines)}{output}"
        )
    return time.monotonic() - start


def read_state(directory: Path) -> tuple[dict[str, dict], bool]:
    """Trial states by id, and whether every state file parsed (read-only)."""
    project = directory / PROJECT
    readable = True
    oracle = project / "oracle.json"
    if oracle.exists():
        try:
            json.loads(oracle.read_text())
        except ValueError:
            readable = False
    trials = {}
    for path in sorted(project.glob("trial_*/trial.json")):
        try:
            state = json.loads(path.read_text())
        except ValueError:
            readable = False
            continue
        trials[state["trial_id"]] = state
    return trials, readable


def _figures(state: dict) -> dict[str, float]:
    figures = {}
    for name, metric in state["metrics"]["metrics"].items():
        observations = metric["observations"]
        if observations:
            figures[name] = observations[-1]["value"][-1]
    figures.pop("train_time_s", None)
    figures.pop("measure_time_s", None)
    return figures


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    if a.keys() != b.keys():
        return False
    for name in a:
        x, y = a[name], b[name]
        if x != y and not (x != x and y != y) and abs(x - y) > 1e-6 * max(1.0, abs(x)):
            return False
    return True


def _finished(trials: dict[str, dict]) -> dict[str, tuple]:
    return {
        trial_id: (json.dumps(s["hyperparameters"]["values"], sort_keys=True), _figures(s))
        for trial_id, s in trials.items()
        if s["status"] in ("COMPLETED", "FAILED")
    }


def _started(directory: Path) -> list[str]:
    log = directory / RUN_LOG
    return log.read_text().split() if log.exists() else []


def mismatched(directory: Path, max_trials: int) -> list[str]:
    """Finished, trained trials whose checkpoint does not score their recorded val_accuracy."""
    from flatnas_tf.robustness.flatness import PerturbedEvaluator

    tuner = _tuner(directory, max_trials)
    _, validation = _data()
    wrong = []
    for trial in tuner.oracle.trials.values():
        figures = tuner.figures(trial)
        if trial.status != "COMPLETED" or figures["val_accuracy"] != figures["val_accuracy"]:
            continue
        accuracy, _, _ = PerturbedEvaluator(tuner.load_model(trial), validation).clean()
        if abs(accuracy - figures["val_accuracy"]) > 1e-6:
            wrong.append(trial.trial_id)
    return wrong


def front(directory: Path, max_trials: int) -> list[str]:
    return sorted(t.trial_id for t in _tuner(directory, max_trials).pareto_front())


def soak(
    rounds: int, max_trials: int, write_delay: float, seed: int, work: Path, timeout: float = 600
) -> dict:
    """Kill/rerun rounds in `work/killed`, then the comparison with `work/reference`."""
    rng = random.Random(seed)
    reference = work / "reference"
    per_trial = run_to_end(reference, max_trials, write_delay, timeout) / max(
        1, len(_finished(read_state(reference)[0]))
    )
    directory = work / "killed"
    counts = {"unreadable": 0, "lost": 0, "duplicated": 0, "kills_inside_writes": 0}
    seen: dict[str, tuple] = {}
    details: dict[str, list] = {"rerun_after_finishing": [], "same_configuration": []}
    kills = logged = 0
    for _ in range(rounds):
        process = _start_child(directory, max_trials, write_delay)
        try:
            _wait_ready(process, timeout)
            time.sleep(rng.uniform(0, 1.5 * per_trial))  # about one trial further per round
            if process.poll() is None:
                kills += 1
        finally:
            process.kill()
            process.wait()
        counts["kills_inside_writes"] += len(list(directory.rglob(f".*{PARTIAL}*")))
        trials, readable = read_state(directory)
        counts["unreadable"] += not readable
        finished = _finished(trials)
        for trial_id, (values, figures) in seen.items():
            now = finished.get(trial_id)
            if now is None or now[0] != values or not _same(now[1], figures):
                counts["lost"] += 1
        started = _started(directory)
        rerun = [t for t in started[logged:] if t in seen]
        details["rerun_after_finishing"] += rerun
        counts["duplicated"] += len(rerun)
        logged = len(started)
        seen.update({k: v for k, v in finished.items() if k not in seen})
        by_configuration: dict[str, list[str]] = {}
        for trial_id, state in sorted(trials.items()):
            key = json.dumps(state["hyperparameters"]["values"], sort_keys=True)
            by_configuration.setdefault(key, []).append(trial_id)
        twins = [ids for ids in by_configuration.values() if len(ids) > 1]
        details["same_configuration"] += twins
        counts["duplicated"] += sum(len(ids) - 1 for ids in twins)
    run_to_end(directory, max_trials, write_delay, timeout)
    final, reference_trials = read_state(directory)[0], read_state(reference)[0]
    ours, theirs = _finished(final), _finished(reference_trials)
    differing = sorted(
        (
            t
            for t in ours.keys() | theirs.keys()
            if t not in ours
            or t not in theirs
            or ours[t][0] != theirs[t][0]
            or not _same(ours[t][1], theirs[t][1])
        ),
        key=int,
    )
    return {
        "rounds": rounds,
        "kills_during_search": kills,
        "trials": max_trials,
        "trials_finished": len(_finished(final)),
        "seconds_per_trial": round(per_trial, 2),
        **counts,
        "mismatched_figures": len(mismatched(directory, max_trials)),
        "archive_equal": not differing,
        "front_equal": front(directory, max_trials) == front(reference, max_trials),
        "trials_differing_from_reference": differing,
        **details,
    }


def main(argv: list[str] | None = None) -> dict | None:
    """Runs the benchmark on `argv` (default: the command line); returns the printed JSON."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        child(Path(argv[1]), int(argv[2]), float(argv[3]))
        return None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--write-delay", type=float, default=0.1, help="Seconds per fsync.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the kill times.")
    parser.add_argument("--keep", default=None, help="Work in this new directory and keep it.")
    add_out_argument(parser, "crash_soak")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as temporary:
        work = Path(args.keep or temporary)
        figures = soak(args.rounds, args.trials, args.write_delay, args.seed, work)
    return report("crash_soak", figures, args)


if __name__ == "__main__":
    main()
