"""Cost of a SAM step relative to a plain step, measured side by side.

The same small CNN (same initial weights) is built twice, as a plain
`keras.Model` and as a `SAMModel`; both train on the same batch through the
same compiled Keras train function that `fit` uses. Steps alternate between
the two models so that machine noise hits both alike, and the medians are
compared. SAM does two forward/backward passes, so 2.0 is the floor.

Usage:
    python benchmarks/sam_overhead.py [--steps 40] [--batch-size 128] [--jit]

Prints one JSON object with both median step times (seconds) and their ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from flatnas_tf import SAMModel


def small_cnn(model_class, **kwargs) -> keras.Model:
    """A 32x32x3 CNN of four conv/BatchNorm/ReLU blocks and a dense head."""
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for filters in (32, 32, 64, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        if filters == 64 or x.shape[1] == 32:
            x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return model_class(inputs, keras.layers.Dense(10)(x), **kwargs)


def _compiled(model: keras.Model, jit: bool) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=5e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit,
    )
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per model")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--jit", action="store_true", help="compile with XLA")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    plain = _compiled(small_cnn(keras.Model), args.jit)
    sam = _compiled(small_cnn(SAMModel, rho=0.05), args.jit)
    sam.set_weights(plain.get_weights())

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.batch_size, 32, 32, 3)).astype("float32") / 255.0
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
    print(
        json.dumps(
            {
                "benchmark": "sam_overhead",
                "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
                "machine": platform.machine(),
                "jit_compile": args.jit,
                "batch_size": args.batch_size,
                "steps": args.steps,
                "params": plain.count_params(),
                "plain_step_median_s": round(plain_median, 6),
                "sam_step_median_s": round(sam_median, 6),
                "ratio_sam_over_plain": round(sam_median / plain_median, 4),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
