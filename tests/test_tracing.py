import gc
import os

import keras
import numpy as np
import tensorflow as tf

from flatnas_tf import FlatNASHyperModel, TrainingSettings, load_dataset
from flatnas_tf.training.tracing import (
    build_training_state,
    graph_optimizer,
    release_custom_gradients,
)
from flatnas_tf.tuners.tuner import FlatNASTuner


def _model():
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse", metrics=["mae"])
    return model


def _count_traces(model):
    traces = []
    step = model.train_step

    def counted(data):
        traces.append(1)
        return step(data)

    model.train_step = counted
    return traces


def _data():
    x = np.random.default_rng(0).normal(size=(10, 4, 4, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, np.zeros((10, 3), "float32"))).batch(4)


def test_built_training_state_means_one_trace():
    data = _data()
    plain = _model()
    plain_traces = _count_traces(plain)
    plain.fit(data, epochs=2, verbose=0, shuffle=False)

    built = _model()
    assert build_training_state(built, data)
    assert built.optimizer.built
    built_traces = _count_traces(built)
    built.fit(data, epochs=2, verbose=0, shuffle=False)
    assert len(plain_traces) == 2  # what it saves: Keras traces a second time
    assert len(built_traces) == 1
    assert not build_training_state(built, data)  # already built: nothing to do


def test_training_state_from_arrays_and_uncompiled_models():
    model = _model()
    x, y = np.zeros((6, 4, 4, 1), "float32"), np.zeros((6, 3), "float32")
    assert build_training_state(model, (x, y), batch_size=3)
    traces = _count_traces(model)
    model.fit(x, y, batch_size=3, epochs=1, verbose=0)
    assert len(traces) == 1
    uncompiled = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert not build_training_state(uncompiled, (x, y))


def test_graph_optimizer_setting_is_scoped():
    before = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
    with graph_optimizer(False):
        assert tf.config.optimizer.get_experimental_options()["disable_meta_optimizer"]
    after = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
    assert after == before


def _custom_gradients():
    from tensorflow.python.framework import ops

    return {name for name in ops.gradient_registry._registry if name.startswith("CustomGradient-")}


def test_custom_gradient_registrations_are_released():
    before = _custom_gradients()
    model = _model()
    with release_custom_gradients():
        model.fit(_data(), epochs=1, verbose=0, shuffle=False)
        assert _custom_gradients() - before  # Keras' optimizer registered some
    assert _custom_gradients() <= before
    model.fit(_data(), epochs=1, verbose=0, shuffle=False)  # traced functions keep working


class WideSpace(FlatNASHyperModel):
    """One small convolution: many configurations, cheap trials."""

    def build_backbone(self, hp, x):
        filters = hp.Int("filters", 2, 48, step=2)
        return keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)


def _resident_mb() -> float:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_memory_is_flat_over_twenty_trials(tmp_path):
    if not os.path.exists("/proc/self/statm"):
        import pytest

        pytest.skip("needs /proc to read resident memory")
    data = load_dataset("digits")
    resident = []

    class MeasuringTuner(FlatNASTuner):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            gc.collect()
            resident.append(_resident_mb())

    space = WideSpace((8, 8, 1), 10, training=TrainingSettings(rho=0.5), width_multipliers=[0.05])
    tuner = MeasuringTuner(
        space,
        max_params=None,
        chance_significance=None,
        population_size=5,
        max_trials=20,
        seed=0,
        samples=1,
        directory=str(tmp_path),
        project_name="memory",
    )
    registrations = len(_custom_gradients())
    tuner.search(
        data.batches("train", 64, training=True).take(1),
        validation_data=data.batches("validation", 180),
        epochs=1,
        verbose=0,
    )
    assert len(resident) == 20
    assert all(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    assert max(resident[3:]) <= 1.10 * resident[3], resident
    assert len(_custom_gradients()) <= registrations
