"""The flatness/OOD study's correlation stage: every model a record, in chunks that resume.

What `docs/results/flatness_ood/preregistration.md` fixes for H1, run as it says:

    architectures   K draws from the default space (`--widths`, `--depths`),
                    seeded by the study seed: architecture i is
                    `random_hyperparameters(seed=i)`
    each model      architecture i, training seed s: trained exactly as a
                    search trial (`FlatNASTuner.train_and_measure`, the one
                    trainer: seeded build, the regime's schedule, BatchNorm
                    recalibration, validation figures and the chance test)
    measured        R and the loss gap at every sigma of `--sigmas` (M =
                    `--samples` perturbations, seed 0, common random numbers)
                    on the validation split; clean test accuracy and mean
                    corruption accuracy on the test split, read from a
                    corrupted set written once (`flatnas_tf.robustness.corrupted_set`)
    record          one JSON line appended to `<records>` (atomic rewrite), in
                    the schema `study_analysis.py` reads, with the settings,
                    the corrupted set's manifest digest, the commit and the
                    wall time

A run skips the models already recorded and starts no model that it expects
to end after `--max-minutes` (at the mean time of the models it has trained:
`common.Chunk`), so the study goes on in chunks of about an hour from the
records committed in the repository. `--first-width W` trains the
architectures of width W before the others (the analysis reads records by
architecture, so the order changes no figure; it lets a supernet of width W
be ranked against the study's records sooner: `supernet_ranking.py`).
`--smoke` runs a tiny version (two models, two epochs, a few images) into a
temporary directory, for CI.

Usage:
    python benchmarks/flatness_ood_study.py --data digits --archs 40 --train-seeds 0,1,2
        [--max-minutes 55] [--records docs/results/flatness_ood/digits/records.jsonl]
    python benchmarks/flatness_ood_study.py --smoke
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import pathlib
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as a script: make the sibling modules importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ROOT,
    Chunk,
    add_depths_argument,
    append_json_line,
    git_state,
    number_list,
    utc_now,
)
from study_analysis import read_records  # noqa: E402

from flatnas_tf.defaults import VALIDATION_FRACTION  # noqa: E402
from flatnas_tf.figures import CHANCE_METRIC  # noqa: E402

SIGMAS = (0.025, 0.05, 0.1, 0.2, 0.4)
STUDY = ROOT / "docs" / "results" / "flatness_ood"


def load_study_data(args):
    """The study's data set, split as the pre-registration says."""
    from flatnas_tf import load_dataset

    return load_dataset(args.data, validation_fraction=VALIDATION_FRACTION, seed=args.split_seed)


def corruption_spec(text: str) -> str | list[str]:
    """A named set of corruptions (builtin, benchmark, all) or a comma-separated list of names."""
    if text in ("builtin", "benchmark", "all"):
        return text
    return [name.strip() for name in text.split(",") if name.strip()]


