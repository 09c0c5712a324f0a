import keras
import numpy as np
import pytest
import tensorflow as tf

from flatnas_tf.training.optimizers import FusedSGD


def _variables(seed=0):
    rng = np.random.default_rng(seed)
    kernel = keras.Variable(rng.normal(size=(3, 4)).astype("float32"), name="kernel")
    bias = keras.Variable(rng.normal(size=(4,)).astype("float32"), name="bias")
    return [kernel, bias]


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("weight_decay", [None, 0.05])
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
def test_fused_sgd_equals_keras_sgd(nesterov, weight_decay, compiled):
    rng = np.random.default_rng(1)
    gradients = [
        [tf.constant(rng.normal(size=shape).astype("float32")) for shape in ((3, 4), (4,))]
        for _ in range(4)
    ]
    results = []
    for cls in (keras.optimizers.SGD, FusedSGD):
        variables = _variables()
        optimizer = cls(0.1, momentum=0.9, nesterov=nesterov, weight_decay=weight_decay)
        optimizer.exclude_from_weight_decay(var_names=["bias"])
        optimizer.build(variables)

        def make_step(optimizer, variables):
            def apply(update):
                optimizer.apply(update, variables)

            return tf.function(apply) if compiled else apply

        apply_step = make_step(optimizer, variables)
        for step_gradients in gradients:
            apply_step(step_gradients)
        results.append([v.numpy() for v in variables + optimizer.variables])
    for fused, reference in zip(results[1], results[0], strict=True):
        np.testing.assert_allclose(fused, reference, rtol=1e-6, atol=1e-6)


def test_fused_sgd_without_momentum_and_serialization():
    variables = _variables()
    optimizer = FusedSGD(0.5)  # no momentum: Keras' own update
    optimizer.apply([tf.ones((3, 4)), tf.ones(4)], variables)
    np.testing.assert_allclose(variables[1].numpy(), _variables()[1].numpy() - 0.5, atol=1e-6)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(FusedSGD(0.2, 0.8)))
    assert isinstance(restored, FusedSGD) and restored.momentum == 0.8


def test_fused_sgd_step_is_a_smaller_graph():
    def nodes(cls):
        variables = [keras.Variable(np.zeros((3, 3), "float32")) for _ in range(10)]
        optimizer = cls(0.1, momentum=0.9, weight_decay=1e-3)
        optimizer.build(variables)

        @tf.function
        def step(grads):
            optimizer.apply(grads, variables)

        graph = step.get_concrete_function([tf.TensorSpec((3, 3))] * 10).graph.as_graph_def()
        return len(graph.node) + sum(len(f.node_def) for f in graph.library.function)

    assert nodes(FusedSGD) < 0.6 * nodes(keras.optimizers.SGD)


def test_fused_sgd_with_weight_decay_equals_keras_sgd_on_two_replicas(two_replicas):
    # The decay is applied once for all replicas (compat.merge_call), as Keras' SGD applies it.
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(16, 3)).astype("float32"), rng.normal(size=(16, 2)).astype("float32")
    weights = []
    for cls in (keras.optimizers.SGD, FusedSGD):
        with two_replicas.scope():
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
            model.compile(optimizer=cls(0.1, momentum=0.9, weight_decay=0.05), loss="mse")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    assert not np.allclose(weights[0][0], 0)
    for fused, reference in zip(weights[1], weights[0], strict=True):
        np.testing.assert_allclose(fused, reference, rtol=1e-5, atol=1e-6)
