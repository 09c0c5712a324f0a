import math

import keras
import numpy as np
import pytest

from flatnas_tf import FlatNASHyperModel
from flatnas_tf.space.sandwich import SupernetSettings, train_supernet
from flatnas_tf.space.supernet import Supernet
from flatnas_tf.tuners import FlatNASTuner, SupernetTuner


def _space():
    return FlatNASHyperModel(
        (8, 8, 1), 10, width_multipliers=(0.25,), depths=(1, 2), kernels=(3, 5), expands=(2, 3)
    )


@pytest.fixture(scope="module")
def trained_supernet(digits):
    keras.utils.set_random_seed(0)
    supernet = Supernet(_space())
    train_supernet(supernet, digits[0], SupernetSettings(epochs=2), verbose=0)
    return supernet


class TraceLog(SupernetTuner):
    """Records the supernet's trace count at the end of each trial."""

    traces: list

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.traces.append(self.supernet.traces)


def test_a_search_through_the_supernet(tmp_path, digits, trained_supernet):
    train, validation = digits
    supernet = trained_supernet
    before = [v.numpy().copy() for v in supernet.trainable_variables]
    tuner = TraceLog(
        supernet,
        max_params=None,
        population_size=2,
        max_trials=4,
        seed=0,
        samples=2,
        directory=str(tmp_path),
        project_name="ws",
    )
    tuner.traces = traces = []
    tuner.search(
        train,
        validation_data=validation,
        epochs=1,
        verbose=0,
        shuffle=False,
    )
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 4 and all(t.status == "COMPLETED" for t in trials)
    # One trace for the whole search (digits have one resolution).
    assert len(traces) == 4 and traces == [traces[0]] * 4
    for variable, value in zip(supernet.trainable_variables, before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
    # A trial's checkpoint is the static candidate its figures were measured on.
    trial = trials[-1]
    figures = tuner.figures(trial)
    model = tuner.load_model(trial)
    accuracy = model.evaluate(validation, verbose=0, return_dict=True)["accuracy"]
    assert accuracy == pytest.approx(figures["val_accuracy"], abs=1e-6)
    assert model.count_params() == figures["params"]
    assert figures["train_time_s"] > 0 and math.isfinite(figures["robustness"])
    assert tuner.pareto_front()
    assert len(tuner.get_best_models(1)) == 1


def test_inherited_weights_only(tmp_path, digits, trained_supernet):
    train, validation = digits
    tuner = SupernetTuner(
        trained_supernet,
        max_params=None,
        population_size=2,
        max_trials=2,
        samples=1,
        directory=str(tmp_path),
        project_name="e0",
    )
    tuner.search(train, validation_data=validation, epochs=0, verbose=0)
    labels = np.concatenate([y for _, y in validation.as_numpy_iterator()])
    for trial in tuner.oracle.trials.values():
        figures = tuner.figures(trial)
        assert trial.status == "COMPLETED" and figures["train_time_s"] == 0
        assert math.isnan(figures["accuracy"])  # no training, no training accuracy
        # The inherited weights' accuracy, counted with NumPy on the trial's checkpoint.
        predicted = np.argmax(tuner.load_model(trial).predict(validation, verbose=0), axis=-1)
        assert figures["val_accuracy"] == pytest.approx(np.mean(predicted == labels), abs=1e-6)


def test_the_tuner_takes_a_supernet_only(tmp_path, trained_supernet):
    with pytest.raises(TypeError, match="Supernet"):
        SupernetTuner(_space(), directory=str(tmp_path))
    with pytest.raises(TypeError, match="hypermodel"):
        SupernetTuner(trained_supernet, hypermodel=_space(), directory=str(tmp_path))
    assert issubclass(SupernetTuner, FlatNASTuner)
