import keras
import numpy as np
import pytest
import tensorflow as tf

import flatnas_tf as fn
from flatnas_tf.robustness.flatness import LOG_NAMES, PerturbedEvaluator


def _data(n=128, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 3)).astype("float32")
    y = np.argmax(x.mean(axis=(1, 2)) @ np.random.default_rng(1).normal(size=(3, 4)), axis=1)
    return x, y


def _model(metrics=("accuracy",), compile_model=True):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = fn.SAMModel(inputs, keras.layers.Dense(4)(x), rho=0.05)
    if compile_model:
        model.compile(
            optimizer=keras.optimizers.Adam(0.01),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=list(metrics),
        )
    return model


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    model = _model()
    x, y = _data()
    model.fit(x, y, batch_size=32, epochs=6, verbose=0)
    return model


def _weights(model):
    return [v.numpy().copy() for v in model.variables]


def _assert_bitwise_equal(before, after):
    for a, b in zip(before, after, strict=True):
        assert a.tobytes() == b.tobytes()


def test_sigma_zero_gives_zero_r_and_clean_accuracy(trained):
    result = fn.weight_robustness(trained, _data(), sigma=0.0, samples=3)
    assert result.R == 0.0
    assert result.loss_gap == 0.0
    assert result.perturbed_accuracies == (result.clean_accuracy,) * 3


def test_clean_figures_match_keras_evaluate(trained):
    x, y = _data()
    result = fn.weight_robustness(trained, (x, y), samples=1)
    loss, accuracy = trained.evaluate(x, y, verbose=0)
    assert result.clean_accuracy == pytest.approx(accuracy, abs=1e-6)
    assert result.clean_loss == pytest.approx(loss, rel=1e-5)


def test_weights_are_restored_bit_for_bit(trained):
    before = _weights(trained)
    fn.weight_robustness(trained, _data(), sigma=0.5, samples=3)
    _assert_bitwise_equal(before, _weights(trained))


def test_weights_are_restored_when_the_data_raises_midway(trained):
    x, y = _data(64)
    reads = tf.Variable(0)

    def fail_on_fifth_batch(xb, yb):
        # The clean pass reads batches 1-2; the first perturbed pass fails.
        check = tf.debugging.assert_less(reads.assign_add(1), 5, message="data broke")
        with tf.control_dependencies([check]):
            return tf.identity(xb), yb

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).map(fail_on_fifth_batch)
    before = _weights(trained)
    with pytest.raises(tf.errors.InvalidArgumentError, match="data broke"):
        fn.weight_robustness(trained, dataset, sigma=0.5, samples=3)
    assert int(reads.numpy()) >= 5  # it did fail inside a perturbed evaluation
    _assert_bitwise_equal(before, _weights(trained))


def test_same_seed_same_result_different_seed_different_perturbations(trained):
    data = _data()
    first = fn.weight_robustness(trained, data, sigma=0.3, samples=4, seed=7)
    again = fn.weight_robustness(trained, data, sigma=0.3, samples=4, seed=7)
    other = fn.weight_robustness(trained, data, sigma=0.3, samples=4, seed=8)
    assert first == again
    assert first.perturbed_losses != other.perturbed_losses


def test_r_grows_with_sigma(trained):
    curve = fn.weight_robustness(trained, _data(), sigma=[0.02, 0.2, 0.8], samples=6)
    assert [r.sigma for r in curve] == [0.02, 0.2, 0.8]
    rs = [r.R for r in curve]
    gaps = [r.loss_gap for r in curve]
    assert rs[0] < rs[1] < rs[2], rs
    assert gaps[0] < gaps[1] < gaps[2], gaps


def test_multiplicative_noise_keeps_zero_weights_at_zero():
    model = _model()
    head = model.layers[-1]
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])  # constant logits
    multiplicative = fn.weight_robustness(model, _data(), sigma=1.0, samples=3)
    assert multiplicative.perturbed_losses == (multiplicative.clean_loss,) * 3
    additive = fn.weight_robustness(model, _data(), sigma=1.0, samples=3, mode="additive")
    assert additive.loss_gap != 0.0


