import collections

import keras
import numpy as np
import pytest
import tensorflow as tf

from flatnas_tf.training.batchnorm import (
    FusedBatchNormalization,
    batch_norm_layers,
    recalibrate_batch_norm,
)


def _pair(channels=5, momentum=0.8, **kwargs):
    """A Keras BatchNorm and a fused one with the same (non-trivial) state."""
    rng = np.random.default_rng(0)
    layers = []
    for cls in (keras.layers.BatchNormalization, FusedBatchNormalization):
        layer = cls(momentum=momentum, **kwargs)
        layer.build((None, 3, 4, channels))
        layers.append(layer)
    for variable in layers[0].weights:
        value = rng.uniform(0.5, 1.5, variable.shape).astype("float32")
        for layer in layers:
            next(
                v for v in layer.weights if v.path.split("/")[-1] == variable.path.split("/")[-1]
            ).assign(value)
    return layers


def _step(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * tf.range(1.0, 1.0 + y.shape[-1]))
    grads = tape.gradient(loss, [x, *layer.trainable_variables])
    return y, grads


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
def test_fused_training_step_equals_keras(compiled):
    keras_bn, fused_bn = _pair()
    x = tf.constant(np.random.default_rng(1).normal(2.0, 3.0, (6, 3, 4, 5)), tf.float32)
    results = []
    for layer in (keras_bn, fused_bn):
        step = tf.function(_step) if compiled else _step
        y, grads = step(layer, x)
        results.append((y, grads, layer.moving_mean.numpy(), layer.moving_variance.numpy()))
    (y0, g0, m0, v0), (y1, g1, m1, v1) = results
    np.testing.assert_allclose(y1, y0, atol=2e-5)
    for a, b in zip(g1, g0, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-4)
    np.testing.assert_allclose(m1, m0, atol=1e-6)
    # Keras averages the biased batch variance, the fused layer the unbiased one.
    n = 6 * 3 * 4
    initial = _pair()[0].moving_variance.numpy()
    batch_biased = (v0 - 0.8 * initial) / 0.2
    np.testing.assert_allclose(v1, 0.8 * initial + 0.2 * batch_biased * n / (n - 1), rtol=1e-5)


def test_fused_inference_and_fallbacks_equal_keras():
    keras_bn, fused_bn = _pair()
    x = tf.constant(np.random.default_rng(2).normal(size=(4, 3, 4, 5)), tf.float32)
    np.testing.assert_allclose(fused_bn(x, training=False), keras_bn(x, training=False), atol=1e-6)
    # 2-D input (a BatchNorm after a Dense layer) takes Keras' own path.
    dense = [
        cls(momentum=0.5) for cls in (keras.layers.BatchNormalization, FusedBatchNormalization)
    ]
    flat = tf.reshape(x, (4, -1))
    outputs = [layer(flat, training=True) for layer in dense]
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-6)
    np.testing.assert_allclose(dense[1].moving_variance, dense[0].moving_variance, atol=1e-6)


def test_fused_graph_is_smaller():
    def nodes(layer):
        def fn(x):
            return _step(layer, x)

        graph = tf.function(fn).get_concrete_function(tf.TensorSpec([None, 3, 4, 5])).graph
        definition = graph.as_graph_def()
        return len(definition.node) + sum(len(f.node_def) for f in definition.library.function)

    keras_bn, fused_bn = _pair()
    assert nodes(fused_bn) < 0.6 * nodes(keras_bn)


def test_fused_layer_saves_and_loads(tmp_path):
    inputs = keras.Input((4, 4, 3))
    outputs = FusedBatchNormalization(momentum=0.9)(keras.layers.Conv2D(4, 3)(inputs))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(3).normal(size=(2, 4, 4, 3)).astype("float32")
    model(x, training=True)  # move the statistics away from their initial values
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.layers[-1], FusedBatchNormalization)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def _bn_model(frozen=False):
    inputs = keras.Input((2, 2, 3))
    x = FusedBatchNormalization(name="first")(inputs)
    second = keras.layers.BatchNormalization(name="second")
    second.trainable = not frozen
    return keras.Model(inputs, second(keras.layers.Conv2D(3, 1, name="conv")(x)))


def test_recalibration_gives_mean_batch_statistics():
    model = _bn_model()
    rng = np.random.default_rng(4)
    x = rng.normal(3.0, 2.0, (12, 2, 2, 3)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, np.zeros(12))).batch(5)  # re-batched inside
    used = recalibrate_batch_norm(model, data, max_examples=100, batch_size=4)
    assert used == 12
    first = model.get_layer("first")
    batches = x.reshape(3, 4 * 2 * 2, 3)  # three batches of 4 images of 2 x 2 pixels
    np.testing.assert_allclose(first.moving_mean, x.reshape(-1, 3).mean(0), rtol=1e-5)
    unbiased = batches.var(axis=1, ddof=1).mean(0)  # the fused layer's convention
    np.testing.assert_allclose(first.moving_variance, unbiased, rtol=1e-4)
    assert first.momentum == 0.99 and model.get_layer("second").momentum == 0.99


def test_recalibration_respects_limits_and_frozen_layers():
    model = _bn_model(frozen=True)
    x = np.random.default_rng(5).normal(size=(10, 2, 2, 3)).astype("float32")
    frozen_before = model.get_layer("second").moving_mean.numpy().copy()
    assert recalibrate_batch_norm(model, (x, np.zeros(10)), max_examples=7, batch_size=3) == 7
    np.testing.assert_allclose(
        model.get_layer("first").moving_mean, x[:7].reshape(-1, 3).mean(0), rtol=1e-5
    )
    np.testing.assert_array_equal(model.get_layer("second").moving_mean, frozen_before)
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert recalibrate_batch_norm(plain, (np.zeros((4, 3)),)) == 0
    with pytest.raises(ValueError, match="max_examples"):
        recalibrate_batch_norm(model, (x,), max_examples=0)


def test_recalibration_matches_training_mode_on_the_data():
    model = _bn_model()
    x = np.random.default_rng(6).normal(5.0, 4.0, (64, 2, 2, 3)).astype("float32")
    before = model(x, training=False).numpy()
    recalibrate_batch_norm(model, (x,), batch_size=64)
    training = model(x, training=True).numpy()
    inference = model(x, training=False).numpy()
    assert np.abs(before - training).max() > 1.0  # initial statistics are far off
    np.testing.assert_allclose(inference, training, atol=2e-2)


def test_batch_norm_layers_finds_nested_layers():
    inner = keras.Sequential([keras.Input((2, 2, 3)), FusedBatchNormalization(name="inner_bn")])
    inputs = keras.Input((2, 2, 3))
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="outer_bn")(inner(inputs)))
    names = collections.Counter(layer.name for layer in batch_norm_layers(model))
    assert names == {"inner_bn": 1, "outer_bn": 1}
