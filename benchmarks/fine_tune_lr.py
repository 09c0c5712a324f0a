"""Fine-tuning a candidate that inherits a supernet's weights: which learning rate, how long.

For K random architectures of the supernet's space, each fine-tuned through
`SupernetTuner.train_and_measure` (warm-up + cosine schedule, ASAM rho 0.5,
BatchNorm recalibration, one measurement) for each (peak learning rate,
epochs) pair given, side by side in one run on the same supernet and data:
median validation accuracy and R, and seconds per candidate. Epochs 0 is
the inherited weights with recalibrated statistics only.

Usage:
    python benchmarks/fine_tune_lr.py --supernet-dir DIR --data SPEC [--max-train N]
        [--archs 6] [--rates 0.1,0.02,0.005] [--epochs 0,1]
        [--out docs/benchmarks/fine_tune_lr.json]

The supernet directory is one `train_supernet` (or `flatnas-tf supernet`, or
`benchmarks/weight_sharing.py --supernet-dir`) wrote for the same data.
Prints one JSON object (with the run's settings, machine, commit and date: `common.report`).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time

from common import add_out_argument, report

from flatnas_tf import FlatNASHyperModel, TrainingSettings, load_dataset
from flatnas_tf.space.sandwich import load_supernet, read_supernet_state
from flatnas_tf.tuners import SupernetTuner


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet-dir", required=True)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--max-train", type=int, default=None)
    parser.add_argument("--archs", type=int, default=6)
    parser.add_argument("--rates", default="0.1,0.02,0.005")
    parser.add_argument("--epochs", default="0,1")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=10)
    add_out_argument(parser, "fine_tune_lr")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    data = load_dataset(args.data)
    if args.max_train:
        data = dataclasses.replace(data, train=data.train.take(args.max_train))
    train = data.batches("train", args.batch_size, training=True, seed=0)
    validation = data.batches("validation", 256)
    work = tempfile.mkdtemp()
    saved_space = read_supernet_state(args.supernet_dir)["space"]
    rows = []
    for epochs in (int(e) for e in args.epochs.split(",")):
        for rate in [float(r) for r in args.rates.split(",")] if epochs else [0.0]:
            # The supernet's own space; at 0 epochs nothing trains, so the rate is moot.
            training = TrainingSettings(learning_rate=rate) if epochs else TrainingSettings()
            space = FlatNASHyperModel(**saved_space, training=training)
            supernet, state = load_supernet(args.supernet_dir, space)
            tuner = SupernetTuner(
                supernet, samples=args.samples, seed=0, directory=work, project_name=f"{rate}"
            )
            accuracy, robustness, seconds = [], [], []
            for arch in range(args.archs):
                hp = supernet.space.random_hyperparameters(arch)
                start = time.perf_counter()
                _, figures = tuner.train_and_measure(
                    hp, train, validation_data=validation, epochs=epochs, verbose=0, shuffle=False
                )
                seconds.append(time.perf_counter() - start)
                accuracy.append(100 * figures["val_accuracy"])
                robustness.append(figures["robustness"])
            rows.append(
                {
                    "epochs": epochs,
                    "learning_rate": rate if epochs else None,
                    "val_accuracy_pct": [round(a, 2) for a in accuracy],
                    "median_val_accuracy_pct": round(statistics.median(accuracy), 2),
                    "median_R": round(statistics.median(robustness), 2),
                    "median_s_after_first": round(statistics.median(seconds[1:]), 1),
                }
            )
            print(rows[-1], flush=True)
    result = {"supernet_dir": args.supernet_dir, "supernet_epochs": state["epochs_done"]}
    result["rows"] = rows  # the arguments are under "settings"
    return report("fine_tune_lr", result, args)


if __name__ == "__main__":
    main()