def test_callback_writes_figures_that_match_a_direct_call():
    keras.utils.set_random_seed(0)
    model = _model()
    x, y = _data()
    val = _data(64, seed=2)
    callback = fn.FlatnessCallback(val, sigma=0.1, samples=3, seed=5)
    history = model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[callback])
    for name in LOG_NAMES:
        assert len(history.history[name]) == 1  # default: last epoch only
    direct = fn.weight_robustness(model, val, sigma=0.1, samples=3, seed=5)
    for name, value in direct.logs().items():
        assert history.history[name][-1] == pytest.approx(value, abs=1e-9), name


def test_callback_every_n_epochs_also_measures_the_last():
    model = _model()
    x, y = _data(64)
    callback = fn.FlatnessCallback((x, y), samples=1, every=2)
    history = model.fit(x, y, epochs=5, batch_size=32, verbose=0, callbacks=[callback])
    assert len(history.history["robustness"]) == 3  # epochs 2, 4 and 5


def test_works_on_a_model_built_under_mirrored_strategy(two_replicas):
    with two_replicas.scope():
        model = _model()
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    result = fn.weight_robustness(model, (x, y), sigma=0.2, samples=2)
    (accuracy, loss), perturbed = _reference_robustness(model, (x, y), 0.2, 2, 0, "multiplicative")
    assert result.clean_accuracy == pytest.approx(accuracy, abs=1e-7)
    np.testing.assert_allclose(result.perturbed_losses, [lo for _, lo in perturbed], rtol=1e-5)
    for variable in model.trainable_variables:
        copies = [c.numpy() for c in variable.value.values]
        assert copies[0].tobytes() == copies[1].tobytes()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"sigma": -0.1}, ValueError, "sigma"),
        ({"sigma": []}, ValueError, "sigma"),
        ({"samples": 0}, ValueError, "samples"),
        ({"mode": "gaussian"}, ValueError, "mode"),
        ({"max_batches": 0}, ValueError, "max_batches"),
    ],
)
def test_bad_arguments_are_rejected(trained, kwargs, error, match):
    with pytest.raises(error, match=match):
        fn.weight_robustness(trained, _data(), **kwargs)


def test_bad_data_is_rejected(trained):
    x, y = _data()
    infinite = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).repeat()
    with pytest.raises(ValueError, match="infinite"):
        fn.weight_robustness(trained, infinite)
    assert fn.weight_robustness(trained, infinite, max_batches=2, samples=1).samples == 1
    empty = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).take(0)
    with pytest.raises(ValueError, match="empty"):
        fn.weight_robustness(trained, empty)
    with pytest.raises(TypeError, match="data"):
        fn.weight_robustness(trained, x)


def test_uncompiled_or_accuracy_free_models_are_rejected():
    with pytest.raises(ValueError, match="not compiled"):
        fn.weight_robustness(_model(compile_model=False), _data())
    with pytest.raises(ValueError, match="accuracy"):
        fn.weight_robustness(_model(metrics=["mae"]), _data())


def test_named_accuracy_metrics_are_recognised():
    model = _model(metrics=[keras.metrics.SparseCategoricalAccuracy()])
    x, y = _data()
    _, accuracy = model.evaluate(x, y, verbose=0)
    assert fn.weight_robustness(model, (x, y), samples=1).clean_accuracy == pytest.approx(
        accuracy, abs=1e-7
    )


def test_evaluator_reuses_one_compiled_function(trained):
    evaluator = PerturbedEvaluator(trained, _data())
    evaluator.curve([0.1, 0.2], samples=2)
    evaluator.robustness(0.3, samples=2)
    compiled = (evaluator._perturb, evaluator._restore, evaluator._evaluate_batch)
    traces = [f.experimental_get_tracing_count() for f in compiled]
    evaluator.curve([0.4], samples=3)
    assert [f.experimental_get_tracing_count() for f in compiled] == traces


