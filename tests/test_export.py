"""Export directories: the TFLite model against the SavedModel, and a failed conversion."""

from __future__ import annotations

import json

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

from flatnas_tf import FlatNASHyperModel, ResNetHyperModel, export_model, tflite_predict
from flatnas_tf.persistence.export import TFLITE_FILE


def _randomised(model):
    """Untrained weights made informative: zero-initialised layers get weights too."""
    rng = np.random.default_rng(0)
    for variable in model.trainable_variables:
        value = variable.numpy()
        noise = rng.standard_normal(value.shape).astype(value.dtype)
        variable.assign(value * (1 + 0.3 * noise) + 0.05 * noise)
    return model


def _default_space_model():
    # Resolution 40 from 32x32 images: the Resizing layer is part of the graph.
    space = FlatNASHyperModel((32, 32, 3), 10, width_multipliers=(0.5,), resolutions=(32, 40))
    hp = kt.HyperParameters()
    space.declare_hyperparameters(hp)
    hp.values["resolution"] = 40
    model = space.build(hp)
    kinds = {type(layer).__name__ for layer in model.layers}
    activations = {layer.get_config().get("activation") for layer in model.layers}
    assert {"Resizing", "Multiply"} <= kinds and "hard_silu" in activations  # (Keras: hard-swish)
    return model


def _resnet_model():
    return ResNetHyperModel((32, 32, 3), 10).build(kt.HyperParameters())


@pytest.mark.parametrize("build", [_default_space_model, _resnet_model], ids=["default", "resnet"])
def test_tflite_matches_the_saved_model_on_real_images(build, cifar_subset, tmp_path):
    model = _randomised(build())
    notes = export_model(model, tmp_path, {"data": "cifar"}, tflite=True)
    assert notes == []
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert TFLITE_FILE in manifest["files"]
    images = cifar_subset["x_test"][:32].astype("float32")
    served = tf.saved_model.load(str(tmp_path / "saved_model"))  # keep it: it owns the variables
    expected = served.serve(images).numpy()
    assert np.abs(expected).max() > 0.1  # logits worth comparing
    assert np.abs(expected - model.predict(images, verbose=0)).max() <= 1e-4
    np.testing.assert_allclose(tflite_predict(tmp_path / TFLITE_FILE, images), expected, atol=1e-4)


def test_a_failed_conversion_is_a_note_and_the_rest_stands(tmp_path, monkeypatch):
    class Refusing:
        def convert(self):
            raise RuntimeError(
                "Some ops are not supported by the native TFLite runtime\n"
                "Ops that need custom implementation: tf.Erf, tf.Erf, tf.ImageProjectiveTransformV3"
            )

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model", lambda path: Refusing())
    layers = [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)]
    model = keras.Sequential(layers)
    notes = export_model(model, tmp_path, tflite=True)
    assert notes == [
        "TFLite conversion failed (ops TFLite's built-ins lack: Erf, ImageProjectiveTransformV3); "
        "model.tflite skipped, the other files stand."
    ]
    assert not (tmp_path / TFLITE_FILE).exists()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["files"] == ["saved_model/", "model.keras", "manifest.json"]
    assert (tmp_path / "model.keras").is_file() and (tmp_path / "saved_model").is_dir()


def test_an_export_target_resolves_to_its_model_and_recorded_split(tmp_path):
    from flatnas_tf.persistence.export import MANIFEST_FILE, exported_model, read_manifest

    export = tmp_path / "trial_007"
    export.mkdir()
    (export / "model.keras").write_bytes(b"")
    split = {"data": "digits", "seed": 3, "validation_fraction": 0.2}
    (export / MANIFEST_FILE).write_text(json.dumps({**split, "data_dir": None, "trial_id": "007"}))
    for target in (export, export / "model.keras"):
        assert exported_model(target) == (export / "model.keras", export, split)
    saved = export / "saved_model"
    saved.mkdir()
    assert exported_model(saved) == (saved, export, split)  # the manifest beside it
    loose = tmp_path / "loose.keras"
    loose.write_bytes(b"")
    assert exported_model(loose) == (loose, tmp_path, {})  # no manifest: no split
    (tmp_path / MANIFEST_FILE).write_text("[1, 2]")  # not an object: as if missing
    assert read_manifest(tmp_path) == {} and read_manifest(tmp_path / "nowhere") == {}
