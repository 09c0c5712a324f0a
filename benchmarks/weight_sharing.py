"""Weight sharing measured: ranking validity, accuracy at equal wall time, candidate cost.

K random architectures of the default space at one width (seeded draws,
`random_hyperparameters`) are evaluated four ways, each exactly as a search's
trial does it (`train_and_measure`: validation accuracy and R on the same
validation split):

  inherited   through the trained supernet, no fine-tuning (E = 0): inherited
              weights, BatchNorm statistics recalibrated
  supernet    through the supernet, fine-tuned --fine-tune-epochs with ASAM at
              --fine-tune-lr (default 0.01: what `search --supernet` uses)
  scratch     trained from random weights for --scratch-epochs (the generous
              budget the ranking is checked against)
  equal_time  trained from random weights for the epochs that fit in a
              supernet candidate's wall time, supernet training included and
              amortised over --amortise-trials trials

Reported:
  ranking     Kendall tau and Spearman (95 % bootstrap intervals) between the
              supernet (and inherited) figures and the scratch ones, for
              validation accuracy and for R
  accuracy    median validation accuracy of supernet vs equal_time candidates
  cost        seconds per supernet candidate after the first, the first's,
              supernet traces after the first candidate (0: nothing retraced),
              and the steady-state epoch time of the masked supernet vs the
              static candidate for the same architectures (the arithmetic the
              masks cost)

The supernet is trained once into --supernet-dir (resumed if interrupted);
every measured candidate is one line of --records (JSONL), so an interrupted
run resumes and reuses what is there.

Usage:
    python benchmarks/weight_sharing.py --data npz:../shared/data/cifar10_subset_dev.npz
        --max-train 2500 [--archs 12] [--width 0.25] [--depths 2,3,4] [--supernet-epochs 15]
        [--fine-tune-epochs 1] [--fine-tune-lr 0.01] [--scratch-epochs 12] [--records FILE]
        [--supernet-dir DIR]
        [--out docs/benchmarks/weight_sharing.json]

Prints one JSON object (with the run's settings, machine, commit and date: `common.report`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import statistics
import tempfile
import time

import keras
from common import add_depths_argument, add_out_argument, append_json_line, report, shown_path
from rank_stats import bootstrap, kendall, spearman

from flatnas_tf import FlatNASHyperModel, TrainingConfig, TrainingSettings, load_dataset
from flatnas_tf.space.sandwich import SupernetSettings, load_supernet, train_supernet
from flatnas_tf.space.supernet import Supernet
from flatnas_tf.tuners import FlatNASTuner, SupernetTuner

DEFINING = ("data", "max_train", "width", "depths", "supernet_epochs", "fine_tune_epochs",
            "fine_tune_lr", "scratch_epochs", "batch_size", "samples",
            "amortise_trials")  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--max-train", type=int, default=None, help="cut the training split")
    parser.add_argument("--archs", type=int, default=12)
    parser.add_argument("--width", type=float, default=0.25)
    add_depths_argument(parser)
    parser.add_argument("--supernet-epochs", type=int, default=15)
    parser.add_argument("--fine-tune-epochs", type=int, default=1)
    parser.add_argument(
        "--fine-tune-lr",
        type=float,
        default=TrainingConfig.FINE_TUNE_LEARNING_RATE,
        help="peak rate of the fine-tuning (search --supernet's default)",
    )
    parser.add_argument("--scratch-epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--amortise-trials", type=int, default=100)
    parser.add_argument("--cost-archs", type=int, default=3, help="archs timed epoch by epoch")
    parser.add_argument("--search-trials", type=int, default=0,
                        help="then run a search of N trials through the supernet")  # fmt: skip
    parser.add_argument("--records", default=None, help="JSONL file of measured candidates")
    parser.add_argument("--supernet-dir", default=None, help="supernet run directory")
    add_out_argument(parser, "weight_sharing")
    return parser.parse_args(argv)


class Records:
    """Measured candidates keyed by (way, arch), appended to a JSONL file."""

    def __init__(self, path: pathlib.Path, settings: dict):
        self.path, self.settings, self.items = path, settings, {}
        if path.exists():
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if record["settings"] == settings:
                    self.items[(record["way"], record["arch"])] = record

    def add(self, record: dict) -> dict:
        record["settings"] = self.settings
        self.items[(record["way"], record["arch"])] = record
        append_json_line(self.path, record)
        return record


def measure(tuner, hp, train, validation, epochs) -> tuple[dict, float]:
    """A candidate trained and measured as a trial is: (its figures, wall seconds)."""
    start = time.perf_counter()
    _, figures = tuner.train_and_measure(
        hp, train, validation_data=validation, epochs=epochs, verbose=0, shuffle=False
    )
    return figures, time.perf_counter() - start


def _epoch_seconds(model, train) -> float:
    """Wall time of a second epoch (the first one traces)."""
    model.fit(train, epochs=1, verbose=0, shuffle=False)
    start = time.perf_counter()
    model.fit(train, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - start


def correlations(a: list[float], b: list[float]) -> dict:
    """Kendall tau and Spearman of two columns, each [value, low, high] (95 % bootstrap)."""
    tau = bootstrap(kendall, [a, b])
    rho = bootstrap(spearman, [a, b])
    return {
        "kendall_tau": [round(tau.value, 3), round(tau.low, 3), round(tau.high, 3)],
        "spearman": [round(rho.value, 3), round(rho.low, 3), round(rho.high, 3)],
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    data = load_dataset(args.data)
    if args.max_train:
        data = dataclasses.replace(data, train=data.train.take(args.max_train))
    space = FlatNASHyperModel(
        data.input_shape, data.num_classes, width_multipliers=(args.width,), depths=args.depths
    )
    fine_tuning = FlatNASHyperModel(  # the same space, trained as search --supernet fine-tunes
        data.input_shape,
        data.num_classes,
        training=TrainingSettings(learning_rate=args.fine_tune_lr),
        width_multipliers=(args.width,),
        depths=args.depths,
    )
    settings = json.loads(json.dumps({name: getattr(args, name) for name in DEFINING}))
    records = Records(pathlib.Path(args.records or tempfile.mkstemp(suffix=".jsonl")[1]), settings)
    work = tempfile.mkdtemp()
    supernet_dir = pathlib.Path(args.supernet_dir or pathlib.Path(work) / "supernet")
    train = data.batches("train", args.batch_size, training=True, seed=0)
    validation = data.batches("validation", 256)

    keras.utils.set_random_seed(0)
    supernet = Supernet(fine_tuning, width=args.width)
    started = time.perf_counter()
    train_supernet(
        supernet, train, SupernetSettings(epochs=args.supernet_epochs), supernet_dir, verbose=2
    )
    supernet, state = load_supernet(supernet_dir, fine_tuning)
    supernet_s = sum(entry["seconds"] for entry in state["history"])
    print(f"supernet: {supernet_s:.0f} s of training ({time.perf_counter() - started:.0f} s now)")

    hps = []
    for arch in range(args.archs):
        hp = space.random_hyperparameters(arch)
        hp.values["width_mult"] = args.width
        hps.append(hp)
    common = dict(samples=args.samples, seed=0, directory=work, max_params=None)
    through = SupernetTuner(supernet, project_name="through", **common)
    scratch = FlatNASTuner(space, project_name="scratch", **common)

    traces = []
    for way, tuner, epochs in (
        ("inherited", through, 0),
        ("supernet", through, args.fine_tune_epochs),
        ("scratch", scratch, args.scratch_epochs),
    ):
        for arch, hp in enumerate(hps):
            if (way, arch) in records.items:
                continue
            figures, wall = measure(tuner, hp, train, validation, epochs)
            if tuner is through:
                traces.append(supernet.traces)
            records.add({"way": way, "arch": arch, "figures": figures, "wall_s": wall,
                         "params": space.count_params(hp)})  # fmt: skip
            print(f"{way} arch {arch}: val {100 * figures['val_accuracy']:.1f}% "
                  f"R {figures['robustness']:.2f} ({wall:.1f} s)", flush=True)  # fmt: skip

    supernet_walls = [records.items[("supernet", a)]["wall_s"] for a in range(args.archs)]
    per_candidate = statistics.median(supernet_walls[1:])
    budget = per_candidate + supernet_s / args.amortise_trials
    scratch_epoch = statistics.median(
        records.items[("scratch", a)]["figures"]["train_time_s"] / args.scratch_epochs
        for a in range(args.archs)
    )
    overhead = statistics.median(
        records.items[("scratch", a)]["wall_s"]
        - records.items[("scratch", a)]["figures"]["train_time_s"]
        for a in range(args.archs)
    )
    equal_epochs = max(1, int((budget - overhead) // scratch_epoch))
    for arch, hp in enumerate(hps):
        if ("equal_time", arch) not in records.items:
            figures, wall = measure(scratch, hp, train, validation, equal_epochs)
            records.add({"way": "equal_time", "arch": arch, "figures": figures, "wall_s": wall,
                         "epochs": equal_epochs})  # fmt: skip
            print(f"equal_time arch {arch}: val {100 * figures['val_accuracy']:.1f}% "
                  f"({wall:.1f} s, {equal_epochs} epochs)", flush=True)  # fmt: skip

    step_cost = []
    for arch, hp in enumerate(hps[: args.cost_archs]):
        static = space.build(hp.copy())
        static_s = _epoch_seconds(static, train)
        with supernet.candidate(hp) as model:
            masked_s = _epoch_seconds(model, train)
        step_cost.append({"arch": arch, "static_epoch_s": round(static_s, 2),
                          "supernet_epoch_s": round(masked_s, 2),
                          "ratio": round(masked_s / static_s, 2)})  # fmt: skip

    def column(way, figure):
        scale = 100 if figure == "val_accuracy" else 1
        return [scale * records.items[(way, a)]["figures"][figure] for a in range(args.archs)]

    ranking = {
        f"{way}_vs_scratch": {
            figure: correlations(column(way, figure), column("scratch", figure))
            for figure in ("val_accuracy", "robustness")
        }
        for way in ("supernet", "inherited")
    }
    first_supernet = records.items[("supernet", 0)]
    result = {  # the arguments (a superset of DEFINING) are under "settings"
        "records": shown_path(records.path),
        "supernet_training_s": round(supernet_s, 1),
        "supernet_parameters": int(supernet.count_params()),
        "ranking": ranking,
        "median_val_accuracy_pct": {
            way: round(statistics.median(column(way, "val_accuracy")), 2)
            for way in ("inherited", "supernet", "scratch", "equal_time")
        },
        "equal_time": {
            "per_candidate_budget_s": round(budget, 1),
            "amortised_supernet_s": round(supernet_s / args.amortise_trials, 1),
            "scratch_epochs_in_budget": equal_epochs,
            "supernet_minus_equal_time_points": round(
                statistics.median(column("supernet", "val_accuracy"))
                - statistics.median(column("equal_time", "val_accuracy")),
                2,
            ),
        },
        "cost": {
            "supernet_candidate_s_after_first_median": round(per_candidate, 2),
            "supernet_first_candidate_s": round(first_supernet["wall_s"], 2),
            "inherited_candidate_s_median": round(
                statistics.median(
                    records.items[("inherited", a)]["wall_s"] for a in range(1, args.archs)
                ),
                2,
            ),  # fmt: skip
            "scratch_candidate_s_median": round(
                statistics.median(
                    records.items[("scratch", a)]["wall_s"] for a in range(args.archs)
                ),
                2,
            ),  # fmt: skip
            "supernet_traces_per_candidate": traces,
            "epoch_time_masked_vs_static": step_cost,
        },
        "architectures": [
            {
                "arch": a,
                "params": records.items[("scratch", a)].get("params"),
                **{
                    way: [
                        round(v, 2)
                        for v in (column(way, "val_accuracy")[a], column(way, "robustness")[a])
                    ]
                    for way in ("inherited", "supernet", "scratch", "equal_time")
                },
            }
            for a in range(args.archs)
        ],  # fmt: skip
    }
    if args.search_trials:
        result["search"] = _search(args, supernet, supernet_s, train, validation, work)
    return report("weight_sharing", result, args)


def _search(args, supernet, supernet_s, train, validation, work) -> dict:
    """A search of --search-trials trials through the supernet: wall time and front."""
    tuner = SupernetTuner(
        supernet,
        max_trials=args.search_trials,
        population_size=5,
        samples=args.samples,
        seed=0,
        directory=work,
        project_name="search",
    )
    start = time.perf_counter()
    tuner.search(
        train, validation_data=validation, epochs=args.fine_tune_epochs, verbose=0, shuffle=False
    )
    search_s = time.perf_counter() - start
    front = [
        {"trial": t.trial_id, "val_accuracy_pct": round(100 * f["val_accuracy"], 2),
         "R": round(f["robustness"], 2), "params": int(f["params"])}
        for t in tuner.pareto_front()
        for f in [tuner.figures(t)]
    ]  # fmt: skip
    return {
        "trials": args.search_trials,
        "search_s": round(search_s, 1),
        "with_supernet_training_s": round(search_s + supernet_s, 1),
        "front": front,
    }


if __name__ == "__main__":
    main()
