import math
import os

import keras
import keras_tuner as kt
import numpy as np
import pytest

from flatnas_tf import FlatNASHyperModel, ResNetHyperModel, TrainingSettings, load_dataset
from flatnas_tf.tuners import pareto
from flatnas_tf.tuners.tuner import FIGURES, FlatNASOracle, FlatNASTuner


class TinySpace(FlatNASHyperModel):
    """Two convolutions; parameter counts from about 3k to 22k."""

    def build_backbone(self, hp, x):
        filters = hp.Choice("filters", [4, 8, 16])
        kernel = hp.Choice("kernel", [1, 3, 5])
        x = keras.layers.Conv2D(filters, kernel, padding="same", activation="relu")(x)
        return keras.layers.Conv2D(filters, kernel, padding="same", activation="relu")(x)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    return data.batches("train", 64, training=True).take(4), data.batches("validation", 90)


def _tiny_space():
    settings = TrainingSettings(learning_rate=0.05, rho=0.5)
    return TinySpace((8, 8, 1), 10, training=settings, width_multipliers=[0.05, 0.1])


def _search(tmp_path, digits, **kwargs):
    train, validation = digits
    arguments = dict(
        mode="flatnas",
        alpha=0.5,
        max_params=12_000,
        population_size=3,
        max_trials=6,
        seed=3,
        samples=2,
        directory=str(tmp_path),
        project_name="search",
    )
    arguments.update(kwargs)
    tuner = FlatNASTuner(_tiny_space(), **arguments)
    tuner.search(train, validation_data=validation, epochs=1, verbose=0)
    return tuner


@pytest.mark.parametrize("mode", ["flatnas", "pareto"])
def test_search_end_to_end(tmp_path, digits, mode):
    tuner = _search(tmp_path, digits, mode=mode)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 6
    assert all(t.status == "COMPLETED" for t in trials)
    assert tuner.oracle.generation >= 1

    completed = tuner.oracle._completed()
    objectives = tuner.oracle.objective_values(completed)
    violations = tuner.oracle.constraint_violations(completed)
    directions = tuner.oracle.objective_directions()
    front = tuner.pareto_front()
    assert front
    index = {t.trial_id: i for i, t in enumerate(completed)}
    for member in front:
        i = index[member.trial_id]
        assert violations[i] == 0
        for j in range(len(completed)):
            assert not pareto.constrained_dominates(
                objectives[j], objectives[i], directions, violations[j], violations[i]
            )

    for trial in trials:
        figures = tuner.figures(trial)
        assert set(figures) == set(FIGURES)
        checkpoint = os.path.join(tuner.get_trial_dir(trial.trial_id), "checkpoint.weights.h5")
        if figures["params"] > 12_000:  # over budget: recorded, never trained
            assert math.isnan(figures["val_accuracy"]) and not os.path.exists(checkpoint)
        else:
            assert 0 <= figures["val_accuracy"] <= 1 and figures["robustness"] >= 0
            assert figures["train_time_s"] > 0 and os.path.exists(checkpoint)

    best = tuner.get_best_models(1)[0]
    assert best.predict(np.zeros((2, 8, 8, 1)), verbose=0).shape == (2, 10)
    assert tuner.get_best_hyperparameters(1)[0].values == front[0].hyperparameters.values
    table = tuner.results_table()
    assert table.count("\n") == len(front) + 2


def test_flatnas_objective_and_alpha_norm():
    oracle = FlatNASOracle(mode="flatnas", alpha=0.25, population_size=2, max_trials=4)
    trials = []
    for i, (accuracy, robustness) in enumerate([(0.9, 2.0), (0.6, 6.0)]):
        trial = kt.engine.trial.Trial(kt.HyperParameters(), trial_id=str(i))
        for name, value in [("val_accuracy", accuracy), ("robustness", robustness)]:
            trial.metrics.register(name)
            trial.metrics.update(name, value)
        trial.metrics.register("params")
        trial.metrics.update("params", 1000.0 * (i + 1))
        trials.append(trial)
    # errors 10 and 40 -> mean 25; R mean 4 -> alpha_norm 6.25
    assert oracle.alpha_norm(trials) == pytest.approx(6.25)
    values = oracle.objective_values(trials)
    np.testing.assert_allclose(
        values[:, 0], [0.25 * 10 + 6.25 * 0.75 * 2, 0.25 * 40 + 6.25 * 0.75 * 6]
    )
    np.testing.assert_allclose(values[:, 1], [1000.0, 2000.0])
    assert oracle.alpha_norm(trials[:1]) == 1.0  # first generation incomplete
    oracle.alpha = 1.0  # accuracy-only search: objective 1 is the error
    np.testing.assert_allclose(oracle.objective_values(trials)[:, 0], [10.0, 40.0])


class DivergingSpace(TinySpace):
    def build(self, hp):
        model = super().build(hp)
        if hp.Boolean("explode"):
            model.optimizer.learning_rate.assign(1e12)
        return model


def test_diverging_trials_fail_and_the_search_goes_on(tmp_path, digits):
    train, validation = digits
    space = DivergingSpace((8, 8, 1), 10, width_multipliers=[0.05])
    tuner = FlatNASTuner(
        space,
        max_params=None,
        population_size=2,
        max_trials=4,
        seed=0,
        samples=1,
        directory=str(tmp_path),
        project_name="diverge",
        max_consecutive_failed_trials=4,
    )
    tuner.search(train, validation_data=validation, epochs=1, verbose=0)
    statuses = {t.hyperparameters.get("explode"): t.status for t in tuner.oracle.trials.values()}
    assert statuses.get(True) == "FAILED"
    assert statuses.get(False) == "COMPLETED"


def test_default_space_and_resnet_example_work_with_the_tuner(tmp_path, digits):
    train, validation = digits
    space = ResNetHyperModel((8, 8, 1), 10, width_multipliers=[0.05])
    tuner = FlatNASTuner(
        space,
        max_params=None,
        population_size=2,
        max_trials=2,
        seed=0,
        samples=1,
        directory=str(tmp_path),
        project_name="resnet",
    )
    tuner.search(train, validation_data=validation, epochs=1, verbose=0)
    assert len(tuner.pareto_front()) >= 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "accuracy"}, "mode"),
        ({"alpha": 1.5}, "alpha"),
        ({"max_params": 0}, "max_params"),
        ({"sigma": -1.0}, "sigma"),
        ({"samples": 0}, "samples"),
        ({"population_size": 1}, "population_size"),
    ],
)
def test_bad_arguments_are_rejected(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        FlatNASTuner(_tiny_space(), directory=str(tmp_path), **kwargs)


def test_search_without_validation_data_is_a_fatal_error(tmp_path, digits):
    train, _ = digits
    tuner = FlatNASTuner(_tiny_space(), max_trials=1, directory=str(tmp_path), project_name="x")
    with pytest.raises(kt.errors.FatalError, match="validation_data"):
        tuner.search(train, epochs=1, verbose=0)
