"""Resident memory over a search's trials, with and without releasing trace leftovers.

Each trace of a training step that reaches tf.distribute's all-reduce (Keras'
optimizers do) registers a `CustomGradient-<n>` entry in TensorFlow's
process-wide gradient registry, which keeps that trial's whole graph alive.
`TrainingRegime.scope()` removes the entries of a trial when it ends. This
script runs the same small search twice, each in a fresh process (a leak from
one run must not land in the other): once as the library runs it, once with
the release switched off. After every trial it collects garbage and reads
resident memory (/proc/self/statm) and the number of live Python objects.

Usage:
    python benchmarks/trial_memory.py [--trials 20] [--out docs/benchmarks/trial_memory.json]

Prints one JSON object: per-trial resident MB and object counts for both
runs, the growth after trial 3 and the ratio of the growths (and the run's
settings, machine, commit and date: `common.report`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile

from common import add_out_argument, report


def _resident_mb() -> float:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(trials: int, release: bool) -> None:
    """One search of `trials` small candidates; prints one JSON line per trial."""
    import keras

    from flatnas_tf import FlatNASHyperModel, TrainingSettings, load_dataset
    from flatnas_tf.training import regime as regime_module
    from flatnas_tf.tuners import FlatNASTuner

    if not release:
        regime_module.release_custom_gradients = contextlib.nullcontext

    class WideSpace(FlatNASHyperModel):
        def build_backbone(self, hp, x):
            filters = hp.Int("filters", 2, 128, step=2)
            return keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)

    class MeasuringTuner(FlatNASTuner):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            gc.collect()
            print(json.dumps({"mb": _resident_mb(), "objects": len(gc.get_objects())}), flush=True)

    data = load_dataset("digits")
    space = WideSpace((8, 8, 1), 10, training=TrainingSettings(rho=0.5), width_multipliers=[0.05])
    with tempfile.TemporaryDirectory() as work:
        MeasuringTuner(
            space,
            max_params=None,
            chance_significance=None,
            population_size=5,
            max_trials=trials,
            seed=0,
            samples=1,
            directory=work,
            project_name="memory",
        ).search(
            data.batches("train", 64, training=True).take(2),
            validation_data=data.batches("validation", 180),
            epochs=1,
            verbose=0,
        )


def run(trials: int, release: bool) -> list[dict]:
    command = [sys.executable, __file__, "--child", "--trials", str(trials)]
    if not release:
        command.append("--keep")
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def main(argv: list[str] | None = None) -> dict | None:
    """Runs the benchmark on `argv` (default: the command line); returns the printed JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)
    add_out_argument(parser, "trial_memory")
    args = parser.parse_args(argv)
    if args.trials < 4:
        parser.error(f"--trials {args.trials}: at least 4 (memory growth is read after trial 3)")
    if args.child:
        child(args.trials, release=not args.keep)
        return None
    figures = {"trials": args.trials}
    for name, release in (("released", True), ("kept", False)):
        rows = run(args.trials, release)
        mb = [round(r["mb"]) for r in rows]
        objects = [r["objects"] for r in rows]
        figures[name] = {
            "resident_mb": mb,
            "objects": objects,
            "mb_growth_after_trial_3": mb[-1] - mb[2],
            "mb_growth_fraction": round((max(mb[3:]) - mb[2]) / mb[2], 3),
            "objects_per_trial_after_3": round((objects[-1] - objects[2]) / (len(objects) - 3)),
        }
    figures["growth_ratio_released_over_kept"] = round(
        figures["released"]["mb_growth_after_trial_3"]
        / max(1, figures["kept"]["mb_growth_after_trial_3"]),
        3,
    )
    return report("trial_memory", figures, args)


if __name__ == "__main__":
    main()
