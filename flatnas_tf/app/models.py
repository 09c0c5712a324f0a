"""A search's library objects from its `run.json`: space, the search itself.

A run directory's `run.json` records the data shape, the space and the
training (`runs.Training`); from them come the hypermodel that rebuilds any
trial (`SearchResult.load_model`) and what an export's manifest says about
the data.
"""

from __future__ import annotations

from typing import Any

from flatnas_tf.app.runs import RunDirectory, Training
from flatnas_tf.app.split import DataSplit
from flatnas_tf.hypermodel import FlatNASHyperModel
from flatnas_tf.tuners.result import SearchResult


def hypermodel(settings: dict[str, Any], training: Training) -> FlatNASHyperModel:
    """The search space of a search (its data shape and widths), compiling with `training`."""
    return FlatNASHyperModel(
        tuple(settings["input_shape"]),
        settings["num_classes"],
        training=training.training_settings(),
        width_multipliers=settings.get("widths", (0.5, 0.75, 1.0)),
    )


def search_result(run: RunDirectory, settings: dict[str, Any]) -> SearchResult:
    """The search of a run directory, with the hypermodel that builds its trials."""
    training = Training.from_settings(settings)
    return SearchResult.load(run.project_dir, hypermodel=hypermodel(settings, training))


def export_metadata(settings: dict[str, Any]) -> dict[str, Any]:
    """What an export's manifest says about the data beyond the model itself.

    The data set and its split (seed, validation fraction, TFDS directory), so
    that `flatnas-tf evaluate` of the export measures on the same test images.
    """
    return {
        "label_names": list(settings["label_names"]),
        **DataSplit.from_settings(settings).to_settings(),
    }
