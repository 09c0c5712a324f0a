"""KerasTuner's documented behaviour, kept by NSGA2Oracle inside KerasTuner's own tuners.

Each test follows a KerasTuner guide or rule with the oracle swapped in:
"tune any function" (objective=None, a float returned by the trial), one
objective (the score is its value, so the display and results_summary show
it), a failed measurement (NaN objective: INVALID, retried, then counted
toward the failure limit), and a multi-objective display that shows the
objectives rather than a rank under a metric's name.
"""

from __future__ import annotations

import math
import re

import keras_tuner as kt
import pytest

from flatnas_tf.tuners.nsga2 import NSGA2Oracle


class FunctionTuner(kt.Tuner):
    """KerasTuner's "tune any function" tuner: run_trial returns the value to minimise."""

    def run_trial(self, trial, *args, **kwargs):
        x = trial.hyperparameters.Float("x", -1.0, 1.0, step=0.05)
        return x * x + 1.0


class MetricsTuner(kt.Tuner):
    """Returns the dict of metrics `compute(x)` gives: the objectives, nothing more.

    (KerasTuner's own MultiObjective would also demand a "multi_objective" key.)
    """

    def __init__(self, compute, **kwargs):
        super().__init__(**kwargs)
        self.compute = compute

    def run_trial(self, trial, *args, **kwargs):
        return self.compute(trial.hyperparameters.Float("x", 0.0, 1.0, step=0.05))


def test_tune_any_function_with_the_default_objective(tmp_path, capsys):
    oracle = NSGA2Oracle(objective=None, population_size=4, max_trials=16, seed=1)
    tuner = FunctionTuner(oracle=oracle, directory=tmp_path, project_name="any")
    tuner.search(verbose=0)
    best = tuner.oracle.get_best_trials(1)[0]
    x = best.hyperparameters.get("x")
    assert best.score == pytest.approx(x * x + 1.0)
    completed = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    assert len(completed) == 16
    assert best.score == min(t.score for t in completed)  # scores are values, minimised
    tuner.results_summary(1)
    assert f"Score: {best.score}" in capsys.readouterr().out


def test_one_objective_scores_are_its_values_in_the_display(tmp_path, capsys):
    oracle = NSGA2Oracle(
        objective=kt.Objective("accuracy", "max"), population_size=4, max_trials=8, seed=2
    )
    tuner = MetricsTuner(
        lambda x: {"accuracy": 1.0 - (x - 0.3) ** 2},
        oracle=oracle,
        directory=tmp_path,
        project_name="one",
    )
    tuner.search(verbose=1)
    out = capsys.readouterr().out
    accuracies = [1.0 - (t.hyperparameters.get("x") - 0.3) ** 2 for t in oracle.trials.values()]
    shown = [float(v) for v in re.findall(r"Best accuracy So Far: (\S+)", out)]
    assert len(shown) == 8
    assert shown[-1] == pytest.approx(max(accuracies))
    assert shown == sorted(shown)  # the best value so far never decreases
    assert oracle.get_best_trials(1)[0].score == pytest.approx(max(accuracies))


def test_nan_objective_is_invalid_retried_and_counted(tmp_path):
    calls = []

    def compute(x):
        calls.append(x)
        return {"f1": math.nan, "f2": x}  # f1 never measured

    oracle = NSGA2Oracle(
        objective=[kt.Objective("f1", "min"), kt.Objective("f2", "min")],
        population_size=4,
        max_trials=10,
        seed=3,
        max_retries_per_trial=1,
        max_consecutive_failed_trials=2,
    )
    tuner = MetricsTuner(compute, oracle=oracle, directory=tmp_path, project_name="nan")
    with pytest.raises(RuntimeError, match="consecutive failures exceeded the limit of 2"):
        tuner.search(verbose=0)
    assert len(calls) == 4  # two trials, each run twice (one retry)
    assert [t.status for t in oracle.trials.values()] == ["FAILED", "FAILED"]


@pytest.mark.filterwarnings("error::DeprecationWarning:keras_tuner.src.engine.base_tuner")
def test_a_retried_trial_reports_its_new_results(tmp_path):
    runs = []

    def compute(x):
        runs.append(x)
        return {"f1": math.nan if len(runs) == 1 else x, "f2": -x}  # the first run fails

    oracle = NSGA2Oracle(
        objective=[kt.Objective("f1", "min"), kt.Objective("f2", "min")],
        population_size=2,
        max_trials=1,
        seed=5,
        max_retries_per_trial=1,
    )
    tuner = MetricsTuner(compute, oracle=oracle, directory=tmp_path, project_name="retry")
    tuner.search(verbose=0)
    (trial,) = oracle.trials.values()
    assert len(runs) == 2 and trial.status == "COMPLETED"
    assert oracle.objectives_of(trial.trial_id)[0].tolist() == [runs[1], -runs[1]]


def test_several_objectives_are_displayed_as_objectives(tmp_path, capsys):
    oracle = NSGA2Oracle(
        objective=[kt.Objective("f1", "min"), kt.Objective("f2", "max")],
        constraints={"cost": 0.5},
        population_size=4,
        max_trials=6,
        seed=4,
    )
    tuner = MetricsTuner(
        lambda x: {"f1": x, "f2": x * x, "cost": x},
        oracle=oracle,
        directory=tmp_path,
        project_name="several",
    )
    tuner.search(verbose=1)
    out = capsys.readouterr().out
    assert "So Far" not in out and "multi_objective" not in out
    for trial in oracle.trials.values():
        x = trial.hyperparameters.get("x")
        line = f"f1 (min): {x:.5g} | f2 (max): {x * x:.5g}"
        assert line in out
    assert out.count("Pareto front so far: ") == 6
    infeasible = [t for t in oracle.trials.values() if t.hyperparameters.get("x") > 0.5]
    assert out.count("outside the constraints (violation ") == len(infeasible)
    front = len(oracle.pareto_front())
    assert f"Pareto front so far: {front} of 6 completed trials" in out