def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both stages of the study take (data, training, measurement, chunks)."""
    add = parser.add_argument
    add("--data", default="digits", help="Data set spec (flatnas_tf.load_dataset).")
    add("--split-seed", type=int, default=0, help="Seed of the data split.")
    add("--epochs", type=int, default=8)
    add("--batch-size", type=int, default=64)
    add("--widths", type=number_list(float), default=[0.25, 0.5])
    add_depths_argument(parser)
    add("--sigmas", type=number_list(float), default=list(SIGMAS))
    add("--samples", type=int, default=50, help="M: perturbations per sigma.")
    add("--corruptions", default="builtin", help="builtin (digits) or benchmark (CIFAR-10).")
    add("--max-test", type=int, default=None, help="Only the first N test images.")
    add(
        "--max-minutes",
        type=float,
        default=55.0,
        help="Start no model that would end after this (at the mean time of this run's models).",
    )
    add("--records", type=pathlib.Path, default=None, help="Default: the study's <data> file.")
    add("--work", type=pathlib.Path, default=None, help="Default: runs/flatness_ood.")
    add("--smoke", action="store_true", help="A tiny run, in a temporary directory (CI).")


def finish_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace, smoke: dict, positive: tuple
) -> argparse.Namespace:
    """Applies --smoke (`smoke`: the tiny run's settings), the defaults and the checks."""
    if args.smoke:  # a few models of a few epochs, two corruptions on 48 test images
        temporary = pathlib.Path(tempfile.mkdtemp(prefix="flatness-ood-smoke-"))
        for name, value in smoke.items():
            setattr(args, name, value)
        args.sigmas, args.samples, args.max_test, args.widths = [0.05, 0.4], 2, 48, [0.25]
        args.depths = [1]
        args.corruptions = "gaussian_noise,contrast"
        args.work = args.work or temporary / "work"
        args.records = args.records or temporary / "smoke" / "records.jsonl"
    args.corruptions = corruption_spec(args.corruptions)
    name = args.data.replace(":", "_").replace("/", "_")
    args.records = args.records or STUDY / name / "records.jsonl"
    args.work = args.work or ROOT / "runs" / "flatness_ood"
    for flag in ("epochs", "batch_size", "samples", *positive):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")
    if not args.sigmas:
        parser.error("--sigmas needs at least one value")
    return args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shared_arguments(parser)
    parser.add_argument("--archs", type=int, default=40, help="K: architectures.")
    parser.add_argument("--train-seeds", type=number_list(int), default=[0, 1, 2])
    parser.add_argument("--first-width", type=float, default=None,
                        help="Train the architectures of this width first.")  # fmt: skip
    args = parser.parse_args(argv)
    smoke = {"archs": 2, "train_seeds": [0], "epochs": 2}  # two models of two epochs
    finish_arguments(parser, args, smoke, positive=("archs",))
    if not args.train_seeds:
        parser.error("--train-seeds needs at least one value")
    return args


def records_so_far(path: pathlib.Path) -> list[dict]:
    """The records of `path` ([] before the first one)."""
    return read_records(path) if path.exists() else []


def append_record(path: pathlib.Path, record: dict) -> None:
    """Appends one record as a JSON line (keys sorted), rewriting the file atomically."""
    append_json_line(path, record, sort_keys=True)


def corrupted_test_set(args, data):
    """The study's corrupted test set, written once into --work (resumes if interrupted)."""
    from flatnas_tf import write_corrupted_set

    description = {
        "data": args.data,
        "seed": args.split_seed,
        "validation_fraction": VALIDATION_FRACTION,
    }
    name = hashlib.sha256(
        json.dumps([description, args.corruptions, args.max_test]).encode()
    ).hexdigest()[:12]
    return write_corrupted_set(
        data,
        args.work / f"corrupted-{name}",
        args.corruptions,
        max_examples=args.max_test,
        description=description,
    )


def measure(args, data, hypermodel, corrupted, hp, train_seed: int, git: dict) -> dict:
    """Trains the candidate `hp` with `train_seed` as a trial does and measures every figure.

    Returns:
        The figures of a record (both stages' records hold them): validation
        accuracy and chance test, R and the loss gap at every sigma, clean and
        mean corruption accuracy on the test split, params, settings, commit.
    """
    import keras
    import numpy as np

    from flatnas_tf import evaluate_ood, weight_robustness
    from flatnas_tf.tuners import FlatNASTuner

    start = time.perf_counter()
    tuner = FlatNASTuner(
        hypermodel,
        seed=train_seed,
        samples=2,  # the tuner's own R is not used: the curve below is
        max_params=None,
        directory=str(args.work / "tuner"),
        project_name="model",
        overwrite=True,
    )
    train = data.batches("train", args.batch_size, training=True, seed=train_seed)
    validation = data.batches("validation", 256)
    model, figures = tuner.train_and_measure(
        hp, train, validation_data=validation, epochs=args.epochs, verbose=0
    )
    curve = weight_robustness(model, validation, sigma=args.sigmas, samples=args.samples, seed=0)
    ood = evaluate_ood(model, corrupted, max_examples=args.max_test)
    x, y = zip(*data.test.as_numpy_iterator(), strict=True)
    predicted = np.argmax(model.predict(np.stack(x).astype("float32"), verbose=0), axis=-1)
    record = {
        "data": args.data,
        "train_seed": train_seed,
        "hyperparameters": dict(hp.values),
        "params": int(model.count_params()),
        "epochs": args.epochs,
        "val_accuracy": figures["val_accuracy"],
        "chance_p_value": figures[CHANCE_METRIC],
        "R": {f"{r.sigma:g}": r.R for r in curve},
        "loss_gap": {f"{r.sigma:g}": r.loss_gap for r in curve},
        "samples": args.samples,
        "test_accuracy": float(np.mean(predicted == np.array(y))),
        "ood_clean_accuracy": ood.clean_accuracy,
        "corruption_accuracy": ood.mean_corruption_accuracy,
        "ood_set": ood.averaged_over,
        "corrupted_set_sha256": hashlib.sha256(
            (corrupted.directory / "corrupted.json").read_bytes()
        ).hexdigest(),
        "wall_s": round(time.perf_counter() - start, 1),
        "git": git,
        "date": utc_now(),
    }
    keras.backend.clear_session()
    if not all(math.isfinite(v) for v in (*record["R"].values(), record["test_accuracy"])):
        record["note"] = "non-finite figure: excluded by the analysis"
    return record


def describe(record: dict) -> str:
    """One progress line of a model record."""
    return (
        f"val {100 * record['val_accuracy']:.1f}%, test {100 * record['test_accuracy']:.1f}%, "
        f"corrupted {100 * record['corruption_accuracy']:.1f}%, R "
        + " ".join(f"{s}:{v:.2f}" for s, v in record["R"].items())
        + f", {record['wall_s']:.0f} s"
    )


def study_space(args: argparse.Namespace, data, training=None):
    """The default space at `--widths` and `--depths` (`training`: its TrainingSettings)."""
    from flatnas_tf import FlatNASHyperModel

    return FlatNASHyperModel(
        data.input_shape,
        data.num_classes,
        training=training,
        width_multipliers=args.widths,
        depths=args.depths,
    )


def architecture_order(hypermodel, archs: int, first_width: float | None) -> list[int]:
    """Architectures 0..archs-1, those of width `first_width` first (each group in order)."""

    def later(arch: int) -> bool:
        width = hypermodel.random_hyperparameters(seed=arch).values["width_mult"]
        return first_width is not None and width != first_width

    return sorted(range(archs), key=lambda arch: (later(arch), arch))


def run(args: argparse.Namespace) -> list[dict]:
    """Records every (architecture, training seed) not yet recorded, until the time is up."""
    data = load_study_data(args)
    hypermodel = study_space(args, data)
    corrupted = corrupted_test_set(args, data)
    recorded = records_so_far(args.records)
    done = {(r["arch"], r["train_seed"]) for r in recorded if r["stage"] == "study"}
    git = git_state()  # the code this run trains with
    chunk = Chunk(args.max_minutes)
    written = []
    for arch in architecture_order(hypermodel, args.archs, args.first_width):
        for train_seed in args.train_seeds:
            if (arch, train_seed) in done:
                continue
            if not chunk.room_for_another():
                print(f"time is up: {len(written)} models recorded in this run", flush=True)
                return written
            hp = hypermodel.random_hyperparameters(seed=arch)
            with chunk.unit():
                figures = measure(args, data, hypermodel, corrupted, hp, train_seed, git)
            record = {"stage": "study", "arch": arch, **figures}
            append_record(args.records, record)
            written.append(record)
            print(f"arch {arch} seed {train_seed}: {describe(record)}", flush=True)
    return written


def main(argv: list[str] | None = None) -> list[dict]:
    """Runs the study's correlation stage (see the module docstring)."""
    args = parse_args(argv)
    print(f"records: {args.records}", flush=True)
    return run(args)


if __name__ == "__main__":
    main()
