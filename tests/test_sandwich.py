import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from flatnas_tf import FlatNASHyperModel, recalibrate_batch_norm
from flatnas_tf.space.sandwich import (
    STATE_FILE,
    SupernetSettings,
    SupernetStateError,
    load_supernet,
    train_supernet,
)
from flatnas_tf.space.supernet import Supernet


def _space(**kwargs):
    settings = dict(
        input_shape=(8, 8, 3),
        num_classes=3,
        width_multipliers=(0.25,),
        resolutions=(),
        depths=(1, 2),
        kernels=(3, 5),
        expands=(2, 3),
    )
    settings.update(kwargs)
    return FlatNASHyperModel(**settings)


def _dataset(count=48, seed=0):
    """Three classes told apart by the mean of one colour channel (not shuffled)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count)
    images = rng.uniform(0, 120, (count, 8, 8, 3)).astype("float32")
    images[np.arange(count), :, :, labels] += 120.0
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)


def _loss(supernet, pick, data):
    with supernet.candidate(supernet.extreme_hyperparameters(pick)) as model:
        recalibrate_batch_norm(model, data)
        return model.evaluate(data, verbose=0, return_dict=True)["loss"]


def _fresh(seed=0):
    keras.utils.set_random_seed(seed)
    return Supernet(_space())


def test_sandwich_training_lowers_the_loss_of_the_largest_and_the_smallest(tmp_path):
    supernet, data = _fresh(), _dataset()
    before = {pick: _loss(supernet, pick, data) for pick in (max, min)}
    settings = SupernetSettings(epochs=6, learning_rate=0.05, distillation=0.5)
    state = train_supernet(supernet, data, settings, tmp_path, verbose=0)
    after = {pick: _loss(supernet, pick, data) for pick in (max, min)}
    assert after[max] < 0.8 * before[max] and after[min] < 0.8 * before[min]
    history = state["history"]
    assert [entry["epoch"] for entry in history] == list(range(1, 7))
    assert {"loss", "accuracy", "smallest_loss", "seconds"} <= set(history[0])
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["smallest_loss"] < history[0]["smallest_loss"]


def test_a_resumed_run_continues_the_same_run(tmp_path):
    data = _dataset()
    settings = SupernetSettings(epochs=2, learning_rate=0.05, random_subnets=1)
    straight = _fresh()
    train_supernet(straight, data, settings, tmp_path / "straight", verbose=0)

    first = _fresh()
    short = SupernetSettings(epochs=2, learning_rate=0.05, random_subnets=1)
    interrupted = tmp_path / "interrupted"

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt  # after the first epoch's checkpoint

    with pytest.raises(KeyboardInterrupt):
        train_supernet(first, data, short, interrupted, verbose=0, callbacks=[Interrupt()])
    state = json.loads((interrupted / STATE_FILE).read_text())
    assert state["epochs_done"] == 1
    resumed = _fresh(seed=7)  # other initial weights: the checkpoint must replace them
    state = train_supernet(resumed, data, short, interrupted, verbose=0)
    assert state["epochs_done"] == 2 and [e["epoch"] for e in state["history"]] == [1, 2]
    for a, b in zip(straight.weights, resumed.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
    # Only the last epoch's files are kept; the state names them.
    files = sorted(p.name for p in interrupted.iterdir())
    assert files == sorted([STATE_FILE, state["weights"], state["checkpoint"]])
    # A finished run returns at once; the loaded supernet has its weights.
    assert train_supernet(resumed, data, short, interrupted, verbose=0)["epochs_done"] == 2
    loaded, _ = load_supernet(interrupted, _space())
    for a, b in zip(resumed.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_directory_of_another_run_is_refused(tmp_path):
    data = _dataset(count=16)
    train_supernet(_fresh(), data, SupernetSettings(epochs=1), tmp_path, verbose=0)
    with pytest.raises(SupernetStateError, match="other settings"):
        train_supernet(_fresh(), data, SupernetSettings(epochs=1, distillation=0.5), tmp_path)
    with pytest.raises(SupernetStateError, match="num_classes"):
        load_supernet(tmp_path, _space(num_classes=4))
    with pytest.raises(SupernetStateError, match="no trained supernet"):
        load_supernet(tmp_path / "empty")
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(SupernetStateError, match="not readable JSON"):
        load_supernet(tmp_path)


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", 0),
        ("random_subnets", -1),
        ("distillation", 1.5),
        ("warmup", 1.0),
        ("learning_rate", 0.0),
        ("momentum", float("nan")),
        ("label_smoothing", 1.0),
    ],
)
def test_settings_are_checked(field, value):
    with pytest.raises(ValueError, match=field):
        SupernetSettings(**{field: value})


def test_each_resolution_is_traced_once_for_the_whole_training():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (32, 16, 16, 3)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((images, rng.integers(0, 3, 32))).batch(16)
    traces = []
    for epochs in (1, 3):
        keras.utils.set_random_seed(0)
        supernet = Supernet(_space(input_shape=(16, 16, 3), resolutions=(12, 16)))
        settings = SupernetSettings(epochs=epochs, distillation=0.5)
        assert train_supernet(supernet, data, settings, verbose=0)["epochs_done"] == epochs
        traces.append(supernet.traces)
    # The symbolic build, then the largest (16), the smallest (12, with the teacher) and
    # 16 with the teacher (random passes reuse these): not one more for more epochs.
    assert traces == [4, 4]
