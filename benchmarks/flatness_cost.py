"""Cost of measuring R, against its floor and against the reference code's way.

On one small CNN and one data set, in one run:

  (a) `weight_robustness(model, data, samples=M)`: compiled perturb and
      restore functions and a compiled per-batch evaluation whose totals stay
      on the device; includes its own clean pass and its tracing (cold).
  (a_warm) the same measurement through a `PerturbedEvaluator` built once, as
      `FlatnessCallback` uses it epoch after epoch: no tracing.
  (b) M x `model.evaluate(data)`: the floor, since R needs M evaluation passes
      (the evaluate function is warmed up first, so (b) pays no tracing).
  (c) the reference code's approach: for each sample, clone the model, copy
      the weights to the host, perturb them there with NumPy, set them, evaluate.

Usage:
    python benchmarks/flatness_cost.py [--samples 20] [--examples 2000] [--rounds 2]
        [--out docs/benchmarks/flatness_cost.json]

Rounds alternate (a), (b), (c); medians over rounds are compared. Prints one
JSON object with the three times and the ratios a/b and a/c (and the run's settings,
machine, commit and date: `common.report`).
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from common import add_out_argument, cifar_or_random, compile_classifier, report, small_cnn

from flatnas_tf import PerturbedEvaluator, weight_robustness


def host_side_reference(model, x, y, sigma, samples, seed, batch_size):
    """The reference implementation's loop: clone, perturb on the host, evaluate."""
    rng = np.random.default_rng(seed)
    accuracies = []
    for _ in range(samples):
        clone = keras.models.clone_model(model)
        clone.compile(loss=model.loss, metrics=["accuracy"])
        clone.set_weights(model.get_weights())
        for variable in clone.trainable_variables:
            weights = variable.numpy()
            variable.assign(weights * (1 + sigma * rng.standard_normal(weights.shape)))
        accuracies.append(clone.evaluate(x, y, batch_size=batch_size, verbose=0)[1])
    return accuracies


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark on `argv` (default: the command line); returns the printed JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20, help="perturbations M")
    parser.add_argument("--examples", type=int, default=2000, help="evaluation images")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sigma", type=float, default=0.05)
    add_out_argument(parser, "flatness_cost")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    x, y, source = cifar_or_random(args.examples)
    model = compile_classifier(small_cnn())
    model.fit(x, y, batch_size=128, epochs=1, verbose=0)  # non-trivial weights
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size).cache()
    model.evaluate(dataset, verbose=0)  # warm (b) up and fill the cache

    def run_a():
        return weight_robustness(model, dataset, sigma=args.sigma, samples=args.samples).R

    evaluator = PerturbedEvaluator(model, dataset)
    evaluator.robustness(args.sigma, samples=1)  # trace once

    def run_a_warm():
        return evaluator.robustness(args.sigma, samples=args.samples).R

    def run_b():
        for _ in range(args.samples):
            model.evaluate(dataset, verbose=0)

    def run_c():
        host_side_reference(model, x, y, args.sigma, args.samples, 0, args.batch_size)

    runs = {"a": run_a, "a_warm": run_a_warm, "b": run_b, "c": run_c}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    medians = {name: statistics.median(values) for name, values in times.items()}
    return report(
        "flatness_cost",
        {
            "data": source,
            "examples": len(x),
            "batch_size": args.batch_size,
            "samples": args.samples,
            "rounds": args.rounds,
            "a_weight_robustness_s": round(medians["a"], 3),
            "a_warm_evaluator_reused_s": round(medians["a_warm"], 3),
            "b_m_times_evaluate_s": round(medians["b"], 3),
            "c_clone_and_host_perturb_s": round(medians["c"], 3),
            "ratio_a_over_b": round(medians["a"] / medians["b"], 4),
            "ratio_a_over_c": round(medians["a"] / medians["c"], 4),
            "ratio_a_warm_over_b": round(medians["a_warm"] / medians["b"], 4),
            "ratio_a_warm_over_c": round(medians["a_warm"] / medians["c"], 4),
        },
        args,
    )


if __name__ == "__main__":
    main()