def test_result_serialises_to_plain_json(trained):
    import json

    summary = fn.weight_robustness(trained, _data(), sigma=0.3, samples=2).to_dict()
    assert json.loads(json.dumps(summary)) == summary
    deltas = np.abs(summary["clean_accuracy"] - np.array(summary["perturbed_accuracies"]))
    assert summary["R"] == pytest.approx(100 * deltas.mean()) and summary["R"] > 0
    assert summary["samples"] == len(summary["perturbed_losses"]) == 2


# ------------------------------------------------------ NumPy reference ---
# R rebuilt from its definition: the same stateless draws (one philox normal
# stream per (seed, m), split over the trainable variables in their order),
# each perturbation computed in NumPy, loaded into a copy of the model and
# evaluated with Keras' own `evaluate`.


def _reference_robustness(model, data, sigma, samples, seed, mode, skip=None):
    """Clean and perturbed (accuracies, losses), perturbing every trainable variable but `skip`."""
    x, y = data
    copy = keras.models.clone_model(model)
    copy.compile(loss=model.loss, metrics=["accuracy"])
    trainable = [v.path for v in model.trainable_variables]
    originals = {v.path: v.numpy() for v in model.variables}
    sizes = [originals[path].size for path in trainable]

    def evaluate(values):
        for variable, source in zip(copy.variables, model.variables, strict=True):
            variable.assign(values[source.path])
        loss, accuracy = copy.evaluate(x, y, batch_size=128, verbose=0)
        return accuracy, loss

    clean = evaluate(originals)
    perturbed = []
    for m in range(1, samples + 1):
        draw = tf.random.stateless_normal([sum(sizes)], seed=[seed, m], alg="philox").numpy()
        pieces = np.split(draw, np.cumsum(sizes)[:-1])
        values = dict(originals)
        for index, (path, r) in enumerate(zip(trainable, pieces, strict=True)):
            if index == skip:
                continue
            w = originals[path]
            r = r.reshape(w.shape).astype(np.float32)
            s = np.float32(sigma)
            values[path] = w * (np.float32(1) + s * r) if mode == "multiplicative" else w + s * r
        perturbed.append(evaluate(values))
    return clean, perturbed


@pytest.mark.parametrize("mode", ["multiplicative", "additive"])
def test_r_equals_a_numpy_rebuild_of_every_perturbation(trained, mode):
    data, sigma, samples, seed = _data(200, seed=3), 0.3, 4, 11
    result = fn.weight_robustness(trained, data, sigma=sigma, samples=samples, seed=seed, mode=mode)
    (accuracy, loss), perturbed = _reference_robustness(trained, data, sigma, samples, seed, mode)
    assert result.clean_accuracy == pytest.approx(accuracy, abs=1e-7)
    assert result.clean_loss == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(result.perturbed_accuracies, [a for a, _ in perturbed], atol=1e-7)
    np.testing.assert_allclose(result.perturbed_losses, [lo for _, lo in perturbed], rtol=1e-5)
    reference_r = 100 * np.mean([abs(accuracy - a) for a, _ in perturbed])
    assert result.R == pytest.approx(reference_r, abs=1e-5)
    reference_gap = np.mean([lo for _, lo in perturbed]) - loss
    assert result.loss_gap == pytest.approx(reference_gap, rel=1e-4, abs=1e-6)
    assert result.R > 1.0  # sigma 0.3 moves predictions: the comparison is not vacuous


def test_the_numpy_rebuild_tells_a_missing_variable_apart(trained):
    # The comparison above would fail for a measure that left out any one
    # variable (or scaled the noise otherwise): each omission changes the losses.
    data, sigma, samples, seed = _data(200, seed=3), 0.3, 2, 11
    result = fn.weight_robustness(trained, data, sigma=sigma, samples=samples, seed=seed)
    for skip in range(len(trained.trainable_variables)):
        _, perturbed = _reference_robustness(
            trained, data, sigma, samples, seed, "multiplicative", skip=skip
        )
        losses = [lo for _, lo in perturbed]
        assert not np.allclose(result.perturbed_losses, losses, rtol=1e-5), skip
    _, squared = _reference_robustness(trained, data, sigma**2, samples, seed, "multiplicative")
    assert not np.allclose(result.perturbed_losses, [lo for _, lo in squared], rtol=1e-5)
