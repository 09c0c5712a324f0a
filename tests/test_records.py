"""A search directory read as plain records, with the durable oracle's rules."""

from __future__ import annotations

import json
import math

import keras_tuner as kt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keras_tuner.engine.trial import Trial

from flatnas_tf.tuners import records
from flatnas_tf.tuners.archive import last_value
from flatnas_tf.tuners.records import TrialRecord


def _trial(trial_id="3", reports=(({"val_accuracy": 0.5, "params": 10.0}, 0),), status="COMPLETED"):
    hp = kt.HyperParameters()
    hp.Int("width", 8, 64, step=8)
    hp.Choice("depth", [1, 2])
    trial = Trial(hp, trial_id=trial_id, status=status)
    for metrics, step in reports:
        for name, value in metrics.items():
            trial.metrics.update(name, value, step=step)
    return trial


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.floats(-1e6, 1e6, allow_nan=False)), min_size=0, max_size=8
    )
)
def test_last_metric_value_equals_the_oracles_reading(observations):
    # Same step twice = two executions of that step (KerasTuner appends them).
    trial = _trial(reports=[({"f": value}, step) for step, value in observations])
    state = json.loads(json.dumps(trial.get_state()))  # as written to trial.json
    record = TrialRecord.from_state(state)
    expected = last_value(Trial.from_state(state), "f")
    if math.isnan(expected):
        assert math.isnan(record.metric("f"))
    else:
        assert record.metric("f") == expected


def test_record_of_a_trial_state():
    trial = _trial(reports=[({"val_accuracy": 0.25}, 0), ({"val_accuracy": 0.75}, 1)])
    trial.score, trial.message = 1.5, "note"
    record = TrialRecord.from_state(json.loads(json.dumps(trial.get_state())))
    assert (record.trial_id, record.status, record.score, record.message) == (
        "3",
        "COMPLETED",
        1.5,
        "note",
    )
    assert record.values == {"width": 8, "depth": 1}
    assert record.metric("val_accuracy") == 0.75  # the highest step, not the best value
    assert math.isnan(record.metric("robustness"))
    assert math.isnan(record.figures["robustness"]) and record.figures["val_accuracy"] == 0.75
    assert record.hyperparameters.values == {"width": 8, "depth": 1}
    assert record.hyperparameters.get_config() == trial.hyperparameters.get_config()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(trial_id="4"), "names trial '4'"),
        (lambda s: s.update(status="DONE"), "unknown status"),
        (lambda s: s.update(score="high"), "not a number"),
        (lambda s: s["hyperparameters"].update(values=[1]), "not a mapping"),
        (
            lambda s: s["metrics"]["metrics"]["params"]["observations"][0].update(value=["x"]),
            "holds",
        ),
        (lambda s: s.pop("metrics"), "metrics"),
    ],
)
def test_malformed_trial_states_are_refused(change, message):
    state = json.loads(json.dumps(_trial().get_state()))
    records.check_trial_state(state, "3")  # well formed before the change
    change(state)
    with pytest.raises(records.MALFORMED, match=message):
        records.check_trial_state(state, "3")


def _write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))


def _oracle_state(start_order):
    return {"ongoing_trials": {}, "start_order": start_order, "end_order": [], "retry_queue": []}


def test_read_project_applies_the_recovery_rules(tmp_path):
    _write(tmp_path / "oracle.json", _oracle_state(["0", "1", "2", "3"]))
    for trial_id in ("0", "1"):
        _write(tmp_path / f"trial_{trial_id}" / "trial.json", _trial(trial_id).get_state())
    _write(tmp_path / "trial_2" / "trial.json", '{"trial_id": "2", "sta')  # half written
    # trial 3: named by oracle.json, no directory; trial 4: being created (the next
    # number, not named, no trial.json yet); trial_x: not a name a search writes.
    (tmp_path / "trial_4").mkdir()
    (tmp_path / "trial_x").mkdir()
    files = records.read_project(tmp_path, TrialRecord.from_state)
    assert sorted(files.trials) == ["0", "1"]
    assert list(files.lost) == ["2", "3"]
    assert "not valid JSON" in files.lost["2"] and "left in place" in files.lost["2"]
    assert files.lost["3"] == "its trial.json is missing"
    assert files.committed == 4 and files.oracle_problem is None
    assert (tmp_path / "trial_2" / "trial.json").read_text() == '{"trial_id": "2", "sta'

    moved = []
    files = records.read_project(tmp_path, TrialRecord.from_state, lambda p: moved.append(p) or "x")
    assert moved == [tmp_path / "trial_2" / "trial.json"] and files.lost["2"].endswith("(x)")


def test_read_project_without_an_oracle_file(tmp_path):
    (tmp_path / "trial_0").mkdir()  # killed in the very first creation
    files = records.read_project(tmp_path, TrialRecord.from_state)
    assert files.oracle_problem == "missing" and files.committed == 0
    assert files.lost == {} and files.trials == {}
    _write(tmp_path / "oracle.json", {"seed": 1})
    files = records.read_project(tmp_path, TrialRecord.from_state)
    assert files.oracle_problem.startswith("not an oracle state") and files.committed is None
    assert files.lost == {"0": "its trial.json is missing"}


def test_being_created():
    assert records.being_created("4", "RUNNING", False, ["0", "1", "2", "3"], 4)
    assert not records.being_created("4", "RUNNING", True, ["0", "1", "2", "3"], 4)
    assert not records.being_created("4", "COMPLETED", False, ["0", "1", "2", "3"], 4)
    assert not records.being_created("3", "RUNNING", False, ["0", "1", "2"], 4)
    assert not records.being_created("4", "RUNNING", False, ["0", "1", "2", "3"], None)


def test_lost_record():
    record = TrialRecord.lost("07", "its trial.json is missing")
    assert record.status == "FAILED" and record.values == {} and record.metrics == {}
    assert record.message == "Trial 07 cannot be read back: its trial.json is missing."


def test_hyperparameters_of_a_conditional_space_build_again_and_again():
    hp = kt.HyperParameters()
    hp.Choice("block", ["a", "b"])
    with hp.conditional_scope("block", ["a"]):
        hp.Int("width", 1, 3)
    record = TrialRecord.from_state(Trial(hp, trial_id="0").get_state())  # a live state
    for _ in range(2):  # KerasTuner's from_config rewrites the config it is given
        rebuilt = record.hyperparameters
        assert [p.name for p in rebuilt.space] == ["block", "width"]
        assert rebuilt.values == {"block": "a", "width": 1}
