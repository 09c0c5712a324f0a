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
