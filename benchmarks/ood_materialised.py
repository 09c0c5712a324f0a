"""Per-model OOD evaluation: corruptions computed on the fly against read from a corrupted set.

A study evaluates many models on the same corrupted test images. On the fly,
`evaluate_ood(model, data)` corrupts the test images for every model; with a
corrupted set (`write_corrupted_set`, written once) it reads them. Measured
in one run, on the same test images (`--images` of the shared CIFAR-10
subset's x_test; random images without it), the same corruptions
(`--corruptions`: by default the built-in benchmark set, 14, frost without
photographs) at severities 1..5:

    write_s          writing the set once (the corruptions, the .npy files,
                     checksums)
    on_the_fly_s     evaluate_ood(model, (x, y)) per model
    from_set_s       evaluate_ood(model, DIR) per model (reads, verifies the
                     checksums, predicts)
    ratio            from_set_s / on_the_fly_s
    break_even       models after which writing the set has paid for itself

Each per-model time is the median over `--models` models (a small CNN with
different random weights: the prediction cost is the same for every model,
the corruptions' cost is what differs), the two paths alternating, the
first model's tracing included in neither median (it is run once untimed on
each path). The two paths' tables must be equal (same images): the run
stops otherwise.

Usage:
    python benchmarks/ood_materialised.py [--images 2000] [--models 3]
        [--corruptions benchmark] [--out docs/benchmarks/ood_materialised.json]

Prints one JSON object (with the run's settings, machine, commit and date: `common.report`).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import keras
from common import add_out_argument, cifar_or_random, report, small_cnn
from flatness_ood_study import corruption_spec

from flatnas_tf import evaluate_ood, write_corrupted_set


def _model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return small_cnn()


def _timed(function):
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark on `argv` (default: the command line); returns the printed JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="test images per cell")
    parser.add_argument("--models", type=int, default=3, help="models timed on each path")
    parser.add_argument(
        "--corruptions",
        type=corruption_spec,
        default="benchmark",
        help="a named set (builtin, benchmark, all) or comma-separated corruption names",
    )
    add_out_argument(parser, "ood_materialised")
    args = parser.parse_args(argv)
    if args.images < 1 or args.models < 1:
        parser.error("--images and --models must be >= 1")
    x, y, source = cifar_or_random(args.images)
    with tempfile.TemporaryDirectory() as directory:
        write_s, corrupted = _timed(
            lambda: write_corrupted_set((x, y), directory, args.corruptions)
        )
        # Untimed first evaluations trace each path's functions.
        warm = _model(0)
        fly = evaluate_ood(warm, (x, y), args.corruptions)
        read = evaluate_ood(warm, directory)
        if fly.accuracy != read.accuracy or fly.clean_accuracy != read.clean_accuracy:
            raise SystemExit("the corrupted set's table differs from the on-the-fly table")
        on_the_fly, from_set = [], []
        for seed in range(1, args.models + 1):
            model = _model(seed)
            paths = [
                (on_the_fly, lambda m=model: evaluate_ood(m, (x, y), args.corruptions)),
                (from_set, lambda m=model: evaluate_ood(m, directory)),
            ]
            for times, evaluate in paths if seed % 2 else reversed(paths):
                times.append(_timed(evaluate)[0])
    fly_s, set_s = statistics.median(on_the_fly), statistics.median(from_set)
    return report(
        "ood_materialised",
        {
            "data": source,
            "images": len(x),
            "corruptions": list(corrupted.corruptions),
            "skipped": corrupted.skipped,
            "cells": len(corrupted.corruptions) * len(corrupted.severities),
            "tables_equal": True,
            "write_s": round(write_s, 2),
            "on_the_fly_s": [round(t, 2) for t in on_the_fly],
            "from_set_s": [round(t, 2) for t in from_set],
            "on_the_fly_median_s": round(fly_s, 2),
            "from_set_median_s": round(set_s, 2),
            "ratio_from_set_over_on_the_fly": round(set_s / fly_s, 4),
            "break_even_models": round(write_s / (fly_s - set_s), 2) if fly_s > set_s else None,
        },
        args,
    )


if __name__ == "__main__":
    main()
