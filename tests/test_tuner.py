import json
import math
import os
import warnings

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf
from support.searches import TinySpace, small_tuner, tiny_space

from flatnas_tf import (
    FlatNASHyperModel,
    ResNetHyperModel,
    TrainingSettings,
    load_dataset,
    weight_robustness,
)
from flatnas_tf.robustness.chance import chance_p_value
from flatnas_tf.tuners import pareto, tensorboard
from flatnas_tf.tuners.display import objectives_line
from flatnas_tf.tuners.report import write_report
from flatnas_tf.tuners.surrogate import SurrogateSettings
from flatnas_tf.tuners.tuner import (
    CHANCE_METRIC,
    FIGURES,
    FlatNASOracle,
    FlatNASTuner,
    SearchFailedError,
    trial_seed,
)

MAX_PARAMS = 20_000


def _search(tmp_path, digits, verbose=0, **kwargs):
    train, validation = digits
    arguments = dict(
        mode="flatnas",
        alpha=0.5,
        max_params=MAX_PARAMS,
        population_size=3,
        max_trials=6,
        seed=3,
        samples=2,
        directory=str(tmp_path),
        project_name="search",
    )
    arguments.update(kwargs)
    tuner = FlatNASTuner(tiny_space(), **arguments)
    tuner.search(train, validation_data=validation, epochs=2, verbose=verbose)
    return tuner


@pytest.mark.parametrize("mode", ["flatnas", "pareto"])
def test_search_end_to_end(tmp_path, digits, mode, capsys):
    tuner = _search(tmp_path, digits, verbose=1, mode=mode)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 6
    assert all(t.status == "COMPLETED" for t in trials)
    # verbose=1: a line when each trial starts and one when it ends, as the CLI prints.
    lines = capsys.readouterr().out.splitlines()
    assert "Search: Running Trial" not in "\n".join(lines)  # KerasTuner's block replaced
    for position, trial in enumerate(trials, start=1):
        start = f"[{position:>3}/6] trial {trial.trial_id} started: "
        assert sum(line.startswith(start) for line in lines) == 1
        end = [
            line for line in lines if line.startswith(f"[{position:>3}/6] trial {trial.trial_id}  ")
        ]
        assert len(end) == 1 and "elapsed" in end[0]
        if tuner.figures(trial)["params"] > MAX_PARAMS:
            assert "not trained" in end[0]
        else:
            assert "val_acc" in end[0]
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

    _, validation = digits
    labels = np.concatenate([y for _, y in validation.as_numpy_iterator()])
    majority_rate = np.bincount(labels).max() / len(labels)
    for trial in trials:
        figures = tuner.figures(trial)
        assert set(figures) == set(FIGURES)
        checkpoint = os.path.join(tuner.get_trial_dir(trial.trial_id), "checkpoint.weights.h5")
        if figures["params"] > MAX_PARAMS:  # over budget: recorded, never trained
            assert math.isnan(figures["val_accuracy"]) and not os.path.exists(checkpoint)
            assert figures[CHANCE_METRIC] == 1.0
        else:
            # The checkpointed model, measured again: accuracy counted with NumPy, R with
            # the search's noise, the p-value from that accuracy and the labels' majority rate.
            model = tuner.load_model(trial)
            predicted = np.argmax(model.predict(validation, verbose=0), axis=-1)
            accuracy = float(np.mean(predicted == labels))
            assert figures["val_accuracy"] == pytest.approx(accuracy, abs=1e-6)
            robustness = weight_robustness(
                model, validation, sigma=tuner.sigma, samples=tuner.samples, seed=tuner.seed
            )
            assert figures["robustness"] == pytest.approx(robustness.R, abs=1e-6)
            p_value = chance_p_value(accuracy, len(labels), majority_rate)
            assert figures[CHANCE_METRIC] == pytest.approx(p_value, rel=1e-9, abs=1e-300)
            assert figures["train_time_s"] > 0 and figures["measure_time_s"] > 0
            assert os.path.exists(checkpoint)

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the checkpoint loads whole
        best = tuner.get_best_models(1)[0]
    assert best.optimizer.iterations.numpy() > 0
    assert best.predict(np.zeros((2, 8, 8, 1)), verbose=0).shape == (2, 10)
    # The checkpoint holds the weights and recalibrated statistics that were measured.
    _, accuracy = best.evaluate(digits[1], verbose=0)
    assert accuracy == pytest.approx(tuner.figures(front[0])["val_accuracy"], abs=1e-6)
    assert tuner.get_best_hyperparameters(1)[0].values == front[0].hyperparameters.values
    table = tuner.results_table()
    assert table.count("\n") == len(front) + 2

    tuner.results_summary(3)
    summary = capsys.readouterr().out
    assert "Score:" not in summary  # a survival position is not shown as a metric
    shown = tuner.oracle.get_best_trials(3)
    assert summary.count(" summary\nHyperparameters:") == len(shown)
    for trial in shown:
        assert objectives_line(tuner.oracle, trial) in summary
    assert tuner.results_table(shown) in summary


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
    tuner = small_tuner(space, tmp_path, "diverge", max_trials=4, max_consecutive_failed_trials=4)
    tuner.search(train, validation_data=validation, epochs=1, verbose=0)
    statuses = {t.hyperparameters.get("explode"): t.status for t in tuner.oracle.trials.values()}
    assert statuses.get(True) == "FAILED"
    assert statuses.get(False) == "COMPLETED"


