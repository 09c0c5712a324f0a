"""Option values turned into the library's objects, with errors that name the option.

Each function here calls the library and turns its `ValueError` (or a lookup
that fails) into a `click.BadParameter` naming the option, so that a wrong
value ends as one line and exit code 2.
"""

from __future__ import annotations

from typing import Any

import click

from flatnas_tf.app.split import DataSplit


def data_split(options: dict[str, Any]) -> DataSplit:
    """The `DataSplit` of --data, --seed, --validation-fraction and --data-dir."""
    try:
        return DataSplit(
            options["data"], options["seed"], options["validation_fraction"], options["data_dir"]
        )
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--data") from None


def recorded_split(settings: dict[str, Any], **options: Any) -> DataSplit:
    """The split a search or a manifest records, with the options given (not None) instead.

    Raises:
        click.BadParameter: The split is not one (a --data given empty, or a
            damaged file's values).
    """
    try:
        return DataSplit.from_settings(settings, **options)
    except ValueError as error:
        raise click.BadParameter(f"no usable data split: {error}", param_hint="--data") from None


def load_data(split: DataSplit):
    """The data set of `split`; a spec it refuses is a --data error."""
    try:
        return split.load()
    except (ValueError, TypeError) as error:
        raise click.BadParameter(str(error), param_hint="--data") from None


def check_frost_dir(path: str | None) -> None:
    """Reads the frost photographs now, so that a wrong directory fails before any work."""
    if path is None:
        return
    from flatnas_tf.robustness.frost import load_frost

    try:
        load_frost(path)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--frost-dir") from None


def enable_determinism() -> None:
    """TensorFlow op determinism for the whole process (its cost: docs/trial.md)."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
