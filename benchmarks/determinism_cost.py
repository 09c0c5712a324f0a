"""What TensorFlow op determinism costs a trial, and whether a trial repeats without it.

`flatnas-tf search --deterministic` calls
`tf.config.experimental.enable_op_determinism()`, a process-wide switch, so
each measurement runs in a fresh process. Processes alternate between the two
settings (`--rounds` of each); every one trains and measures the same default
digits candidate with the same seed, as a search's trial does
(`FlatNASTuner.train_and_measure`). Reported: median wall time per setting and
their ratio, and whether the figures (validation accuracy, loss, R) of all
runs of a setting are bit-identical.

Usage:
    python benchmarks/determinism_cost.py [--rounds 2] [--epochs 8] [--depths 2,3,4]
        [--out docs/benchmarks/determinism_cost.json]

Prints one JSON object (with the run's settings, machine, commit and date: `common.report`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

from common import add_depths_argument, add_out_argument, report


def child(deterministic: bool, epochs: int, depths: list[int]) -> None:
    """One trial in this process; prints its figures and wall time as JSON."""
    import tensorflow as tf

    if deterministic:
        tf.config.experimental.enable_op_determinism()
    from flatnas_tf import FlatNASHyperModel, load_dataset
    from flatnas_tf.tuners import FlatNASTuner

    data = load_dataset("digits")
    space = FlatNASHyperModel(
        data.input_shape, data.num_classes, width_multipliers=(0.25, 0.5), depths=depths
    )
    with tempfile.TemporaryDirectory() as work:
        tuner = FlatNASTuner(space, seed=0, samples=10, directory=work, project_name="x")
        start = time.perf_counter()
        _, figures = tuner.train_and_measure(
            space.random_hyperparameters(0),
            data.batches("train", 64, training=True, seed=0),
            validation_data=data.batches("validation", 64),
            epochs=epochs,
            verbose=0,
        )
        wall = time.perf_counter() - start
    kept = {name: figures[name] for name in ("val_accuracy", "val_loss", "robustness", "loss")}
    print(json.dumps({"wall_s": wall, "figures": kept}))


def main(argv: list[str] | None = None) -> dict | None:
    """Runs the benchmark on `argv` (default: the command line); returns the printed JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=8)
    add_depths_argument(parser)
    parser.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    add_out_argument(parser, "determinism_cost")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child == "on", args.epochs, args.depths)
        return None
    runs: dict[str, list[dict]] = {"on": [], "off": []}
    for round_ in range(args.rounds):
        for setting in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
            command = [sys.executable, __file__, "--child", setting, "--epochs", str(args.epochs)]
            command += ["--depths", ",".join(map(str, args.depths))]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            runs[setting].append(json.loads(output.strip().splitlines()[-1]))
    summary = {"epochs": args.epochs, "rounds": args.rounds}
    for setting, results in runs.items():
        summary[f"determinism_{setting}"] = {
            "median_wall_s": round(statistics.median(r["wall_s"] for r in results), 2),
            "figures": [r["figures"] for r in results],
            "identical_across_runs": all(r["figures"] == results[0]["figures"] for r in results),
        }
    summary["ratio_on_over_off"] = round(
        summary["determinism_on"]["median_wall_s"] / summary["determinism_off"]["median_wall_s"], 3
    )
    return report("determinism_cost", summary, args)


if __name__ == "__main__":
    main()