def test_the_resnet_example_space_searches_with_the_tuner(tmp_path, digits):
    train, validation = digits
    space = ResNetHyperModel((8, 8, 1), 10, width_multipliers=[0.05])
    tuner = small_tuner(space, tmp_path, "resnet")
    tuner.search(train, validation_data=validation, epochs=2, verbose=0)
    assert len(tuner.pareto_front()) >= 1


@pytest.mark.parametrize(
    "max_trials, in_a_row, how", [(2, 3, "and none completed"), (4, 2, "in a row")]
)
def test_a_search_whose_trials_all_fail_raises_one_line(
    tmp_path, digits, monkeypatch, max_trials, in_a_row, how
):
    def cannot_train(self, hp, *args, **kwargs):
        raise ValueError("this candidate cannot be trained")

    monkeypatch.setattr(FlatNASTuner, "train_and_measure", cannot_train)
    train, validation = digits
    tuner = small_tuner(
        tiny_space(),
        tmp_path,
        "failing",
        max_trials=max_trials,
        max_consecutive_failed_trials=in_a_row,
    )
    with pytest.raises(SearchFailedError) as raised:
        tuner.search(train, validation_data=validation, epochs=1, verbose=0)
    message = str(raised.value)
    assert how in message and "this candidate cannot be trained" in message
    assert "\n" not in message
    assert all(t.status == "FAILED" for t in tuner.oracle.trials.values())


def test_tensorboard_without_its_package_stops_before_the_first_trial(
    tmp_path, digits, monkeypatch
):
    monkeypatch.setattr(tensorboard, "find_spec", lambda name: None)
    train, validation = digits
    tuner = FlatNASTuner(tiny_space(), max_params=None, max_trials=2, directory=str(tmp_path))
    board = keras.callbacks.TensorBoard(str(tmp_path / "logs"))
    with pytest.raises(ImportError, match=r'pip install "flatnas-tf\[tensorboard\]"'):
        tuner.search(train, validation_data=validation, epochs=1, callbacks=[board], verbose=0)
    assert tuner.oracle.trials == {}


class DiscoveredSpace(FlatNASHyperModel):
    """The default space, left for KerasTuner to discover by building."""

    builds = 0

    @property
    def declares_whole_space(self):
        return False

    def build(self, hp):
        DiscoveredSpace.builds += 1
        return super().build(hp)


def test_a_declared_space_is_registered_without_building(tmp_path, monkeypatch):
    options = dict(depths=[1, 2], kernels=[3], expands=[3], width_multipliers=[0.25])
    arguments = dict(max_params=None, population_size=2, max_trials=2, directory=str(tmp_path))
    discovered = FlatNASTuner(DiscoveredSpace((8, 8, 1), 10, **options), **arguments)
    assert DiscoveredSpace.builds >= 2  # KerasTuner built it to activate the depth-2 layers

    builds = []
    original = FlatNASHyperModel.build
    monkeypatch.setattr(
        FlatNASHyperModel, "build", lambda self, hp: builds.append(hp) or original(self, hp)
    )
    declared = FlatNASTuner(
        FlatNASHyperModel((8, 8, 1), 10, **options), project_name="declared", **arguments
    )
    assert builds == []
    spaces = [t.oracle.hyperparameters.get_config()["space"] for t in (discovered, declared)]
    assert spaces[0] == spaces[1]
    assert "stage1_layer2_kernel" in [p["config"]["name"] for p in spaces[0]]


