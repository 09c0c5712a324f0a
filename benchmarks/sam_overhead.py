"""Cost of a SAM step relative to a plain step, measured side by side.

The same small CNN (same initial weights) is built twice, as a plain
`keras.Model` and as a `SAMModel`; both train on the same batch through the
same compiled Keras train function that `fit` uses. Steps alternate between
the two models so that machine noise hits both alike, and the medians are
compared. SAM does two forward/backward passes, so 2.0 is the floor.

Usage:
    python benchmarks/sam_overhead.py [--steps 40] [--batch-size 128] [--jit]
        [--out docs/benchmarks/sam_overhead.json]

Prints one JSON object with both median step times (seconds) and their ratio (and the
run's settings, machine, commit and date: `common.report`).
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from common import add_out_argument, compile_classifier, report, small_cnn

from flatnas_tf import SAMModel


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark on `argv` (default: the command line); returns the printed JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per model")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--jit", action="store_true", help="compile with XLA")
    add_out_argument(parser, "sam_overhead")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    plain = compile_classifier(small_cnn(keras.Model), args.jit)
    sam = compile_classifier(small_cnn(SAMModel, rho=0.05), args.jit)
    sam.set_weights(plain.get_weights())

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.batch_size, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, args.batch_size)
    batches = iter(tf.data.Dataset.from_tensors((x, y)).repeat())

    for model in (plain, sam):
        model.make_train_function()
    steps = {"plain": plain.train_function, "sam": sam.train_function}
    times: dict[str, list[float]] = {"plain": [], "sam": []}
    for i in range(args.warmup + args.steps):
        for name, step in steps.items():
            start = time.perf_counter()
            logs = step(batches)
            float(logs["loss"])  # wait for the step to finish
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)

    plain_median = statistics.median(times["plain"])
    sam_median = statistics.median(times["sam"])
    return report(
        "sam_overhead",
        {
            "jit_compile": args.jit,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "params": plain.count_params(),
            "plain_step_median_s": round(plain_median, 6),
            "sam_step_median_s": round(sam_median, 6),
            "ratio_sam_over_plain": round(sam_median / plain_median, 4),
        },
        args,
    )


if __name__ == "__main__":
    main()
