"""Exported models: writing an export directory and loading a saved model.

An export of a model is a directory:

    saved_model/     `model.export(format="tf_saved_model")`: endpoint `serve`,
                     float32 pixels in [0, 255] -> logits
    model.keras      the Keras model (a SAMModel: trainable further with SAM);
                     load it after `import flatnas_tf` (which registers its classes)
    model.tflite     only with `tflite=True`, when TFLite converts it with its
                     built-in ops (float32, same input and output as `serve`;
                     checked against the SavedModel on real images: max abs
                     difference of the logits <= 1e-4 for the default space,
                     hard-swish, squeeze-excite and resizing included, and
                     for ResNetHyperModel); when it does not, a note names the
                     TensorFlow ops TFLite could not take and the other files
                     stand. `tflite_predict` runs it.
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
import re
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from flatnas_tf._version import __version__
from flatnas_tf.persistence import storage

__all__ = [
    "MANIFEST_FILE",
    "TFLITE_FILE",
    "export_model",
    "exported_model",
    "load_model",
    "read_manifest",
    "tflite_predict",
]

#: The description of an export, in its directory.
MANIFEST_FILE = "manifest.json"
#: The TFLite model of an export, in its directory.
TFLITE_FILE = "model.tflite"


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
            storage.write_bytes(directory / TFLITE_FILE, converter.convert())
            files.append(TFLITE_FILE)
        except Exception as error:  # TFLite raises many kinds; the other files stand
            notes.append(_conversion_note(error))
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


def _conversion_note(error: Exception) -> str:
    """One line on a failed TFLite conversion, naming the ops TFLite could not take."""
    ops = sorted(set(re.findall(r"\btf\.([A-Z][A-Za-z0-9_]*)", str(error))))
    why = f"ops TFLite's built-ins lack: {', '.join(ops)}" if ops else str(error).splitlines()[0]
    return f"TFLite conversion failed ({why}); {TFLITE_FILE} skipped, the other files stand."


def tflite_predict(path: str | os.PathLike[str], images: np.ndarray) -> np.ndarray:
    """Runs an exported `model.tflite` on a batch of images.

    Uses LiteRT (`ai_edge_litert`) when it is installed, else TensorFlow's
    own interpreter.

    Args:
        path: The `.tflite` file.
        images: float32 pixels in [0, 255], shape (batch, height, width, channels).

    Returns:
        The logits, shape (batch, num_classes).

    Example:
    ```python
    logits = tflite_predict("models/trial_007/model.tflite", images)
    ```
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter  # noqa: N806 (a class)
    with warnings.catch_warnings():  # TensorFlow's says it moves to LiteRT: known
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        interpreter = Interpreter(model_path=str(path))
    images = np.asarray(images, dtype=np.float32)
    source = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(source["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(source["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


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
    model = load_model("models/trial_007/model.keras")
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
    shape = read_manifest(path.parent).get("input_shape")
    return shape if isinstance(shape, list) else None


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest.json of an export directory; empty when missing or unreadable.

    Example:
    ```python
    read_manifest("runs/digits/models/trial_007")["trial_id"]  # "007"
    ```
    """
    try:
        manifest = json.loads((Path(directory) / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: bad UTF-8 or JSON
        return {}
    return manifest if isinstance(manifest, dict) else {}


def exported_model(target: str | os.PathLike[str]) -> tuple[Path, Path, dict[str, Any]]:
    """The model file, its home directory and the data split its manifest records.

    Args:
        target: An export directory (its model.keras is used), its
            `saved_model/` or `model.keras`, or any SavedModel or .keras file.

    Returns:
        (the model's path for `load_model`, the export directory, holding
        manifest.json, else the model's directory, and the manifest's "data",
        "data_dir", "seed" and "validation_fraction": empty without one).

    Example:
    ```python
    path, home, split = exported_model("runs/digits/models/trial_007")
    model = load_model(path)
    ```
    """
    target = Path(target)
    if (
        target.is_dir()
        and (target / MANIFEST_FILE).is_file()
        and (target / "model.keras").is_file()
    ):
        target = target / "model.keras"
    home = (
        target.parent if target.is_file() or (target.parent / MANIFEST_FILE).is_file() else target
    )
    manifest = read_manifest(home)
    keys = ("data", "data_dir", "seed", "validation_fraction")
    return target, home, {k: manifest[k] for k in keys if manifest.get(k) is not None}
