"""A search's library objects from its `run.json`: space, training, the search itself.

A run directory's `run.json` records the data shape, the space and the
training settings; from them come the hypermodel that rebuilds any trial
(`SearchResult.load_model`) and what an export's manifest says about the data.
"""

from __future__ import annotations

from typing import Any

from flatnas_tf.cli.runs import RunDirectory
from flatnas_tf.hypermodel import FlatNASHyperModel, TrainingSettings
from flatnas_tf.regime import TrainingRegime
from flatnas_tf.tuners.result import SearchResult


def training_settings(settings: dict[str, Any]) -> TrainingSettings:
    """The compilation settings a search (or `train`) used."""
    return TrainingSettings(
        learning_rate=settings["learning_rate"],
        rho=settings["rho"],
        adaptive=settings["sam"] == "asam",
        sam=settings["sam"] != "off",
    )


def regime(settings: dict[str, Any]) -> TrainingRegime:
    """How a search (or `train`) trains its candidates, from its settings."""
    return TrainingRegime(
        schedule=settings.get("schedule", "cosine"), warmup=settings.get("warmup", 0.1)
    )


def hypermodel(settings: dict[str, Any]) -> FlatNASHyperModel:
    """The search space of a search, from its settings."""
    return FlatNASHyperModel(
        tuple(settings["input_shape"]),
        settings["num_classes"],
        training=training_settings(settings),
        width_multipliers=settings.get("widths", (0.5, 0.75, 1.0)),
    )


def search_result(run: RunDirectory, settings: dict[str, Any]) -> SearchResult:
    """The search of a run directory, with the hypermodel that builds its trials."""
    return SearchResult.load(run.project_dir, hypermodel=hypermodel(settings))


def export_metadata(settings: dict[str, Any]) -> dict[str, Any]:
    """What an export's manifest says about the data beyond the model itself."""
    return {"label_names": list(settings["label_names"]), "data": settings["data"]}
