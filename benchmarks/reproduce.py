"""Does flatness-aware search buy OOD robustness? The FlatNAS claim, checked end to end.

One command runs three resumable stages and writes a Markdown report. Every
finished model is a JSON record under `--work`; a rerun with the same
arguments skips what is recorded and picks up where an interrupted run stopped.

1. Correlation study. K architectures drawn uniformly (seeded) from the default
   space (`FlatNASHyperModel` with `--widths`), each trained from scratch as a
   search's trial is (ASAM `--rho`, SGD 0.1 with warm-up and cosine decay over
   E epochs, BatchNorm recalibrated; `flatnas_tf.training.regime`). Measured per model:
       val_accuracy, R, loss gap    on the validation split, as the search does
                                    (sigma, M samples)
       test_accuracy                clean accuracy on the whole test split
       corruption_accuracy, mCE     built-in corruption suite of the first
                                    `--ood-examples` test images (or TFDS
                                    cifar10_corrupted with `--ood cifar10_corrupted`)
       drop = ood_clean - corruption_accuracy   (same images, percentage points)
       relative = corruption_accuracy / ood_clean
   Spearman and Kendall correlations with 95 % bootstrap intervals
   (`rank_stats`) of R and of val_accuracy with corruption accuracy, drop and
   relative robustness, and the partial Spearman correlation of R with
   corruption accuracy (and with relative robustness) controlling for clean
   test accuracy. R is "lower = flatter": the claim predicts a NEGATIVE
   correlation of R with corruption accuracy that survives the control.

2. Search comparison. For each seed, `FlatNASTuner` runs with every alpha of
   `--alphas` (default 1.0 = accuracy only, and 0.5 = FlatNAS) at the same
   budget (population P, T trials, E epochs, same seed). The searches of one
   seed start from the same random first generation; a configuration that one
   search of the seed already trained is not trained again by another: its
   recorded figures are reused, so the searches differ only where their
   choices differ, not by retraining noise.
   Trade-off point: each search's Pareto front in its own objectives (robust
   error, params), each objective scaled to [0, 1] over the front; the point
   nearest the ideal corner (0, 0) in Euclidean distance (ties: lower robust
   error). It is retrained from scratch with each `--retrain-seeds` seed for
   `--retrain-epochs` epochs and measured as in the study.

3. Report: report.md, study.csv, search.csv, results.json, correlation.png and
   search.png in `--out`, with the exact command and the wall time. results.json
   also holds the run record of the other benchmarks (`common.run_record`: the
   settings, the machine, the git commit and a dirty flag, the date in UTC).

Example (the committed run, docs/results/cifar10_subset):
    python benchmarks/reproduce.py --archs 10 --epochs 2 --search-trials 8 \
        --population 4 --search-seeds 0,1
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import hashlib
import json
import math
import os
import pathlib
import shlex
import sys
import time

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

if __package__ in (None, ""):  # run as a script: make `rank_stats` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import rank_stats  # noqa: E402
from common import check_work_settings, run_record, write_atomic  # noqa: E402

from flatnas_tf import (  # noqa: E402
    DatasetUnavailableError,
    FlatNASHyperModel,
    ImageDataset,
    TrainingSettings,
    evaluate_ood,
    load_dataset,
    measure_candidate,
)
from flatnas_tf.app.evaluation import (  # noqa: E402
    OOD_CHOICES,
    accuracy_on_test_split,
    ood_source,
)
from flatnas_tf.app.split import DataSplit  # noqa: E402
from flatnas_tf.defaults import VALIDATION_FRACTION  # noqa: E402
from flatnas_tf.robustness.chance import DEFAULT_SIGNIFICANCE  # noqa: E402
from flatnas_tf.robustness.ood import SEVERITIES  # noqa: E402
from flatnas_tf.training.regime import SCHEDULES, TrainingRegime  # noqa: E402
from flatnas_tf.tuners import FlatNASTuner  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = "npz:" + str(ROOT.parent / "shared" / "data" / "cifar10_subset_dev.npz")


# -- settings -------------------------------------------------------------------


def _numbers(kind: type, minimum: float | None = None):
    def parse(text: str) -> list:
        try:
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            message = f"expected comma-separated {kind.__name__}s: {text!r}"
            raise argparse.ArgumentTypeError(message) from None
        if not values or (minimum is not None and min(values) < minimum):
            raise argparse.ArgumentTypeError(f"expected values >= {minimum}: {text!r}")
        return values

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--data", default=DEFAULT_DATA, help="Data set spec (flatnas_tf.load_dataset).")
    add("--max-train", type=int, default=None, help="Use only this many training images.")
    add("--work", default=str(ROOT / "runs" / "reproduce"), help="Records and searches.")
    add("--out", default=str(ROOT / "docs" / "results" / "cifar10_subset"), help="Report.")
    add("--archs", type=int, default=10, help="K: architectures in the correlation study.")
    add("--epochs", type=int, default=2, help="E: training epochs per model.")
    add("--batch-size", type=int, default=128)
    add("--rho", type=float, default=TrainingSettings().rho, help="ASAM radius.")
    add("--schedule", default="cosine", choices=list(SCHEDULES), help="Learning rate schedule.")
    add("--widths", type=_numbers(float, 0.0), default=[0.25, 0.5], help="Width choices.")
    add("--depths", type=_numbers(int, 1), default=[2, 3, 4], help="Stage depth choices.")
    add("--sigma", type=float, default=0.05, help="Relative weight noise of R.")
    add("--samples", type=int, default=10, help="M: perturbations averaged in R.")
    add("--ood", default="builtin", choices=OOD_CHOICES)
    add("--corruptions", default="benchmark", help="evaluate_ood's set, or a comma list.")
    add("--severities", type=_numbers(int, 1), default=list(SEVERITIES))
    add("--ood-examples", type=int, default=200, help="Test images per corruption cell.")
    add("--alphas", type=_numbers(float, 0.0), default=[1.0, 0.5])
    add("--search-seeds", type=_numbers(int, 0), default=[0, 1])
    add("--search-trials", type=int, default=8, help="T: trials per search.")
    add("--population", type=int, default=4, help="P: NSGA-II population.")
    add("--max-params", type=float, default=5e6)
    add(
        "--chance-significance",
        type=float,
        default=DEFAULT_SIGNIFICANCE,
        help="Searches exclude trials not above chance at this level; 0 keeps them all.",
    )
    add("--retrain-epochs", type=int, default=None, help="Default: --epochs.")
    add("--retrain-seeds", type=_numbers(int, 0), default=[0])
    add("--seed", type=int, default=0, help="Seed of the study's draws and training.")
    add("--stages", default="study,search,report", help="Subset of study,search,report.")
    args = parser.parse_args(argv)
    for name in ("archs", "epochs", "batch_size", "samples", "ood_examples", "search_trials"):
        least = 0 if name == "archs" else 1
        if getattr(args, name) < least:
            flag = f"--{name.replace('_', '-')}"
            parser.error(f"{flag} must be >= {least}; received {getattr(args, name)}")
    if args.population < 2:
        parser.error(f"--population must be >= 2; received {args.population}")
    if any(not 0.0 <= a <= 1.0 for a in args.alphas):
        parser.error(f"--alphas must lie in [0, 1]; received {args.alphas}")
    stages = {s.strip() for s in args.stages.split(",") if s.strip()}
    if not stages or not stages <= {"study", "search", "report"}:
        parser.error(f"--stages must name study, search and/or report; received {args.stages!r}")
    args.stages = stages
    if args.corruptions not in ("benchmark", "builtin", "all"):
        args.corruptions = [c.strip() for c in args.corruptions.split(",") if c.strip()]
    args.retrain_epochs = args.retrain_epochs or args.epochs
    return args


def load_data(args: argparse.Namespace) -> ImageDataset:
    """The data set, its training split cut to `--max-train` images if given."""
    data = load_dataset(
        args.data, validation_fraction=VALIDATION_FRACTION, seed=args.seed, download=False
    )
    if args.max_train:
        data = dataclasses.replace(data, train=data.train.take(args.max_train))
    return data


def make_hypermodel(args: argparse.Namespace, data: ImageDataset) -> FlatNASHyperModel:
    """The default FlatNAS space on this data set, with the chosen widths and ASAM radius."""
    return FlatNASHyperModel(
        data.input_shape,
        data.num_classes,
        training=TrainingSettings(rho=args.rho),
        width_multipliers=args.widths,
        depths=args.depths,
    )


# -- one model: train, then measure everything -------------------------------------


def train_and_measure(
    hypermodel: FlatNASHyperModel,
    hp: keras_tuner.HyperParameters,
    data: ImageDataset,
    args: argparse.Namespace,
    epochs: int,
    seed: int,
) -> dict:
    """Trains a fresh candidate and returns every figure the report uses.

    Args:
        hypermodel: The space.
        hp: The candidate.
        data: Train, validation and test splits.
        args: Measurement settings (sigma, samples, OOD set).
        epochs: Training epochs.
        seed: Seed of initialisation, shuffling, augmentation and R's noise.

    Returns:
        A JSON-ready record.
    """
    keras.utils.set_random_seed(seed)
    model = hypermodel.build(hp)
    start = time.perf_counter()
    train = data.batches("train", args.batch_size, training=True, seed=seed)
    # As a search's trial: the schedule, then BatchNorm recalibration.
    TrainingRegime(schedule=args.schedule).fit(model, train, epochs, verbose=0, shuffle=False)
    train_s = time.perf_counter() - start
    # As a trial measures: one clean pass and M perturbed ones on the validation split.
    figures = measure_candidate(
        model, data.batches("validation", 256), sigma=args.sigma, samples=args.samples, seed=seed
    )
    ood = evaluate_ood(
        model,
        ood_source(args.ood, data, DataSplit(args.data, args.seed, VALIDATION_FRACTION)),
        corruptions=args.corruptions,
        severities=args.severities,
        max_examples=args.ood_examples,
        clean=data,
    )
    ood_clean = ood.clean_accuracy
    record = {
        "hyperparameters": dict(hp.values),
        "seed": seed,
        "epochs": epochs,
        "params": int(model.count_params()),
        "val_accuracy": figures["val_accuracy"],
        "robustness": figures["robustness"],
        "robustness_loss_gap": figures["robustness_loss_gap"],
        "test_accuracy": accuracy_on_test_split(model, data),
        "ood_clean_accuracy": ood_clean,
        "corruption_accuracy": ood.mean_corruption_accuracy,
        "mce": ood.mce,
        "drop": 100.0 * (ood_clean - ood.mean_corruption_accuracy),
        "relative": ood.mean_corruption_accuracy / ood_clean if ood_clean else math.nan,
        "by_severity": {str(s): a for s, a in ood.by_severity().items()},
        "ood_set": ood.averaged_over,
        "train_s": train_s,
        "total_s": time.perf_counter() - start,
    }
    keras.backend.clear_session()
    return record


def _write_json(path: pathlib.Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(payload, indent=1, sort_keys=True))
    os.replace(partial, path)


def _read_json(path: pathlib.Path):
    return json.loads(path.read_text()) if path.exists() else None


# -- stage 1: correlation study --------------------------------------------------


def run_study(args, data, hypermodel, work: pathlib.Path, log: RunLog) -> list[dict]:
    """Trains and measures `--archs` random architectures (skipping recorded ones)."""
    records = []
    for index in range(args.archs):
        path = work / "study" / f"arch_{index:03d}.json"
        record = _read_json(path)
        if record is None:
            hp = hypermodel.random_hyperparameters(seed=args.seed * 100_003 + index)
            record = {
                "arch": index,
                **train_and_measure(hypermodel, hp, data, args, args.epochs, args.seed + index),
            }
            _write_json(path, record)
            log.progress(f"study {index + 1}/{args.archs}: {_summary(record)}")
        records.append(record)
    return records


def _summary(record: dict) -> str:
    return (
        f"val {100 * record['val_accuracy']:.1f}%, R {record['robustness']:.2f}, corrupted "
        f"{100 * record['corruption_accuracy']:.1f}%, {record['params']:,} params, "
        f"{record['total_s']:.0f} s"
    )


class RunLog:
    """The invocations on one work directory: command, start and last progress (runs.json).

    `end` moves on with every finished model, so an interrupted invocation
    still counts in the wall time up to its last record.
    """

    def __init__(self, path: pathlib.Path, command: str, start: float):
        self.path = path
        self.runs = (_read_json(path) or []) + [{"command": command, "start": start}]
        self.progress()

    def progress(self, message: str | None = None) -> None:
        """Records the time (and prints `message`, time-stamped)."""
        self.runs[-1]["end"] = time.time()
        _write_json(self.path, self.runs)
        if message:
            print(f"[{datetime.datetime.now():%H:%M:%S}] {message}", flush=True)


# -- stage 2: search comparison ---------------------------------------------------


def _config_key(values: dict) -> str:
    return json.dumps(dict(values), sort_keys=True)


class SharedTrialsTuner(FlatNASTuner):
    """A FlatNASTuner that reuses the figures of configurations already trained.

    Every trial is trained from a seed derived from (search seed, configuration),
    so a configuration's figures do not depend on which search trains it first.
    Reused trials have no checkpoint: rebuild and retrain them from their
    hyperparameters (as `run_search` does) rather than `get_best_models`.

    Args:
        shared: JSON file mapping a configuration to its recorded figures and
            the search that trained it, shared by the searches of one seed.
        search_seed: The seed of the searches sharing the file.
        **kwargs: Passed to `FlatNASTuner`.
    """

    def __init__(self, *args, shared: pathlib.Path, search_seed: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.shared = shared
        self.search_seed = search_seed

    def run_trial(self, trial, *args, **kwargs):
        key = _config_key(trial.hyperparameters.values)
        known = _read_json(self.shared) or {}
        if key in known:
            return {name: float(value) for name, value in known[key]["figures"].items()}
        figures = super().run_trial(trial, *args, **kwargs)  # seeded by (seed, configuration)
        known = _read_json(self.shared) or {}
        known[key] = {"figures": figures, "trained_by": self.project_name}
        _write_json(self.shared, known)
        return figures


def trade_off_point(objectives: np.ndarray) -> int:
    """Index of the front point nearest the ideal corner after min-max scaling.

    Args:
        objectives: (n, m) minimised objective values of a Pareto front.

    Returns:
        The index of the chosen point (ties: lowest first objective).

    Example:
    >>> trade_off_point(np.array([[10.0, 1e6], [12.0, 2e5], [30.0, 1e5]]))
    1
    """
    low, high = objectives.min(axis=0), objectives.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    distance = np.linalg.norm((objectives - low) / span, axis=1)
    return int(np.lexsort((objectives[:, 0], np.round(distance, 12)))[0])


def run_search(
    args, data, hypermodel, work: pathlib.Path, log: RunLog, alpha: float, seed: int
) -> dict:
    """One search, its trade-off pick and the pick's retrained figures."""
    name = f"seed{seed}_alpha{alpha:g}"
    tuner = SharedTrialsTuner(
        hypermodel,
        shared=work / "search" / f"seed{seed}_shared_trials.json",
        search_seed=seed,
        mode="flatnas",
        alpha=alpha,
        max_params=args.max_params,
        chance_significance=args.chance_significance or None,
        population_size=args.population,
        max_trials=args.search_trials,
        seed=seed,
        sigma=args.sigma,
        samples=args.samples,
        directory=str(work / "search"),
        project_name=name,
        overwrite=False,
    )
    start = time.perf_counter()
    tuner.search(
        data.batches("train", args.batch_size, training=True, seed=seed),
        epochs=args.epochs,
        validation_data=data.batches("validation", 256),
        verbose=0,
        shuffle=False,
    )
    # The objectives as the search ranked them: alpha_norm over every completed trial.
    ranking = tuner.result().rank()
    front = ranking.front()
    if not front:
        raise RuntimeError(
            f"Search {name} has no feasible trial (all failed, over --max-params or not above "
            f"chance); see {work / 'search' / name}."
        )
    completed = ranking.trials
    rows = dict(zip((t.trial_id for t in completed), ranking.objectives, strict=True))
    pick = front[trade_off_point(np.array([rows[t.trial_id] for t in front]))]
    figures = pick.figures
    summary_path = work / "search" / f"{name}_summary.json"
    previous = _read_json(summary_path) or {}
    retrained = [r["seed"] for r in previous.get("retrains", [])]
    if previous.get("trials") == len(completed) and retrained == args.retrain_seeds:
        return previous  # nothing new since it was recorded
    shared = _read_json(tuner.shared) or {}
    trained = sum(
        shared.get(_config_key(t.values), {}).get("trained_by") == name for t in completed
    )
    summary = {
        "alpha": alpha,
        "seed": seed,
        "trials": len(completed),
        "trained": trained,
        "front": [t.trial_id for t in front],
        "pick": pick.trial_id,
        "pick_hyperparameters": dict(pick.values),
        "search_val_accuracy": figures["val_accuracy"],
        "search_robustness": figures["robustness"],
        "params": int(figures["params"]),
        "search_s": previous.get("search_s", 0.0) + time.perf_counter() - start,
        "retrains": [],
    }
    digest = hashlib.sha1(_config_key(pick.values).encode()).hexdigest()[:12]
    for retrain_seed in args.retrain_seeds:
        # Searches that pick the same architecture share its retrained models.
        path = work / "retrains" / f"{digest}_seed{retrain_seed}.json"
        record = _read_json(path)
        if record is None:
            record = train_and_measure(
                hypermodel, pick.hyperparameters, data, args, args.retrain_epochs, retrain_seed
            )
            _write_json(path, record)
        summary["retrains"].append(record)
    _write_json(summary_path, summary)
    log.progress(f"search {name}: trial {pick.trial_id}, {_summary(summary['retrains'][0])}")
    keras.backend.clear_session()
    return summary


