"""A search's library objects from its `run.json`: space, the search itself.

A run directory's `run.json` records the data shape, the space and the
training (`TrainingConfig`); from them come the hypermodel that rebuilds any
trial (`SearchResult.load_model`) and what an export's manifest says about
the data.
"""

from __future__ import annotations

from typing import Any

from flatnas_tf.app.runs import UNRECORDED_SETTINGS, RunDirectory, RunError
from flatnas_tf.app.split import DataSplit
from flatnas_tf.space.hypermodel import FlatNASHyperModel
from flatnas_tf.training.config import TrainingConfig
from flatnas_tf.tuners.result import SearchResult


def hypermodel(settings: dict[str, Any], training: TrainingConfig) -> FlatNASHyperModel:
    """The space of a search (its data shape, widths and depths), compiling with `training`."""
    return FlatNASHyperModel(
        tuple(settings["input_shape"]),
        settings["num_classes"],
        training=training.compile_settings(),
        width_multipliers=settings.get("widths", (0.5, 0.75, 1.0)),
        depths=settings.get("depths", UNRECORDED_SETTINGS["depths"]),
    )


def search_result(run: RunDirectory, settings: dict[str, Any]) -> SearchResult:
    """The search of a run directory, with the hypermodel that builds its trials."""
    training = TrainingConfig.from_settings(settings)
    return SearchResult.load(run.project_dir, hypermodel=hypermodel(settings, training))


def export_metadata(settings: dict[str, Any]) -> dict[str, Any]:
    """What an export's manifest says beyond the model itself.

    The data set and its split (seed, validation fraction, TFDS directory), so
    that `flatnas-tf evaluate` of the export measures on the same test images,
    and the training its candidates had (`TrainingConfig`).
    """
    if "data" not in settings:
        raise RunError("the search's run.json records no data set (key `data`); it is damaged.")
    try:
        split = DataSplit.from_settings(settings)
    except ValueError as error:
        raise RunError(f"the search's run.json records no usable data split: {error}") from None
    return {
        "label_names": list(settings["label_names"]),
        **split.to_settings(),
        "training": TrainingConfig.from_settings(settings).to_settings(),
    }