def test_a_subclass_with_its_own_layers_is_discovered_by_building():
    assert FlatNASHyperModel((8, 8, 1), 10).declares_whole_space
    assert not TinySpace((8, 8, 1), 10).declares_whole_space
    assert not ResNetHyperModel((8, 8, 1), 10).declares_whole_space


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "accuracy"}, "mode"),
        ({"alpha": 1.5}, "alpha"),
        ({"max_params": 0}, "max_params"),
        ({"sigma": -1.0}, "sigma"),
        ({"samples": 0}, "samples"),
        ({"population_size": 1}, "population_size"),
        ({"executions_per_trial": 2}, "executions_per_trial"),
    ],
)
def test_bad_arguments_are_rejected(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        FlatNASTuner(tiny_space(), directory=str(tmp_path), **kwargs)


class EpochCountingTuner(FlatNASTuner):
    """Overrides KerasTuner's per-epoch hook, as tuner subclasses may."""

    def on_epoch_end(self, trial, model, epoch, logs=None):
        self.seen.append((trial.trial_id, epoch, sorted(logs)))


def test_keras_tuner_hooks_and_space_arguments_reach_the_search(tmp_path, digits):
    train, validation = digits
    tuned = kt.HyperParameters()
    tuned.Choice("filters", [16, 32])  # only this one is tuned; the rest keep defaults
    tuner = EpochCountingTuner(
        tiny_space(),
        max_params=None,
        population_size=2,
        max_trials=2,
        seed=0,
        samples=1,
        hyperparameters=tuned,
        tune_new_entries=False,
        directory=str(tmp_path),
    )
    tuner.seen = []
    tuner.search(train, validation_data=validation, epochs=2, verbose=0)
    trials = [tuner.oracle.trials[i] for i in sorted(tuner.oracle.trials)]
    assert {t.hyperparameters.get("filters") for t in trials} == {16, 32}
    assert all(t.hyperparameters.get("kernel") == 1 for t in trials)  # the default
    expected = [(t.trial_id, epoch) for t in trials for epoch in (0, 1)]
    assert [(trial_id, epoch) for trial_id, epoch, _ in tuner.seen] == expected
    assert all("loss" in logs for _, _, logs in tuner.seen)


def test_search_without_validation_data_is_a_fatal_error(tmp_path, digits):
    train, _ = digits
    tuner = FlatNASTuner(tiny_space(), max_trials=1, directory=str(tmp_path), project_name="x")
    with pytest.raises(kt.errors.FatalError, match="validation_data"):
        tuner.search(train, epochs=1, verbose=0)


class CollapsingSpace(TinySpace):
    """TinySpace where `collapse=True` zeroes the features: one answer for every input."""

    def build_backbone(self, hp, x):
        x = super().build_backbone(hp, x)
        if hp.Boolean("collapse"):
            x = keras.layers.Rescaling(0.0)(x)
        return x


def test_networks_at_chance_are_infeasible_and_never_on_the_front(tmp_path, digits):
    train, validation = digits
    fixed = kt.HyperParameters()
    fixed.Fixed("filters", 16)
    fixed.Fixed("kernel", 3)
    fixed.Fixed("width_mult", 0.1)
    space = CollapsingSpace(
        (8, 8, 1),
        10,
        training=TrainingSettings(learning_rate=0.2, rho=0.5),
        width_multipliers=[0.1],
    )
    tuner = small_tuner(space, tmp_path, "chance", samples=2, hyperparameters=fixed)
    tuner.search(train, validation_data=validation, epochs=2, verbose=0)
    trials = {t.hyperparameters.get("collapse"): t for t in tuner.oracle.trials.values()}
    collapsed, working = trials[True], trials[False]
    assert collapsed.status == working.status == "COMPLETED"
    assert tuner.figures(collapsed)["val_accuracy"] < 0.2
    assert tuner.figures(collapsed)[CHANCE_METRIC] > 1e-3
    assert tuner.figures(working)[CHANCE_METRIC] < 1e-3
    violations = tuner.oracle.constraint_violations([collapsed, working])
    assert violations[0] > 0 and violations[1] == 0
    assert [t.trial_id for t in tuner.pareto_front()] == [working.trial_id]


def test_chance_test_can_be_switched_off(tmp_path):
    oracle = FlatNASOracle(max_params=None, chance_significance=None, population_size=2)
    assert oracle.constraints == {}
    with pytest.raises(ValueError, match="chance_significance"):
        FlatNASOracle(chance_significance=1.5)


class CountingSpace(TinySpace):
    """TinySpace counting how often each candidate's train step is traced."""

    traces = 0

    def build(self, hp):
        model = super().build(hp)
        step = model.train_step

        def counted(data):
            CountingSpace.traces += 1  # runs once per trace, never per step
            return step(data)

        model.train_step = counted
        return model


def test_each_trial_traces_its_step_and_evaluation_once(tmp_path, digits, monkeypatch):
    from flatnas_tf.robustness import flatness

    evaluation_traces = []
    original = flatness.PerturbedEvaluator._batch_totals

    def counted(self, batch, totals):
        evaluation_traces.append(1)
        return original(self, batch, totals)

    monkeypatch.setattr(flatness.PerturbedEvaluator, "_batch_totals", counted)
    CountingSpace.traces = 0
    space = CountingSpace((8, 8, 1), 10, training=TrainingSettings(learning_rate=0.2, rho=0.5))
    tuner = small_tuner(space, tmp_path, "traces", samples=3)
    tuner.search(digits[0], validation_data=digits[1], epochs=3, verbose=0)
    trained = sum(1 for t in tuner.oracle.trials.values() if t.status == "COMPLETED")
    assert trained == 2
    # 3 epochs, 1 clean + 3 perturbed passes of 2 batches (90 + 90): no retracing.
    assert CountingSpace.traces == trained
    assert len(evaluation_traces) == trained


def test_a_configuration_trains_the_same_in_any_search(tmp_path):
    data = load_dataset("digits")
    figures = []
    for name in ("first", "second"):
        tuner = small_tuner(tiny_space(), tmp_path, name, seed=5, samples=2)
        keras.utils.set_random_seed(0)  # the pipeline's shuffling depends on the global seed
        tuner.search(
            data.batches("train", 64, training=True),
            validation_data=data.batches("validation", 90),
            epochs=1,
            verbose=0,
        )
        figures.append(
            {
                json.dumps(t.hyperparameters.values, sort_keys=True): tuner.figures(t)
                for t in tuner.oracle.trials.values()
            }
        )
    assert figures[0].keys() == figures[1].keys()
    for key, first in figures[0].items():
        second = figures[1][key]
        for name in ("val_accuracy", "val_loss", "robustness"):
            assert first[name] == second[name], (key, name)


def test_trial_seed_depends_on_seed_and_configuration():
    assert trial_seed(0, {"a": 1, "b": 2}) == trial_seed(0, {"b": 2, "a": 1})
    assert trial_seed(0, {"a": 1}) != trial_seed(1, {"a": 1})
    assert trial_seed(0, {"a": 1}) != trial_seed(0, {"a": 2})
    assert 0 <= trial_seed(7, {"a": 1}) < 2**31


# ------------------------------------------- KerasTuner's call forms ---


def _tutorial_model(hp):
    """KerasTuner's getting-started build function, on 8x8 digits."""
    model = keras.Sequential(
        [
            keras.layers.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(hp.Int("units", 16, 48, step=16), activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


class _EpochCount(keras.callbacks.Callback):
    ends: list = []  # shared by the tuner's copies of the callback

    def on_epoch_end(self, epoch, logs=None):
        _EpochCount.ends.append(epoch)


@pytest.fixture(scope="module")
def digit_arrays():
    data = load_dataset("digits")
    return [tuple(map(np.stack, zip(*split.as_numpy_iterator(), strict=True)))
            for split in (data.train, data.validation)]  # fmt: skip


@pytest.mark.parametrize("form", ["x, y", "x=, y=", "x, y, batch_size, epochs", "dataset"])
def test_keras_tuner_tutorial_call_forms_train_every_trial(tmp_path, digit_arrays, form):
    (x, y), validation = digit_arrays
    tuner = FlatNASTuner(
        _tutorial_model, max_trials=2, samples=2, seed=0, directory=tmp_path, project_name="t"
    )
    _EpochCount.ends = []
    common = {"validation_data": validation, "verbose": 0, "callbacks": [_EpochCount()]}
    if form == "x, y":
        tuner.search(x, y, epochs=2, **common)
    elif form == "x=, y=":
        tuner.search(x=x, y=y, epochs=2, **common)
    elif form == "x, y, batch_size, epochs":
        tuner.search(x, y, 32, 2, **common)
    else:
        train = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
        val = tf.data.Dataset.from_tensor_slices(validation).batch(64)
        tuner.search(train, epochs=2, **{**common, "validation_data": val})
    trials = list(tuner.oracle.trials.values())
    assert [t.status for t in trials] == ["COMPLETED", "COMPLETED"], [t.message for t in trials]
    assert _EpochCount.ends == [0, 1, 0, 1]  # two epochs per trial, however they were given
    for trial in trials:
        assert tuner.figures(trial)["val_accuracy"] > 0.5  # trained: chance is about 0.1


def test_fit_arguments_given_twice_or_missing_validation_are_refused(tmp_path, digit_arrays):
    (x, y), validation = digit_arrays
    tuner = FlatNASTuner(_tutorial_model, max_trials=1, directory=tmp_path, project_name="t")
    with pytest.raises(kt.errors.FatalValueError, match="both positionally and by keyword"):
        tuner.search(x, y, x=x, validation_data=validation, verbose=0)
    with pytest.raises(kt.errors.FatalValueError, match="validation_data"):
        tuner.search(x, y, epochs=1, verbose=0)


def test_a_surrogate_search_trains_the_proposed_candidates(tmp_path, digits, capsys):
    surrogate = SurrogateSettings(
        initial_trials=4, candidates=2, population=6, generations=2, folds=2, pool=("rbf",),
        min_score=-1.0,  # trust any fit: this test is about the path, not the predictor
    )  # fmt: skip
    tuner = _search(tmp_path, digits, verbose=1, max_trials=8, max_params=None, surrogate=surrogate)
    proposer = tuner.oracle.surrogate
    lines = capsys.readouterr().out.splitlines()
    refits = [line for line in lines if line.startswith("surrogate refit on ")]
    assert [line.split(":")[0] for line in refits] == [
        "surrogate refit on 4 trials",
        "surrogate refit on 6 trials",
    ]
    assert all("2 candidates queued" in line for line in refits)
    assert sum(line.endswith("(proposed by the surrogate)") for line in lines) == 4
    assert [entry["trial"] for entry in proposer.log] == [4, 6]
    for entry in proposer.log:  # params is counted, only accuracy and R are predicted
        assert set(entry["predictors"]) == {"val_accuracy", "robustness"}
        assert entry["trusted"] and entry["proposed"] == 2
    assert proposer.handed_out == [4, 5, 6, 7]
    trials = [tuner.oracle.trials[i] for i in tuner.oracle.start_order]
    for trial in trials[4:]:
        assert tuner.figures(trial)["params"] == tuner.count_params(trial.hyperparameters)
        assert tuner.oracle.parents_of(trial.trial_id) == []  # proposed, not bred
    # The report shows each refit, the proposed trials and the taus' plot.
    result = tuner.result()
    assert result.surrogate_refits == proposer.log
    assert result.surrogate_proposed == [trial.trial_id for trial in trials[4:]]
    paths = write_report(result, tmp_path / "report")
    markdown = paths["report.md"].read_text()
    assert "4 of 8 trials were proposed by the surrogate" in markdown
    assert "| 4 | 4 | " in markdown and "| 6 | 6 | " in markdown and "2 queued" in markdown
    assert paths["surrogate.png"].stat().st_size > 0
    saved = json.loads(paths["pareto.json"].read_text())["surrogate"]
    assert saved["refits"] == proposer.log and len(saved["proposed_trials"]) == 4
    # Resumed from its directory, the search keeps its surrogate state.
    resumed = FlatNASTuner(tiny_space(), directory=str(tmp_path), project_name="search")
    assert resumed.oracle.surrogate.log == proposer.log
    assert (
        resumed.oracle.exact_metrics["params"](trials[5].hyperparameters.values)
        == (tuner.figures(trials[5])["params"])
    )