def _recorded(directory: pathlib.Path, pattern: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob(pattern))]


# -- stage 3: report -------------------------------------------------------------

STUDY_COLUMNS = (
    "arch", "params", "val_accuracy", "robustness", "robustness_loss_gap", "test_accuracy",
    "ood_clean_accuracy", "corruption_accuracy", "drop", "relative", "mce", "total_s",
)  # fmt: skip
SEARCH_COLUMNS = (
    "alpha", "seed", "retrain_seed", "pick", "params", "search_val_accuracy",
    "search_robustness", "test_accuracy", "corruption_accuracy", "mce", "drop", "relative",
)  # fmt: skip

#: (x, y, description, sign the claim predicts: "-", "+" or "" for none) of the
#: rank correlations the report lists. "Clean" is the test accuracy.
CORRELATIONS = (
    ("robustness", "corruption_accuracy", "R vs corruption accuracy", "-"),
    ("robustness", "drop", "R vs accuracy drop (pp)", "+"),
    ("robustness", "relative", "R vs corrupted / clean accuracy", "-"),
    ("robustness_loss_gap", "corruption_accuracy", "loss gap vs corruption accuracy", "-"),
    ("test_accuracy", "corruption_accuracy", "clean vs corruption accuracy", ""),
    ("test_accuracy", "drop", "clean accuracy vs accuracy drop (pp)", ""),
    ("test_accuracy", "robustness", "clean accuracy vs R", ""),
)
#: (x, y, control, description, predicted sign) partial rank correlations.
PARTIAL = (
    ("robustness", "corruption_accuracy", "test_accuracy",
     "R vs corruption accuracy, controlling clean accuracy", "-"),
    ("robustness", "relative", "test_accuracy",
     "R vs corrupted / clean accuracy, controlling clean accuracy", "-"),
)  # fmt: skip
#: Labels of the rows whose sign tests the claim without the clean-accuracy confound.
DECISIVE = (CORRELATIONS[2][2], PARTIAL[0][3], PARTIAL[1][3])


