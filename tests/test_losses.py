import keras
import numpy as np
import pytest

from flatnas_tf.training.losses import SparseCrossentropyWithSmoothing


def _batch():
    rng = np.random.default_rng(0)
    return rng.integers(0, 5, 16), rng.normal(size=(16, 5)).astype("float32")


def test_without_smoothing_equals_keras_sparse_crossentropy():
    labels, logits = _batch()
    ours = SparseCrossentropyWithSmoothing(0.0)(labels, logits)
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(ours) == pytest.approx(float(keras_loss), rel=1e-6)


def test_smoothing_equals_categorical_crossentropy_on_one_hot_labels():
    labels, logits = _batch()
    ours = SparseCrossentropyWithSmoothing(0.1)(labels[:, None], logits)  # (n, 1) labels too
    reference = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    expected = reference(np.eye(5)[labels], logits)
    assert float(ours) == pytest.approx(float(expected), rel=1e-6)
    assert float(ours) != pytest.approx(float(SparseCrossentropyWithSmoothing(0.0)(labels, logits)))


def test_config_round_trip():
    loss = SparseCrossentropyWithSmoothing(0.2, from_logits=False)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, SparseCrossentropyWithSmoothing)
    assert (restored.label_smoothing, restored.from_logits) == (0.2, False)


def test_smoothing_outside_the_unit_interval_is_rejected():
    with pytest.raises(ValueError, match="label_smoothing"):
        SparseCrossentropyWithSmoothing(1.0)
