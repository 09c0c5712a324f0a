"""How well the surrogate's predictors rank candidates they have not seen, on real trainings.

A learning curve of held-out Kendall tau (issue 26): the points are real
trained candidates in the order they were produced; for each N, every
predictor is fitted on the first N and ranks the rest.

    points     --source study   the "study" models of a flatness/OOD study's
                                records.jsonl (random architectures,
                                architecture-major; the training seeds of
                                one architecture are repeated points)
               --source trials  the trials of its searches (trials.jsonl, in
                                the order they were trained) under one
                                training (--training: asam, the arms A and
                                B, or sgd, the arm C), not mixed
    targets    val_accuracy; R (the study's R at --sigma, a search trial's
               own R); FlatNAS's objective 1 at --alpha
               (`objectives.robust_error`, its norm from the first N, what
               the oracle would know), both predicted directly and combined
               from the two predicted figures
    per N      held-out tau of each pool member alone and of adaptive
               switching (with its winner and cross-validated tau), and the
               seconds adaptive switching takes to fit (cross-validation and
               refit)

Usage:
    python benchmarks/predictor_quality.py \
        --records docs/results/flatness_ood/digits/records.jsonl --source study \
        [--sizes 10,20,40,80] [--out docs/benchmarks/predictor_quality.json]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

if __package__ in (None, ""):  # run as a script: make the sibling modules importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from common import add_out_argument, number_list, report  # noqa: E402
from flatness_ood_study import VALIDATION_FRACTION, records_so_far  # noqa: E402

from flatnas_tf.tuners import objectives  # noqa: E402
from flatnas_tf.tuners.predictors import POOL, AdaptivePredictor, kendall_tau  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--records", type=pathlib.Path, required=True, help="A study's records.jsonl.")
    add("--source", choices=("study", "trials"), default="study")
    add("--data", default="digits", help="The data set the space was built for.")
    add("--widths", type=number_list(float), default=[0.25, 0.5])
    add("--sigma", default="0.05", help="The study's R at this sigma (--source study).")
    add("--training", choices=("asam", "sgd"), default="asam", help="--source trials: whose.")
    add("--alpha", type=float, default=0.5)
    add("--sizes", type=number_list(int), default=[10, 20, 40, 80])
    add("--folds", type=int, default=10)
    add_out_argument(parser, "predictor_quality")
    args = parser.parse_args(argv)
    if not 0 <= args.alpha <= 1:
        parser.error("--alpha must be in [0, 1]")
    return args


def points(args: argparse.Namespace) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """(configurations, validation accuracy, R) of the chosen source, in order."""
    if args.source == "study":
        rows = [r for r in records_so_far(args.records) if r["stage"] == "study"]
        figures = [(r["val_accuracy"], r["R"][args.sigma]) for r in rows]
    else:
        rows = records_so_far(args.records.parent / "trials.jsonl")
        rows = [
            r
            for r in rows
            if r["training"] == args.training
            and np.isfinite(r["figures"].get("robustness", np.nan))
        ]
        figures = [(r["figures"]["val_accuracy"], r["figures"]["robustness"]) for r in rows]
    if not rows:
        raise SystemExit(f"no {args.source} points beside {args.records}")
    accuracy, robustness = np.array(figures, dtype=np.float64).T
    return [r["hyperparameters"] for r in rows], accuracy, robustness


def learning_curve(space, configurations, accuracy, robustness, args) -> list[dict]:
    """The held-out taus for each size of `args.sizes` smaller than the points."""
    rows = []
    for size in [n for n in args.sizes if 4 <= n < len(configurations) - 1]:
        train, test = slice(0, size), slice(size, None)
        seen, unseen = configurations[train], configurations[test]
        norm = objectives.alpha_norm(accuracy[train], robustness[train], population_size=1)
        targets = {
            "val_accuracy": accuracy,
            "robustness": robustness,
            "objective": objectives.robust_error(accuracy, robustness, args.alpha, norm),
        }
        row: dict = {"train_points": size, "test_points": len(configurations) - size}
        predicted = {}
        for name, y in targets.items():
            start = time.perf_counter()
            adaptive = AdaptivePredictor(space, folds=args.folds).fit(seen, y[train])
            seconds = time.perf_counter() - start
            predicted[name] = adaptive.predict(unseen)
            alone = {
                member: kendall_tau(
                    AdaptivePredictor(space, pool=[member], folds=2)
                    .fit(seen, y[train])
                    .predict(unseen),
                    y[test],
                )
                for member in POOL
            }
            row[name] = {
                "adaptive_tau": kendall_tau(predicted[name], y[test]),
                "winner": adaptive.selection.winner,
                "cross_validated_tau": adaptive.selection.tau,
                "trustworthy": adaptive.selection.trustworthy,
                "fit_s": round(seconds, 3),
                "member_tau": alone,
            }
        combined = objectives.robust_error(
            predicted["val_accuracy"], predicted["robustness"], args.alpha, norm
        )
        row["objective_combined_tau"] = kendall_tau(combined, targets["objective"][test])
        rows.append(row)
        print(
            f"N={size}: tau accuracy {row['val_accuracy']['adaptive_tau']:.2f}, "
            f"R {row['robustness']['adaptive_tau']:.2f}, objective direct "
            f"{row['objective']['adaptive_tau']:.2f} / combined "
            f"{row['objective_combined_tau']:.2f}",
            file=sys.stderr,
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> dict:
    """Measures the learning curve and reports it (see the module docstring)."""
    from flatnas_tf import FlatNASHyperModel, load_dataset

    args = parse_args(argv)
    configurations, accuracy, robustness = points(args)
    data = load_dataset(args.data, validation_fraction=VALIDATION_FRACTION)
    hypermodel = FlatNASHyperModel(
        data.input_shape, data.num_classes, width_multipliers=args.widths
    )
    space = hypermodel.random_hyperparameters(seed=0)
    curve = learning_curve(space, np.array(configurations), accuracy, robustness, args)
    figures = {
        "points": len(configurations),
        "source": args.source,
        "training": args.training if args.source == "trials" else "study",
        "val_accuracy_range": [float(accuracy.min()), float(accuracy.max())],
        "robustness_range": [float(robustness.min()), float(robustness.max())],
        "curve": curve,
    }
    return report("predictor_quality", figures, args)


if __name__ == "__main__":
    main()
