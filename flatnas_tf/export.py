"""Exported models: writing an export directory and loading a saved model.

An export of a model is a directory:

    saved_model/     `model.export(format="tf_saved_model")`: endpoint `serve`,
                     float32 pixels in [0, 255] -> logits
    model.keras      the Keras model (a SAMModel: trainable further with SAM);
                     load it after `import flatnas_tf` (which registers its classes)
    model.tflite     only with `tflite=True`, when TFLite converts it cleanly
    manifest.json    what the caller says about the model (a search's trial:
                     id, hyperparameters, figures, data set) plus its input
                     shape, classes, the files and the flatnas-tf version

Loading: a `.keras` file loads in Keras' safe mode (a file holding code, a
Lambda layer, is refused); a SavedModel is a TensorFlow program that runs its
own ops (file reads and writes included): load only SavedModels you trust.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from flatnas_tf import storage
from flatnas_tf._version import __version__

__all__ = ["MANIFEST_FILE", "export_model", "load_model"]

#: The description of an export, in its directory.
MANIFEST_FILE = "manifest.json"


def export_model(
    model: keras.Model,
    directory: str | os.PathLike[str],
    manifest: dict[str, Any] | None = None,
    tflite: bool = False,
) -> list[str]:
    """Writes a model's export directory (see the module docstring).

    Args:
        model: A built Keras image classifier (pixels in [0, 255] -> logits).
        directory: The export directory (created).
        manifest: Entries for `manifest.json` (the input shape, classes,
            files and version are added).
        tflite: Also convert to TFLite when it converts cleanly.

    Returns:
        Notes for the user (e.g. a TFLite conversion that failed).

    Example:
    ```python
    export_model(model, "models/best", {"data": "digits"})
    ```
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    notes = []
    model.export(str(directory / "saved_model"), format="tf_saved_model", verbose=False)
    model.save(directory / "model.keras")
    files = ["saved_model/", "model.keras", MANIFEST_FILE]
    if tflite:
        try:
            converter = tf.lite.TFLiteConverter.from_saved_model(str(directory / "saved_model"))
            storage.write_bytes(directory / "model.tflite", converter.convert())
            files.append("model.tflite")
        except Exception as error:  # TFLite raises many kinds; the other files stand
            notes.append(f"TFLite conversion failed, skipped: {str(error).splitlines()[0]}")
    storage.write_json(
        directory / MANIFEST_FILE,
        {
            **(manifest or {}),
            "input_shape": [int(size) for size in model.input_shape[1:]],
            "input": "float32 pixels in [0, 255], shape (batch, height, width, channels)",
            "output": "logits, shape (batch, num_classes)",
            "num_classes": int(model.output_shape[-1]),
            "flatnas_tf_version": __version__,
            "files": files,
        },
    )
    return notes


def load_model(
    path: str | os.PathLike[str], input_shape: tuple[int, ...] | None = None
) -> keras.Model:
    """A `.keras` file or a SavedModel directory as a Keras model for prediction.

    Args:
        path: A `.keras` file or a SavedModel directory (with saved_model.pb).
        input_shape: The input shape (height, width, channels) of a
            SavedModel; None reads it from the `manifest.json` beside it.

    Returns:
        The model: pixels in [0, 255] -> logits.

    Raises:
        ValueError: The path is neither, or a SavedModel whose input shape is
            unknown.

    Example:
    ```python
    model = load_model("models/trial_07/model.keras")
    ```
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".keras":
        return keras.models.load_model(path, safe_mode=True)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        if input_shape is None:
            input_shape = _manifest_input_shape(path.parent / MANIFEST_FILE)
        if input_shape is None:
            raise ValueError(
                f"{path} is a SavedModel without a {MANIFEST_FILE} beside it: pass its input "
                "shape (the CLI: --data)."
            )
        inputs = keras.Input(tuple(input_shape))
        outputs = keras.layers.TFSMLayer(str(path), call_endpoint="serve")(inputs)
        return keras.Model(inputs, outputs)
    raise ValueError(
        f"{path} is neither a .keras file nor a SavedModel directory (with saved_model.pb)."
    )


def _manifest_input_shape(path: Path) -> list[int] | None:
    """The input shape an export's manifest records (None without a readable one)."""
    try:
        shape = json.loads(path.read_text(encoding="utf-8")).get("input_shape")
    except (OSError, ValueError, AttributeError):
        return None
    return shape if isinstance(shape, list) else None
