"""Resizing that leaves the model's training mode to the layers after it."""

from __future__ import annotations

import keras
import numpy as np

from flatnas_tf import FusedBatchNormalization
from flatnas_tf.space.resizing import Resizing


def _model():
    inputs = keras.Input((8, 8, 3))
    x = Resizing(12, 12, name="resize")(inputs)
    x = FusedBatchNormalization(name="bn")(x)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


def test_a_plain_call_after_resizing_is_inference(tmp_path):
    model = _model()
    images = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3)).astype("float32")
    bn = model.get_layer("bn")
    moving = [bn.moving_mean.numpy().copy(), bn.moving_variance.numpy().copy()]
    plain = model(images).numpy()  # no `training`: inference, as Keras documents
    np.testing.assert_array_equal(bn.moving_mean.numpy(), moving[0])  # nothing updated
    np.testing.assert_array_equal(bn.moving_variance.numpy(), moving[1])
    np.testing.assert_allclose(plain, model(images, training=False).numpy(), atol=1e-6)
    # Batch statistics of one image would move the outputs by tens; a batch of one
    # may take another float32 kernel, so only rounding may differ.
    np.testing.assert_allclose(plain[:1], model(images[:1]).numpy(), rtol=1e-5)  # no batch stats
    # Training mode still reaches the layers after it when asked for.
    model(images, training=True)
    assert not np.array_equal(bn.moving_mean.numpy(), moving[0])
    # The same resizing as Keras', and it saves and loads as itself.
    expected = keras.layers.Resizing(12, 12)(images).numpy()
    np.testing.assert_array_equal(model.get_layer("resize")(images).numpy(), expected)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(loaded.get_layer("resize")) is Resizing
    np.testing.assert_allclose(loaded(images).numpy(), model(images).numpy(), atol=1e-6)
