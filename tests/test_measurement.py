"""measure_candidate: the figures a trial records, against independent computations."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

import flatnas_tf as fn
from flatnas_tf.figures import CHANCE_METRIC, LOG_NAMES


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = np.argmax(x[:, :3] + 0.5 * x[:, 3:], axis=1)
    return x, y


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    x = keras.layers.Dense(16, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    model.compile(
        optimizer=keras.optimizers.Adam(0.02),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    x, y = _data()
    model.fit(x, y, batch_size=32, epochs=5, verbose=0)
    return model


def _batches(x, y, size=32):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(size)


def test_the_figures_are_those_computed_independently(trained):
    x, y = _data(seed=1)
    figures = fn.measure_candidate(trained, _batches(x, y), sigma=0.1, samples=4, seed=3)
    assert set(figures) == {"val_accuracy", "val_loss", *LOG_NAMES, CHANCE_METRIC}
    predicted = np.argmax(trained.predict(x, verbose=0), axis=1)
    accuracy = np.mean(predicted == y)
    assert figures["val_accuracy"] == pytest.approx(accuracy, abs=1e-9)
    logits = trained.predict(x, verbose=0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    assert figures["val_loss"] == pytest.approx(float(loss), rel=1e-5)
    reference = fn.weight_robustness(trained, _batches(x, y), sigma=0.1, samples=4, seed=3)
    assert figures["robustness"] == reference.R
    assert figures["robustness_loss_gap"] == reference.loss_gap
    # The chance test: P(at least this many right | always the majority class).
    counts = np.bincount(y, minlength=3)
    right = round(accuracy * len(y))
    expected = stats.binom.sf(right - 1, len(y), counts.max() / len(y))
    assert figures[CHANCE_METRIC] == pytest.approx(expected, rel=1e-9)


def test_r_on_the_first_batches_keeps_the_accuracy_of_all_of_them(trained):
    x, y = _data(seed=2)
    whole = fn.measure_candidate(trained, _batches(x, y), samples=3)
    part = fn.measure_candidate(trained, _batches(x, y), samples=3, max_batches=1)
    assert part["val_accuracy"] == whole["val_accuracy"]  # over all 120 examples
    head = fn.weight_robustness(trained, (x[:32], y[:32]), samples=3, batch_size=32)
    assert part["robustness"] == pytest.approx(head.R)  # over the first batch only


def test_a_kept_evaluator_and_known_counts_give_the_same_figures(trained):
    x, y = _data(seed=3)
    data = _batches(x, y)
    evaluator = fn.PerturbedEvaluator(trained, data)
    fresh = fn.measure_candidate(trained, data, samples=2)
    kept = fn.measure_candidate(
        trained, data, samples=2, evaluator=evaluator, counts=np.bincount(y, minlength=3)
    )
    assert kept == fresh
    # Counts are the caller's word: a majority of 100 % makes no accuracy significant.
    assert fn.measure_candidate(trained, data, samples=2, counts=np.array([120, 0, 0]))[
        CHANCE_METRIC
    ] == pytest.approx(1.0)
