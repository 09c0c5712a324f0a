"""Models of a search: rebuilding trials, loading saved models, exporting them.

A trial's model is rebuilt from the search's `run.json` (data shape, space and
training settings) and its hyperparameters, then its checkpoint is loaded.
An export of a trial is a directory:

    saved_model/     `model.export(format="tf_saved_model")`: endpoint `serve`,
                     float32 pixels in [0, 255] -> logits
    model.keras      the Keras model (a SAMModel: trainable further with SAM)
    model.tflite     only with --tflite, when TFLite converts it cleanly
    manifest.json    hyperparameters, figures, input shape, label names, data
                     set, flatnas-tf version
"""

from __future__ import annotations

import pathlib
from typing import Any

import keras
import tensorflow as tf

from flatnas_tf import FlatNASHyperModel, TrainingSettings, __version__, storage
from flatnas_tf.regime import TrainingRegime
from flatnas_tf.tuners.tuner import load_trial_weights, trial_figures


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


def trial_model(project_dir: pathlib.Path, trial, settings: dict[str, Any]) -> keras.Model:
    """A trained trial's model, with the weights its figures were measured on.

    Raises:
        ValueError: The trial has no checkpoint (it was never trained).
    """
    checkpoint = project_dir / f"trial_{trial.trial_id}" / "checkpoint.weights.h5"
    if not checkpoint.is_file():
        raise ValueError(
            f"trial {trial.trial_id} has no trained weights (status {trial.status}; "
            "over-budget and failed trials are never trained)."
        )
    return load_trial_weights(hypermodel(settings).build(trial.hyperparameters.copy()), checkpoint)


def load_model_file(path: pathlib.Path, input_shape: tuple[int, ...] | None) -> keras.Model:
    """A `.keras` file or a SavedModel directory as a Keras model for prediction.

    A `.keras` file loads in Keras' safe mode: one holding code (a Lambda
    layer) is refused. A SavedModel is a TensorFlow program and runs its own
    ops, file reads and writes included: load only SavedModels you trust.

    Raises:
        ValueError: The path is neither, or a SavedModel without a known input shape.
    """
    if path.is_file() and path.suffix == ".keras":
        return keras.models.load_model(path, safe_mode=True)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        if input_shape is None:
            raise ValueError(
                f"{path} is a SavedModel: pass --data so that its input shape is known."
            )
        inputs = keras.Input(input_shape)
        outputs = keras.layers.TFSMLayer(str(path), call_endpoint="serve")(inputs)
        return keras.Model(inputs, outputs)
    raise ValueError(
        f"{path} is neither a .keras file nor a SavedModel directory (with saved_model.pb)."
    )


def manifest(trial, settings: dict[str, Any]) -> dict[str, Any]:
    """What an export says about its model."""
    return {
        "trial_id": trial.trial_id,
        "hyperparameters": trial.hyperparameters.values,
        "figures": trial_figures(trial),
        "input_shape": list(settings["input_shape"]),
        "input": "float32 pixels in [0, 255], shape (batch, height, width, channels)",
        "output": "logits, shape (batch, num_classes)",
        "num_classes": settings["num_classes"],
        "label_names": list(settings["label_names"]),
        "data": settings["data"],
        "flatnas_tf_version": __version__,
    }


def export_model(
    model: keras.Model, out_dir: pathlib.Path, manifest_data: dict[str, Any], tflite: bool
) -> list[str]:
    """Writes a model's export directory (see the module docstring).

    Returns:
        Notes for the user (e.g. a TFLite conversion that failed).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    notes = []
    model.export(str(out_dir / "saved_model"), format="tf_saved_model", verbose=False)
    model.save(out_dir / "model.keras")
    files = ["saved_model/", "model.keras", "manifest.json"]
    if tflite:
        try:
            converter = tf.lite.TFLiteConverter.from_saved_model(str(out_dir / "saved_model"))
            (out_dir / "model.tflite").write_bytes(converter.convert())
            files.append("model.tflite")
        except Exception as error:  # TFLite raises many kinds; the other files stand
            notes.append(f"TFLite conversion failed, skipped: {str(error).splitlines()[0]}")
    manifest_data = {**manifest_data, "files": files}
    storage.write_json(out_dir / "manifest.json", manifest_data)
    return notes