def correlation_rows(records: list[dict], resamples: int = 2000) -> list[dict]:
    """Every correlation of the report, with bootstrap intervals.

    Records with a non-finite figure (a diverged model) are left out; each
    row's `n` says how many remain.
    """
    records = [r for r in records if all(math.isfinite(r[k]) for k in STUDY_COLUMNS)]
    column = {k: [r[k] for r in records] for k in STUDY_COLUMNS if k != "arch"}
    rows = []
    for x, y, label, sign in CORRELATIONS:
        pair = [column[x], column[y]]
        rows.append({
            "label": label,
            "predicted": sign,
            "spearman": rank_stats.bootstrap(rank_stats.spearman, pair, resamples),
            "kendall": rank_stats.bootstrap(rank_stats.kendall, pair, resamples),
        })  # fmt: skip
    for x, y, z, label, sign in PARTIAL:
        triple = [column[x], column[y], column[z]]
        partial = rank_stats.bootstrap(rank_stats.partial_spearman, triple, resamples)
        rows.append({"label": label, "predicted": sign, "spearman": partial, "kendall": None})
    return rows


def _search_rows(searches: list[dict]) -> list[dict]:
    rows = []
    for s in searches:
        for r in s["retrains"]:
            rows.append({
                **{k: s[k] for k in ("alpha", "seed", "pick", "params", "search_val_accuracy",
                                     "search_robustness")},
                "retrain_seed": r["seed"],
                **{k: r[k] for k in ("test_accuracy", "corruption_accuracy", "mce", "drop",
                                     "relative")},
            })  # fmt: skip
    return rows


