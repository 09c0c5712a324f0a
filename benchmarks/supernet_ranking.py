"""Does a supernet rank the flatness/OOD study's architectures as training them from scratch does?

The study's records (`flatness_ood_study.py`) are from-scratch references
already paid for: architecture i of the default space, trained for the
study's epochs with every training seed, measured on the study's split. This
benchmark trains (or resumes) a supernet at one width on the same split and
measures the study's architectures at that width through it, as a search
through the supernet does (`SupernetTuner.train_and_measure`):

    inherited   the supernet's weights, BatchNorm statistics recalibrated (E = 0)
    supernet    the same, fine-tuned --fine-tune-epochs with the space's step
                (left out with --fine-tune-epochs 0: a search's E = 0)

and compares each against the seed-mean of the study's records:

    tau         Kendall tau and Spearman (95 % bootstrap intervals) between
                the supernet's figure and the scratch one, for validation
                accuracy and for R at the supernet search's sigma
    one seed    the supernet's tau against each from-scratch training seed
                beside the tau between two such seeds, and their difference
                (paired bootstrap): does the supernet predict a from-scratch
                run as well as training from scratch again does? Seeds that
                barely agree leave any supernet a low tau (`seed_comparison`)
    spread      the range of each column (a supernet that has not told its
                sub-networks apart squeezes them into a few points)

Issue 26's target: tau >= 0.5 on at least 12 architectures, so that a
surrogate can learn from candidates measured through the supernet. The
supernet (tied to the study's split) and a JSONL line per measured candidate
(its settings and hyperparameters with it) live in --work, so an interrupted
run resumes: the supernet after its last finished epoch, the candidates
after the last one measured.

Usage:
    python benchmarks/supernet_ranking.py --data npz:../shared/data/cifar10_subset_dev.npz
        --records docs/results/flatness_ood/cifar10/records.jsonl [--width 0.25]
        [--supernet-epochs 30] [--fine-tune-epochs 1] [--work DIR]
        [--out docs/benchmarks/supernet_ranking.json]

Prints one JSON object (with the run's settings, machine, commit and date: `common.report`).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import statistics
import sys
import time

import numpy as np

if __package__ in (None, ""):  # run as a script: make the sibling modules importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from common import ROOT, add_out_argument, report, safe_name, shown_path  # noqa: E402
from flatness_ood_study import (  # noqa: E402
    VALIDATION_FRACTION,
    load_study_data,
    number_list,
    study_space,
)
from rank_stats import bootstrap, kendall  # noqa: E402
from study_analysis import (  # noqa: E402
    kept_and_excluded,
    mean_tau_between,
    read_records,
    seed_columns,
)
from weight_sharing import Records, correlations, measure  # noqa: E402

DEFINING = ("data", "split_seed", "width", "depths", "supernet_epochs", "fine_tune_epochs",
            "batch_size", "samples", "sigma")  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--data", default="digits", help="The study's data set spec.")
    add("--records", required=True, help="The study's records.jsonl (the scratch reference).")
    add("--split-seed", type=int, default=0, help="The study's split seed.")
    add("--width", type=float, default=0.25, help="The supernet's width multiplier.")
    add("--depths", type=number_list(int), default=[2, 3, 4], help="The study's stage depths.")
    add("--archs", type=int, default=None, help="Use the first N architectures at --width.")
    add("--supernet-epochs", type=int, default=30)
    add("--fine-tune-epochs", type=int, default=1)
    add("--batch-size", type=int, default=64)
    add("--samples", type=int, default=None, help="Perturbations per R (default: the study's).")
    add("--sigma", type=float, default=0.05, help="R's sigma (one the study recorded).")
    add(
        "--work",
        type=pathlib.Path,
        default=None,
        help="Supernet and measured candidates (default: runs/supernet_ranking/<data>-w<width>).",
    )
    add_out_argument(parser, "supernet_ranking")
    return parser.parse_args(argv)


def _usable_by_arch(records: list[dict], data: str, width: float) -> dict[int, list[dict]]:
    """The usable study records of `data` at `width`, by architecture."""
    kept, _ = kept_and_excluded(r for r in records if r.get("stage") == "study")
    by_arch: dict[int, list[dict]] = {}
    for record in kept:
        if record["data"] == data and record["hyperparameters"]["width_mult"] == width:
            by_arch.setdefault(record["arch"], []).append(record)
    return by_arch


def seed_comparison(
    records: list[dict], data: str, width: float, sigma: float, supernet: dict[int, dict]
) -> dict:
    """Does the supernet rank the architectures as well as a second from-scratch seed does?

    Two from-scratch training seeds of the same architectures do not agree
    perfectly, so a supernet's tau against one of them has a ceiling below 1.
    Over the architectures trained with every seed, with one bootstrap over
    architectures (paired, so the difference has its own interval; the
    seeds themselves are not resampled):

        seed_vs_seed      mean Kendall tau between pairs of scratch seeds
        supernet_vs_seed  mean Kendall tau between the supernet and each seed
        difference        supernet_vs_seed - seed_vs_seed: about 0 when the
                          supernet predicts a from-scratch run as well as
                          training from scratch again does

    Args:
        records: The study's records (`read_records`).
        data: The data set spec the records must have been trained on.
        width: The supernet's width.
        sigma: The sigma of R.
        supernet: {arch: figures} as the supernet measured them (the keys
            "val_accuracy" and "robustness").

    Returns:
        {"architectures": n, "seeds": s, "val_accuracy": {...}, "robustness":
        {...}}, each figure's three statistics as [value, low, high]; None
        where undefined (seed_vs_seed and difference with one seed, all
        three below 3 architectures).
    """
    by_arch = _usable_by_arch(records, data, width)
    chosen = [record for arch in supernet for record in by_arch.get(arch, [])]

    def supernet_vs_seed(*columns: np.ndarray) -> float:
        return statistics.fmean(kendall(columns[0], column) for column in columns[1:])

    def seed_vs_seed(*columns: np.ndarray) -> float:
        return mean_tau_between(*columns[1:])

    def difference(*columns: np.ndarray) -> float:
        return supernet_vs_seed(*columns) - seed_vs_seed(*columns)

    scratch_figures = {
        "val_accuracy": lambda record: record["val_accuracy"],
        "robustness": lambda record: record["R"][f"{sigma:g}"],
    }
    result: dict = {}
    for name, figure in scratch_figures.items():
        archs, seeds = seed_columns(chosen, figure)
        result.update(architectures=len(archs), seeds=len(seeds))
        columns = [[supernet[arch][name] for arch in archs], *seeds]
        result[name] = {}
        for statistic in (supernet_vs_seed, seed_vs_seed, difference):
            found = bootstrap(statistic, columns) if seeds else None
            ends = (found.value, found.low, found.high) if found else (math.nan,) * 3
            result[name][statistic.__name__] = [  # JSON has no NaN
                None if math.isnan(x) else round(x, 3) for x in ends
            ]
    return result


def scratch_reference(records: list[dict], data: str, width: float, sigma: float) -> dict:
    """Architecture -> the seed-mean figures of its study records at `width`.

    Args:
        records: The study's records (`read_records`).
        data: The data set spec the records must have been trained on.
        width: The supernet's width: architectures of another are left out.
        sigma: The sigma of R (a key of each record's "R").

    Returns:
        {arch: {"hyperparameters", "val_accuracy", "robustness", "seeds", "samples"}},
        in arch order.

    Raises:
        SystemExit: No usable record, or records without R at `sigma`.
    """
    by_arch = _usable_by_arch(records, data, width)
    if not by_arch:
        raise SystemExit(f"no usable study record of {data} at width {width:g}")
    key = f"{sigma:g}"
    if any(key not in r["R"] for group in by_arch.values() for r in group):
        raise SystemExit(f"the study recorded no R at sigma {key}; pass one of its --sigmas")
    return {
        arch: {
            "hyperparameters": group[0]["hyperparameters"],
            "val_accuracy": statistics.fmean(r["val_accuracy"] for r in group),
            "robustness": statistics.fmean(r["R"][key] for r in group),
            "seeds": len(group),
            "samples": group[0]["samples"],
        }
        for arch, group in sorted(by_arch.items())
    }


def main(argv=None) -> dict:
    import keras
    import keras_tuner

    from flatnas_tf import TrainingConfig
    from flatnas_tf.app.split import DataSplit
    from flatnas_tf.app.training import HyperparameterValueError, check_values
    from flatnas_tf.space.sandwich import SupernetSettings, load_supernet, train_supernet
    from flatnas_tf.space.supernet import Supernet
    from flatnas_tf.tuners import SupernetTuner

    args = parse_args(argv)
    records = read_records(args.records)
    reference = scratch_reference(records, args.data, args.width, args.sigma)
    archs = list(reference)[: args.archs]
    if len(archs) < 3:
        raise SystemExit(f"{len(archs)} architectures at width {args.width:g}: need at least 3")
    if args.samples is None:
        args.samples = reference[archs[0]]["samples"]
    data = load_study_data(args)
    training = TrainingConfig(learning_rate=TrainingConfig.FINE_TUNE_LEARNING_RATE)
    at_width = argparse.Namespace(widths=[args.width], depths=args.depths)
    space = study_space(at_width, data, training.compile_settings())
    for arch in archs:
        try:
            check_values(space, reference[arch]["hyperparameters"])
        except HyperparameterValueError as error:
            raise SystemExit(f"architecture {arch}: {error} (pass the study's --depths)") from None
    run_name = f"{safe_name(args.data)}-w{args.width:g}"
    work = args.work or ROOT / "runs" / "supernet_ranking" / run_name
    work.mkdir(parents=True, exist_ok=True)
    settings = {name: getattr(args, name) for name in DEFINING}
    settings = json.loads(json.dumps({**settings, "training": training.to_settings()}))
    epochs_by_way = {"inherited": 0, "supernet": args.fine_tune_epochs}
    if not args.fine_tune_epochs:  # fine-tuning for 0 epochs is the inherited way again
        del epochs_by_way["supernet"]
    path = work / "measured.jsonl"  # inherited lines serve every --fine-tune-epochs
    by_way = {
        way: Records(path, {**settings, "fine_tune_epochs": epochs})
        for way, epochs in epochs_by_way.items()
    }
    train = data.batches("train", args.batch_size, training=True, seed=0)
    validation = data.batches("validation", 256)

    keras.utils.set_random_seed(0)
    started = time.perf_counter()
    train_supernet(
        Supernet(space, width=args.width),
        train,
        SupernetSettings(epochs=args.supernet_epochs),
        work / "supernet",
        data_description=DataSplit(args.data, args.split_seed, VALIDATION_FRACTION).identity(),
        verbose=2,
    )
    supernet, state = load_supernet(work / "supernet", space)
    supernet_s = sum(entry["seconds"] for entry in state["history"])
    print(f"supernet: {supernet_s:.0f} s of training ({time.perf_counter() - started:.0f} s now)")

    tuner = SupernetTuner(
        supernet, samples=args.samples, sigma=args.sigma, seed=0, directory=str(work),
        project_name="through", max_params=None, overwrite=True,
    )  # fmt: skip
    for way, epochs in epochs_by_way.items():
        measured = by_way[way]
        for arch in archs:
            values = reference[arch]["hyperparameters"]
            if (way, arch) in measured.items:
                if measured.items[(way, arch)]["hyperparameters"] != values:
                    raise SystemExit(f"{measured.path} measured another architecture {arch}")
                continue
            hp = keras_tuner.HyperParameters()
            space.declare_hyperparameters(hp)
            hp.values.update(values)
            figures, wall = measure(tuner, hp, train, validation, epochs)
            measured.add({"way": way, "arch": arch, "hyperparameters": values,
                          "figures": figures, "wall_s": wall})  # fmt: skip
            print(f"{way} arch {arch}: val {100 * figures['val_accuracy']:.1f}% (scratch "
                  f"{100 * reference[arch]['val_accuracy']:.1f}%) R {figures['robustness']:.2f} "
                  f"({wall:.1f} s)", flush=True)  # fmt: skip

    def column(way: str, figure: str) -> list[float]:
        scale = 100 if figure == "val_accuracy" else 1
        if way == "scratch":
            return [scale * reference[a][figure] for a in archs]
        return [scale * by_way[way].items[(way, a)]["figures"][figure] for a in archs]

    measured_ways = list(epochs_by_way)
    ways = (*measured_ways, "scratch")
    result = {
        "measured": shown_path(path),
        "architectures": archs,
        "scratch_seeds": [reference[a]["seeds"] for a in archs],
        "supernet_training_s": round(supernet_s, 1),
        "against_one_seed": {
            way: seed_comparison(
                records,
                args.data,
                args.width,
                args.sigma,
                {arch: by_way[way].items[(way, arch)]["figures"] for arch in archs},
            )
            for way in measured_ways
        },
        "ranking": {
            f"{way}_vs_scratch": {
                figure: correlations(column(way, figure), column("scratch", figure))
                for figure in ("val_accuracy", "robustness")
            }
            for way in measured_ways
        },
        "val_accuracy_pct_range": {
            way: [
                round(min(column(way, "val_accuracy")), 2),
                round(max(column(way, "val_accuracy")), 2),
            ]
            for way in ways
        },  # fmt: skip
        "candidate_s_median": {
            way: round(statistics.median(by_way[way].items[(way, a)]["wall_s"] for a in archs), 2)
            for way in measured_ways
        },
        "per_architecture": [
            {
                "arch": a,
                **{
                    way: [
                        round(column(way, "val_accuracy")[i], 2),
                        round(column(way, "robustness")[i], 3),
                    ]
                    for way in ways
                },
            }
            for i, a in enumerate(archs)
        ],  # fmt: skip
    }
    return report("supernet_ranking", result, args)


if __name__ == "__main__":
    main()
