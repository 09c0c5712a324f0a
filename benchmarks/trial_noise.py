"""Repeatability of a trial: the same architectures trained under several seeds.

K architectures of the default space (seeded draws, `random_hyperparameters`)
are each trained and measured S times, exactly as a search's trial does
(`FlatNASTuner.train_and_measure`: seeded build, warm-up + cosine schedule,
BatchNorm recalibration, one measurement of validation accuracy and R), with
the search seed s = 0..S-1 seeding initialisation, dropout, data order and the
perturbations of R. Reported:

  per architecture   mean and s.d. (over seeds) of validation accuracy and R
  per seed pair      Kendall tau-b between the architectures' orders by
                     validation accuracy (and by R) under the two seeds
  summary            the largest s.d., the mean and the smallest tau

Every trained model is one line of `--records` (JSONL), so an interrupted run
resumes and a run with more seeds or architectures reuses what is there.

Usage:
    python benchmarks/trial_noise.py [--data digits] [--archs 6] [--seeds 3]
        [--epochs 8] [--rho 0.5] [--sam asam] [--max-train N] [--depths 2,3,4] [--records FILE]
        [--out docs/benchmarks/trial_noise.json]

Prints one JSON object (with the run's settings, machine, commit and date: `common.report`).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import pathlib
import statistics
import tempfile
import time

import keras
import numpy as np
from common import add_depths_argument, add_out_argument, append_json_line, report, shown_path
from rank_stats import kendall

from flatnas_tf import FlatNASHyperModel, TrainingConfig, load_dataset
from flatnas_tf.defaults import SAM_CHOICES, SCHEDULES
from flatnas_tf.tuners import FlatNASTuner

#: Settings that make two records comparable.
DEFINING = ("data", "max_train", "epochs", "batch_size", "widths", "depths", "sam", "rho", "lr",
            "schedule", "samples", "sigma")  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--max-train", type=int, default=None, help="cut the training split")
    parser.add_argument("--archs", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)  # a search trial's default
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--widths", default="0.25,0.5")
    add_depths_argument(parser)
    parser.add_argument("--sam", choices=SAM_CHOICES, default=SAM_CHOICES[0])
    parser.add_argument("--rho", type=float, default=0.5)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--schedule", choices=SCHEDULES, default=SCHEDULES[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--sigma", type=float, default=0.05)
    parser.add_argument("--records", default=None, help="JSONL file of trained models")
    add_out_argument(parser, "trial_noise")
    args = parser.parse_args(argv)
    if args.seeds < 2 or args.archs < 2:
        parser.error("--seeds and --archs must be at least 2: the noise is the spread over seeds")
    return args


def _key(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in DEFINING}


def _load_records(path: pathlib.Path, settings: dict) -> dict[tuple[int, int], dict]:
    records = {}
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["settings"] == settings:
                records[(record["arch"], record["seed"])] = record
    return records


def training_config(args) -> TrainingConfig:
    """How every model of the run trains (--lr, --sam, --rho, --schedule)."""
    return TrainingConfig(learning_rate=args.lr, sam=args.sam, rho=args.rho, schedule=args.schedule)


def train_one(args, data, hypermodel, arch: int, seed: int, work: str) -> dict:
    """Trains and measures architecture `arch` under search seed `seed`, as a trial."""
    hp = hypermodel.random_hyperparameters(arch)
    tuner = FlatNASTuner(
        hypermodel,
        seed=seed,
        sigma=args.sigma,
        samples=args.samples,
        regime=training_config(args).regime(),
        directory=work,
        project_name=f"arch{arch}_seed{seed}",
    )
    keras.utils.set_random_seed(seed)  # the pipeline's shuffling depends on the global seed
    train = data.batches("train", args.batch_size, training=True, seed=seed)
    start = time.perf_counter()
    model, figures = tuner.train_and_measure(
        hp,
        train,
        validation_data=data.batches("validation", 256),
        epochs=args.epochs,
        verbose=0,
        shuffle=False,
    )
    return {
        "arch": arch,
        "seed": seed,
        "hyperparameters": dict(hp.values),
        "params": int(model.count_params()),
        "figures": figures,
        "wall_s": time.perf_counter() - start,
    }


def summarise(records: dict[tuple[int, int], dict], archs: int, seeds: int) -> dict:
    """Per-architecture spread and seed-vs-seed rank agreement."""
    table = []
    for arch in range(archs):
        runs = [records[(arch, seed)] for seed in range(seeds)]
        accuracy = [100 * r["figures"]["val_accuracy"] for r in runs]
        robustness = [r["figures"]["robustness"] for r in runs]
        table.append(
            {
                "arch": arch,
                "params": runs[0]["params"],
                "val_accuracy_pct": [round(a, 2) for a in accuracy],
                "val_accuracy_mean": round(statistics.mean(accuracy), 2),
                "val_accuracy_sd": round(statistics.stdev(accuracy), 2),
                "R": [round(r, 2) for r in robustness],
                "R_mean": round(statistics.mean(robustness), 2),
                "R_sd": round(statistics.stdev(robustness), 2),
            }
        )
    taus = {"val_accuracy": [], "R": []}
    for first, second in itertools.combinations(range(seeds), 2):
        for name, column in (("val_accuracy", "val_accuracy_pct"), ("R", "R")):
            a = np.array([row[column][first] for row in table])
            b = np.array([row[column][second] for row in table])
            taus[name].append(round(kendall(a, b), 3))
    sds = [row["val_accuracy_sd"] for row in table]
    return {
        "architectures": table,
        "kendall_tau_by_seed_pair": taus,
        "summary": {
            "max_val_accuracy_sd": max(sds),
            "mean_val_accuracy_sd": round(statistics.mean(sds), 2),
            "mean_R_sd": round(statistics.mean(row["R_sd"] for row in table), 2),
            "min_tau_val_accuracy": min(taus["val_accuracy"]),
            "mean_tau_val_accuracy": round(statistics.mean(taus["val_accuracy"]), 3),
            "mean_tau_R": round(statistics.mean(taus["R"]), 3),
        },
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    data = load_dataset(args.data)
    if args.max_train:
        data = dataclasses.replace(data, train=data.train.take(args.max_train))
    widths = [float(w) for w in args.widths.split(",")]
    training = training_config(args).compile_settings()
    hypermodel = FlatNASHyperModel(
        data.input_shape,
        data.num_classes,
        training=training,
        width_multipliers=widths,
        depths=args.depths,
    )
    settings = json.loads(json.dumps(_key(args)))
    path = pathlib.Path(args.records or tempfile.mkstemp(suffix=".jsonl")[1])
    records = _load_records(path, settings)
    with tempfile.TemporaryDirectory() as work:
        for seed in range(args.seeds):  # seed-major: a partial run already pairs seeds
            for arch in range(args.archs):
                if (arch, seed) in records:
                    continue
                record = train_one(args, data, hypermodel, arch, seed, work)
                record["settings"] = settings
                records[(arch, seed)] = record
                append_json_line(path, record)
                figures = record["figures"]
                print(
                    f"arch {arch} seed {seed}: val {100 * figures['val_accuracy']:.1f}% "
                    f"R {figures['robustness']:.2f} ({record['wall_s']:.0f} s)",
                    flush=True,
                )
    result = {"records": shown_path(path)}  # the arguments are under "settings"
    result.update(summarise(records, args.archs, args.seeds))
    result["mean_trial_wall_s"] = round(
        statistics.mean(records[(a, s)]["wall_s"] for a in range(args.archs)
                        for s in range(args.seeds)), 1)  # fmt: skip
    return report("trial_noise", result, args)


if __name__ == "__main__":
    main()
