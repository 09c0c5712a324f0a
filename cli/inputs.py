"""Option values turned into the library's objects, with errors that name the option.

Each function here calls the library and turns its `ValueError` (or a lookup
that fails) into a `click.BadParameter` naming the option, so that a wrong
value ends as one line and exit code 2.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import click

from flatnas_tf.cli import runs


def load_data(spec: str, data_dir: str | None, validation_fraction: float, seed: int):
    """`flatnas_tf.load_dataset`; a spec it refuses is a --data error."""
    from flatnas_tf.data import load_dataset

    try:
        return load_dataset(spec, data_dir, validation_fraction, seed=seed)
    except (ValueError, TypeError) as error:
        raise click.BadParameter(str(error), param_hint="--data") from None


def check_frost_dir(path: str | None) -> None:
    """Reads the frost photographs now, so that a wrong directory fails before any work."""
    if path is None:
        return
    from flatnas_tf.frost import load_frost

    try:
        load_frost(path)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--frost-dir") from None


def data_split(spec: str, seed: int, validation_fraction: float) -> dict[str, Any]:
    """The data set and split a corrupted set must have been written from."""
    return {"data": spec, "seed": seed, "validation_fraction": validation_fraction}


def ood_source(choice: str, data, split: dict[str, Any]):
    """What `evaluate_ood` reads for --ood (not "none"): CIFAR-10-C, a corrupted set or `data`.

    A corrupted set written by `prepare corrupted` records its data set and
    split; one of another data set or split is refused, since its test images
    may be this model's training images.
    """
    if choice == "builtin":
        return data
    if choice == "cifar10_corrupted":
        return choice
    from flatnas_tf.corrupted_set import load_corrupted_set

    corrupted = load_corrupted_set(choice)  # CorruptedSetError: a one-line exit 2
    recorded = {key: corrupted.manifest["description"].get(key) for key in split}
    if None not in recorded.values() and recorded != split:
        written = ", ".join(f"{key} {value}" for key, value in recorded.items())
        asked = ", ".join(f"{key} {value}" for key, value in split.items())
        raise click.BadParameter(
            f"{choice} was written from {written}; this run uses {asked}: its test images may "
            "be training images here. Write a set for this data (`flatnas-tf prepare corrupted`).",
            param_hint="--ood",
        )
    return corrupted


def search_dir(path: str) -> runs.RunDirectory:
    """The search directory at `path`; `runs.RunError` (exit 2) for any other directory."""
    run = runs.RunDirectory(pathlib.Path(path))
    run.settings()  # raises RunError for a foreign directory
    return run


def find_trial(result, trial_id: str):
    """Trial `trial_id` of a `SearchResult`; an unknown id is a --trial error."""
    try:
        return result.trial(trial_id)
    except KeyError as error:
        raise click.BadParameter(error.args[0], param_hint="--trial") from None


def trial_model(result, trial):
    """The trained model of `trial`; one that cannot be rebuilt is a --trial error."""
    try:
        return result.load_model(trial)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--trial") from None


def enable_determinism() -> None:
    """TensorFlow op determinism for the whole process (see README: its cost)."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()


def distributed_roles(role: str | None, host: str, port: int, worker_id: int) -> None:
    """Maps --role onto KerasTuner's environment variables."""
    if role is None:
        return
    os.environ["KERASTUNER_TUNER_ID"] = "chief" if role == "chief" else f"tuner{worker_id}"
    os.environ["KERASTUNER_ORACLE_IP"] = host
    os.environ["KERASTUNER_ORACLE_PORT"] = str(port)