def _mean_std(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    values = [scale * v for v in values]
    if len(values) == 1:
        return f"{values[0]:,.{digits}f}"
    return f"{np.mean(values):,.{digits}f} ± {np.std(values, ddof=1):,.{digits}f}"


def _paired_lines(args, rows: list[dict]) -> list[str]:
    """Per seed, each alpha's retrained pick minus the accuracy-only (alpha 1) pick's."""
    baseline = 1.0 if 1.0 in args.alphas else args.alphas[0]

    def mean(alpha: float, seed: int, key: str) -> float:
        values = [r[key] for r in rows if r["alpha"] == alpha and r["seed"] == seed]
        return float(np.mean(values)) if values else math.nan

    lines = [
        "",
        f"Paired by seed: each alpha's retrained pick minus the alpha = {baseline:g} pick of the "
        "same seed (the two searches share their first generation):",
        "",
        "| alpha | seed | Δ test acc (pp) | Δ corrupted acc (pp) | Δ corrupted / clean "
        "| Δ params |",
        "|---|---|---|---|---|---|",
    ]
    for alpha in args.alphas:
        if alpha == baseline:
            continue
        for seed in args.search_seeds:
            delta = {
                k: mean(alpha, seed, k) - mean(baseline, seed, k)
                for k in ("test_accuracy", "corruption_accuracy", "relative", "params")
            }
            cells = [
                "n/a" if math.isnan(value) else f"{value:{spec}}"
                for value, spec in (
                    (100 * delta["test_accuracy"], "+.1f"),
                    (100 * delta["corruption_accuracy"], "+.1f"),
                    (delta["relative"], "+.3f"),
                    (delta["params"], "+,.0f"),
                )
            ]
            lines.append(f"| {alpha:g} | {seed} | {' | '.join(cells)} |")
    return lines


def _write_csv(path: pathlib.Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _plot_study(plt, records: list[dict], path: pathlib.Path) -> None:
    r = np.array([x["robustness"] for x in records])
    clean = np.array([100 * x["test_accuracy"] for x in records])
    corrupted = np.array([100 * x["corruption_accuracy"] for x in records])
    relative = np.array([x["relative"] for x in records])
    figure, axes = plt.subplots(1, 3, figsize=(13, 4))
    panels = (
        (r, corrupted, "R (pp, lower = flatter)", "corruption accuracy (%)"),
        (clean, corrupted, "clean test accuracy (%)", "corruption accuracy (%)"),
        (r, relative, "R (pp, lower = flatter)", "corrupted / clean accuracy"),
    )
    for axis, (x, y, xlabel, ylabel) in zip(axes, panels, strict=True):
        points = axis.scatter(x, y, c=clean, cmap="viridis")
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
    figure.colorbar(points, ax=axes, label="clean test accuracy (%)")
    figure.suptitle(f"Correlation study: {len(records)} random architectures")
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _plot_search(plt, rows: list[dict], path: pathlib.Path) -> None:
    figure, axis = plt.subplots(figsize=(6, 4.5))
    for alpha, marker in zip(sorted({r["alpha"] for r in rows}), "os^Dv", strict=False):
        mine = [r for r in rows if r["alpha"] == alpha]
        axis.scatter(
            [100 * r["test_accuracy"] for r in mine],
            [100 * r["corruption_accuracy"] for r in mine],
            marker=marker,
            s=[20 + r["params"] / 2e4 for r in mine],
            label=f"alpha = {alpha:g}" + (" (accuracy only)" if alpha == 1 else ""),
        )
    axis.set_xlabel("clean test accuracy (%)")
    axis.set_ylabel("corruption accuracy (%)")
    axis.set_title("Retrained trade-off picks (marker area ~ params)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def verdict(correlation: rank_stats.Correlation, predicted: str) -> str:
    """What one correlation says about the claim, which predicts the sign `predicted`.

    Example:
    >>> verdict(rank_stats.Correlation(-0.6, -0.9, -0.2, 12), "-")
    'negative, interval excludes 0: consistent with the claim'
    """
    if math.isnan(correlation.value):
        return "not estimable with these observations"
    if math.isnan(correlation.low) or correlation.low <= 0 <= correlation.high:
        return "the interval includes 0: no evidence either way at this budget"
    sign = "-" if correlation.high < 0 else "+"
    if not predicted:
        return f"{'negative' if sign == '-' else 'positive'}, interval excludes 0"
    reading = "consistent with" if sign == predicted else "against"
    return f"{'negative' if sign == '-' else 'positive'}, interval excludes 0: {reading} the claim"


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, rank_stats.Correlation):
        return _jsonable(dataclasses.asdict(value))
    return value


def wall_time(runs: list[dict]) -> float:
    """Seconds covered by the invocations' [start, end] intervals (overlaps counted once).

    Example:
    >>> wall_time([{"start": 0, "end": 10}, {"start": 5, "end": 12}, {"start": 20, "end": 21}])
    13
    """
    total, reach = 0, -math.inf
    for start, end in sorted((r["start"], r["end"]) for r in runs if "end" in r):
        total += max(0, end - max(start, reach))
        reach = max(reach, end)
    return total


def write_report(args, study: list[dict], searches: list[dict], runs: list[dict]) -> pathlib.Path:
    """Writes report.md, the CSV tables, results.json and the plots to `--out`."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    correlations = correlation_rows(study) if study else []
    searches = [  # records of other alphas or seeds in --work are not this report's
        s for s in searches if s["alpha"] in args.alphas and s["seed"] in args.search_seeds
    ]
    search_rows = _search_rows(searches)
    wall = wall_time(runs)
    retrains = {  # searches that picked the same architecture share its retrains
        (json.dumps(t["hyperparameters"], sort_keys=True), t["seed"]): t["total_s"]
        for s in searches
        for t in s["retrains"]
    }
    model_time = sum(r["total_s"] for r in study) + sum(retrains.values())
    model_time += sum(s["search_s"] for s in searches)
    lines = [
        "# Does flatness-aware search buy OOD robustness?",
        "",
        "Generated by `benchmarks/reproduce.py` (its docstring states the method).",
        "",
        "```",
        *dict.fromkeys(r["command"] for r in runs),  # each distinct invocation, in order
        "```",
        "",
        f"- data: `{pathlib.Path(args.data.removeprefix('npz:')).name}`"
        + (f" (first {args.max_train} training images)" if args.max_train else ""),
        f"- K = {len(study)} architectures, E = {args.epochs} epochs each, widths "
        f"{', '.join(f'{w:g}' for w in args.widths)}; R: sigma = {args.sigma:g}, "
        f"M = {args.samples} samples on the validation split",
        f"- corruptions: {study[0]['ood_set'] if study else args.corruptions}",
        f"- search: alphas {', '.join(f'{a:g}' for a in args.alphas)}; seeds "
        f"{', '.join(map(str, args.search_seeds))}; population {args.population}, "
        f"{args.search_trials} trials, E = {args.epochs}; picks retrained "
        f"{args.retrain_epochs} epochs with seeds {', '.join(map(str, args.retrain_seeds))}",
        f"- wall time: {wall / 60:.1f} min over {len(runs)} invocation(s) "
        f"({model_time / 60:.1f} min in training, measuring and searching); "
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, "
        f"{'GPU' if tf.config.list_physical_devices('GPU') else 'no GPU'}",
        *(f"  - invocation {i}: {r['note']}" for i, r in enumerate(runs, 1) if r.get("note")),
        "",
    ]
    if study:
        lines += [
            "## 1. Correlation study",
            "",
            "R is in percentage points, lower = flatter; clean accuracy is the test accuracy. "
            "The claim (flatter networks hold up better under corruption) predicts the signs in "
            "the last column. Spearman / Kendall with 95 % percentile-bootstrap intervals "
            "(2,000 resamples of the architectures; with a dozen architectures these intervals "
            "are approximate and on the narrow side).",
            "",
            "| relation | n | Spearman [95 % CI] | Kendall [95 % CI] | claim predicts |",
            "|---|---|---|---|---|",
        ]
        for row in correlations:
            kendall = "" if row["kendall"] is None else str(row["kendall"])
            lines.append(
                f"| {row['label']} | {row['spearman'].n} | {row['spearman']} | {kendall} | "
                f"{row['predicted'] or 'no sign'} |"
            )
        lines += [
            "",
            "A better-trained network is both more accurate under corruption and, usually, "
            "different in R, so the raw R rows are confounded by clean accuracy. The rows "
            "that test the claim without that confound:",
            "",
        ]
        lines += [
            f"- {row['label']}: {verdict(row['spearman'], row['predicted'])}."
            for row in correlations
            if row["label"] in DECISIVE
        ]
        lines += [
            "",
            "![correlation study](correlation.png)",
            "",
            "| arch | params | val acc % | R (pp) | loss gap | test acc % | corrupted acc % "
            "| drop (pp) | corrupted / clean |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in study:
            lines.append(
                f"| {r['arch']} | {r['params']:,} | {100 * r['val_accuracy']:.1f} | "
                f"{r['robustness']:.2f} | {r['robustness_loss_gap']:.3f} | "
                f"{100 * r['test_accuracy']:.1f} | {100 * r['corruption_accuracy']:.1f} | "
                f"{r['drop']:.1f} | {r['relative']:.3f} |"
            )
        lines.append("")
        _write_csv(out / "study.csv", study, STUDY_COLUMNS)
        _plot_study(plt, study, out / "correlation.png")
    if searches:
        lines += [
            "## 2. Search comparison",
            "",
            "Each search's pick is the point of its Pareto front (robust error, params) "
            "nearest the ideal corner after scaling each objective to [0, 1] over the front. "
            "It is retrained from scratch and measured on the test split.",
            "",
            'mCE is unnormalised: 100 − corrupted accuracy. "trained" counts the trials a '
            "search trained itself; the others were configurations another search of the same "
            "seed had trained (their figures reused).",
            "",
            "| alpha | seed | trials (trained) | front | pick | params | search val acc % "
            "| search R | test acc % | corrupted acc % | mCE % |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in searches:
            retrains = s["retrains"]
            lines.append(
                f"| {s['alpha']:g} | {s['seed']} | {s['trials']} ({s['trained']}) | "
                f"{len(s['front'])} | "
                f"{s['pick']} | {s['params']:,} | {100 * s['search_val_accuracy']:.1f} | "
                f"{s['search_robustness']:.2f} | "
                f"{_mean_std([t['test_accuracy'] for t in retrains], 100)} | "
                f"{_mean_std([t['corruption_accuracy'] for t in retrains], 100)} | "
                f"{_mean_std([t['mce'] for t in retrains])} |"
            )
        lines += [
            "",
            "Per alpha, over seeds and retrains (mean ± sample standard deviation):",
            "",
            "| alpha | runs | params | test acc % | corrupted acc % | mCE % | corrupted / clean |",
            "|---|---|---|---|---|---|---|",
        ]
        for alpha in args.alphas:
            mine = [r for r in search_rows if r["alpha"] == alpha]
            if not mine:
                continue
            lines.append(
                f"| {alpha:g} | {len(mine)} | {_mean_std([r['params'] for r in mine], 1, 0)} | "
                f"{_mean_std([r['test_accuracy'] for r in mine], 100)} | "
                f"{_mean_std([r['corruption_accuracy'] for r in mine], 100)} | "
                f"{_mean_std([r['mce'] for r in mine])} | "
                f"{_mean_std([r['relative'] for r in mine], 1, 3)} |"
            )
        lines += _paired_lines(args, search_rows)
        lines += ["", "![search comparison](search.png)", ""]
        _write_csv(out / "search.csv", search_rows, SEARCH_COLUMNS)
        _plot_search(plt, search_rows, out / "search.png")
    (out / "report.md").write_text("\n".join(lines))
    results = {
        **run_record("reproduce", args, exclude=()),  # benchmark, date, git, machine, settings
        "study": study,
        "correlations": correlations,
        "searches": searches,
        "runs": runs,
    }
    write_atomic(out / "results.json", json.dumps(_jsonable(results), indent=1))
    return out / "report.md"


# -- driver ----------------------------------------------------------------------

DEFINING = (
    "data", "max_train", "archs", "epochs", "batch_size", "rho", "schedule", "widths", "depths",
    "sigma", "samples", "ood",
    "corruptions", "severities", "ood_examples", "search_trials", "population", "max_params",
    "chance_significance",
    "retrain_epochs", "seed",
)  # fmt: skip


def main(argv: list[str] | None = None) -> pathlib.Path | None:
    """Runs the chosen stages; returns the report's path when one was written."""
    args = parse_args(argv)
    work = pathlib.Path(args.work)
    start = time.time()
    try:
        data = load_data(args)
    except (ValueError, DatasetUnavailableError) as error:
        print(f"error: --data {args.data}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    check_work_settings(work, {k: getattr(args, k) for k in DEFINING})
    command = "python benchmarks/reproduce.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    log = RunLog(work / "runs.json", command.strip(), start)
    hypermodel = make_hypermodel(args, data)
    if "study" in args.stages:
        study = run_study(args, data, hypermodel, work, log)
    else:
        study = _recorded(work / "study", "arch_*.json")
    if "search" in args.stages:
        searches = [
            run_search(args, data, hypermodel, work, log, alpha, seed)
            for seed in args.search_seeds
            for alpha in args.alphas
        ]
    else:
        searches = _recorded(work / "search", "*_summary.json")
    log.progress()
    if "report" in args.stages:
        return write_report(args, study, searches, log.runs)
    return None


if __name__ == "__main__":
    report = main()
    if report:
        print(f"Report: {report}")
