"""One surrogate iteration: NSGA-II on predicted objectives, then a hypervolume choice."""

import json
import random

import keras_tuner
import numpy as np
import pytest

from flatnas_tf.tuners import durable, pareto
from flatnas_tf.tuners import space as space_walk
from flatnas_tf.tuners.nsga2 import NSGA2Oracle
from flatnas_tf.tuners.surrogate import REFERENCE, SurrogateSettings, propose

N = 6


def _space():
    hp = keras_tuner.HyperParameters()
    for i in range(N):
        hp.Int(f"x{i}", 0, 9)
    return hp.space


def _true(configurations):
    """A two-objective problem with a known front: x0 against the rest (ZDT1-like)."""
    x = np.array([[c[f"x{i}"] / 9 for i in range(N)] for c in configurations])
    f1 = x[:, 0]
    g = 1 + 9 * x[:, 1:].mean(axis=1)
    f2 = g * (1 - np.sqrt(f1 / g))
    return np.stack([f1, f2], axis=1), np.zeros(len(x))


def _archive(n=12, seed=0):
    rng = random.Random(seed)
    configurations = [space_walk.random_configuration(_space(), rng) for _ in range(n)]
    objectives, violations = _true(configurations)
    return configurations, objectives, violations


def _key(c):
    return json.dumps(c, sort_keys=True)


def _volume(objectives, low, span):
    return pareto.hypervolume((objectives - low) / span, "min", np.full(2, REFERENCE))


def test_with_a_perfect_predictor_the_proposals_move_the_front_more_than_random_ones():
    archive, objectives, violations = _archive()
    seen = {_key(c) for c in archive}
    proposal = propose(
        _space(), archive, objectives, violations, _true,
        is_new=lambda c: _key(c) not in seen, count=4, rng=random.Random(1),
        population=20, generations=10,
    )  # fmt: skip
    assert len(proposal.configurations) == 4 and proposal.predicted > 20
    assert not {_key(c) for c in proposal.configurations} & seen  # nothing trained again
    assert len({_key(c) for c in proposal.configurations}) == 4
    np.testing.assert_allclose(proposal.objectives, _true(proposal.configurations)[0])
    assert all(gain > 0 for gain in proposal.gains)
    assert proposal.gains == sorted(proposal.gains, reverse=True)  # greedy: largest first
    low, span = objectives.min(axis=0), np.ptp(objectives, axis=0)
    before = _volume(objectives, low, span)
    after = _volume(np.vstack([objectives, proposal.objectives]), low, span)
    rng = random.Random(2)
    gains_of_random = []
    for _ in range(20):
        extra = [space_walk.random_configuration(_space(), rng) for _ in range(4)]
        volume = _volume(np.vstack([objectives, _true(extra)[0]]), low, span)
        gains_of_random.append(volume - before)
    assert after - before > max(gains_of_random)


def test_predicted_infeasible_candidates_are_not_chosen_while_feasible_ones_add_volume():
    archive, objectives, violations = _archive()

    def evaluate(configurations):  # x0 >= 5 predicted to break a constraint
        predicted, _ = _true(configurations)
        return predicted, np.array([max(0.0, c["x0"] - 4.0) for c in configurations])

    proposal = propose(
        _space(), archive, objectives, violations, evaluate, is_new=lambda c: True,
        count=3, rng=random.Random(0), population=16, generations=6,
    )  # fmt: skip
    gains = np.array(proposal.gains)
    assert gains[0] > 0  # feasible candidates do add volume
    adding = [c for c, g in zip(proposal.configurations, gains, strict=True) if g > 0]
    assert adding and all(c["x0"] <= 4 for c in adding)
    assert np.all(proposal.violations[gains > 0] == 0)


def test_when_nothing_new_is_left_fewer_are_proposed():
    hp = keras_tuner.HyperParameters()
    hp.Int("x0", 0, 2)  # three configurations in all
    configurations = [{"x0": 0}, {"x0": 1}]
    objectives = np.array([[0.0, 1.0], [1.0, 0.0]])
    proposal = propose(
        hp.space, configurations, objectives, np.zeros(2),
        lambda cs: (np.array([[c["x0"] / 2, 1 - c["x0"] / 2] for c in cs]), np.zeros(len(cs))),
        is_new=lambda c: c["x0"] == 2, count=5, rng=random.Random(0),
        population=4, generations=3,
    )  # fmt: skip
    assert proposal.configurations == [{"x0": 2}]


def test_the_spread_choice_fills_the_gaps_of_the_archives_front_evenly():
    # Every point on one line (all non-dominated); the archive holds its two ends,
    # f2 = 1 and 0: three more at the most even gaps are f2 = 0.75, 0.5 and 0.25.
    hp = keras_tuner.HyperParameters()
    hp.Int("x0", 0, 8)
    line = lambda cs: (np.array([[c["x0"] / 8, 1 - c["x0"] / 8] for c in cs]), np.zeros(len(cs)))  # noqa: E731
    archive = [{"x0": 0}, {"x0": 8}]
    objectives, violations = line(archive)
    proposal = propose(
        hp.space, archive, objectives, violations, line, lambda c: c not in archive, 3,
        random.Random(0), population=9, generations=10, choice="spread",
    )  # fmt: skip
    assert sorted(c["x0"] for c in proposal.configurations) == [2, 4, 6]
    assert proposal.gains == [0.0, 0.0, 0.0]
    hypervolume = propose(
        hp.space, archive, objectives, violations, line, lambda c: c not in archive, 1,
        random.Random(0), population=9, generations=10,
    )  # fmt: skip
    assert hypervolume.gains[0] > 0


def test_the_same_seed_proposes_the_same_configurations():
    archive, objectives, violations = _archive()
    runs = [
        propose(_space(), archive, objectives, violations, _true, lambda c: True, 3,
                random.Random(7), population=12, generations=4).configurations
        for _ in range(2)
    ]  # fmt: skip
    assert runs[0] == runs[1]


@pytest.mark.parametrize("count", [1, 6])
def test_count_bounds_the_proposal(count):
    archive, objectives, violations = _archive()
    proposal = propose(
        _space(), archive, objectives, violations, _true, lambda c: True, count,
        random.Random(3), population=12, generations=3,
    )  # fmt: skip
    assert len(proposal.configurations) == len(proposal.gains) == count
    assert proposal.objectives.shape == (count, 2)


# -- the oracle mode ------------------------------------------------------------------


def _oracle(tmp_path, name, **settings):
    # Two cheap members keep the tests fast; the pool's members are tested in test_predictors.
    surrogate = SurrogateSettings(
        **{"initial_trials": 12, "candidates": 4, "population": 12, "generations": 4,
           "folds": 4, "pool": ("rbf", "gp"), **settings}
    )  # fmt: skip
    oracle = NSGA2Oracle(
        objective=[keras_tuner.Objective("f1", "min"), keras_tuner.Objective("f2", "min")],
        population_size=6, max_trials=28, seed=5, hyperparameters=_hp(), surrogate=surrogate,
    )  # fmt: skip
    oracle._set_project_dir(str(tmp_path), name)  # what BaseTuner.__init__ does
    oracle.verbose = 0
    return oracle


def _hp():
    hp = keras_tuner.HyperParameters()
    for i in range(N):
        hp.Int(f"x{i}", 0, 9)
    return hp


def _metrics(values, kind):
    if kind == "noise":  # nothing a predictor can learn from the configuration
        rng = random.Random(_key(values))
        return {"f1": rng.random(), "f2": rng.random()}
    (f1, f2) = _true([values])[0].T
    return {"f1": float(f1[0]), "f2": float(f2[0])}


def _run(oracle, kind="smooth", n=None):
    created = []
    while n is None or len(created) < n:
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        created.append(trial)
        oracle.update_trial(trial.trial_id, _metrics(trial.hyperparameters.values, kind))
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return created


def test_after_the_initial_design_trials_take_the_surrogates_proposals(tmp_path):
    oracle = _oracle(tmp_path, "smooth")
    trials = _run(oracle)
    log = oracle.surrogate.log
    assert [entry["trial"] for entry in log] == [12, 16, 20, 24]  # a refit every 4 trials
    assert all(entry["trusted"] and entry["proposed"] == 4 for entry in log)
    assert all(entry["points"] == entry["trial"] for entry in log)  # every earlier trial
    assert set(log[0]["predictors"]) == {"f1", "f2"}
    assert oracle.surrogate.handed_out == list(range(12, 28))
    assert all(oracle.parents_of(t.trial_id) == [] for t in trials[12:])  # not bred
    keys = [_key(t.hyperparameters.values) for t in trials]
    assert len(set(keys)) == 28  # never a configuration twice
    # The proposals are better than the initial design: most land on the final front.
    front = {t.trial_id for t in oracle.pareto_front()}
    assert sum(t.trial_id in front for t in trials[12:]) > sum(
        t.trial_id in front for t in trials[:12]
    )


@pytest.mark.parametrize(
    "growth, switched",
    [(0.0, [12, 16, 20, 24]), (0.25, [12, 16, 20]), (0.5, [12, 20])],
)
def test_the_switching_runs_again_once_the_archive_has_grown(tmp_path, growth, switched):
    oracle = _oracle(tmp_path, f"growth{growth}", reselect_growth=growth)
    _run(oracle)
    log = oracle.surrogate.log
    assert [e["trial"] for e in log] == [12, 16, 20, 24]
    for name in ("f1", "f2"):
        refits = [e["predictors"][name] for e in log]
        pairs = list(zip(log, refits, strict=True))
        assert [e["trial"] for e, r in pairs if not r.get("refitted")] == switched
        last = None
        for entry, refit in pairs:
            if refit.get("refitted"):  # the last switching's winner and scores, refitted
                assert refit == {**last, "refitted": True}
                assert entry["points"] < last["switched_at"] * (1 + growth)
            else:
                assert refit["switched_at"] == entry["points"]
                last = refit
    assert all(entry["trusted"] and entry["proposed"] == 4 for entry in log)


def test_the_spread_choice_runs_the_same_iterations(tmp_path):
    oracle = _oracle(tmp_path, "spread", choice="spread")
    trials = _run(oracle)
    assert [entry["trial"] for entry in oracle.surrogate.log] == [12, 16, 20, 24]
    assert oracle.surrogate.handed_out == list(range(12, 28))
    assert len({_key(t.hyperparameters.values) for t in trials}) == 28


def test_an_untrusted_surrogate_leaves_the_search_to_nsga2(tmp_path):
    oracle = _oracle(tmp_path, "noise")
    trials = _run(oracle, kind="noise")
    log = oracle.surrogate.log
    assert log and not any(entry["trusted"] for entry in log)
    assert all("cross-validated score below 0.3" in entry["reason"] for entry in log)
    assert [entry["trial"] for entry in log] == [12, 16, 20, 24]  # tried again every 4 trials
    assert oracle.surrogate.handed_out == []
    assert all(oracle.parents_of(t.trial_id) for t in trials[12:])  # bred, as plain NSGA-II


def test_a_resumed_search_continues_with_the_same_queue(tmp_path):
    expected = [t.hyperparameters.values for t in _run(_oracle(tmp_path, "whole"))]
    first = _oracle(tmp_path, "resumed")
    _run(first, n=14)  # 12 initial trials and 2 of the first 4 proposals
    assert len(first.surrogate.queue) == 2
    state = first.get_state()
    assert json.loads(json.dumps(state, allow_nan=False)) == state  # plain JSON
    second = _oracle(tmp_path, "resumed", candidates=7)  # the saved settings win
    second.reload()
    assert second.surrogate.queue == first.surrogate.queue
    assert second.surrogate.settings.candidates == 4
    _run(second)
    assert [second.trials[i].hyperparameters.values for i in second.start_order] == expected


def test_workers_share_the_queue_and_a_lost_workers_proposal_is_trained_again(
    tmp_path, monkeypatch
):
    # Three workers of a distributed search: tuner1 takes the first proposal and
    # goes silent; its lease expires, and tuner0 trains that same proposal.
    clock = [1000.0]
    monkeypatch.setattr(durable.time, "monotonic", lambda: clock[0])
    oracle = _oracle(tmp_path, "distributed")
    oracle.lease_s = 30.0
    _run(oracle, n=12)  # the initial design, all on tuner0
    lost = oracle.create_trial("tuner1")
    assert oracle.surrogate.handed_out == [12]
    proposal = dict(lost.hyperparameters.values)
    taken = [oracle.create_trial(worker) for worker in ("tuner0", "tuner2")]  # tuner1 trains
    assert oracle.surrogate.handed_out == [12, 13, 14]
    assert len(oracle.surrogate.log) == 1  # one refit serves both workers
    keys = {_key(t.hyperparameters.values) for t in [lost, *taken]}
    assert len(keys) == 3  # a running proposal is not handed out twice
    for trial in taken:
        _finish_smooth(oracle, trial)
    clock[0] += 31
    assert oracle.expire_leases() == [lost.trial_id]
    again = oracle.create_trial("tuner0")
    assert again.trial_id == lost.trial_id and again.hyperparameters.values == proposal
    _finish_smooth(oracle, again)
    trials = _run(oracle)
    completed = [t for t in oracle.trials.values() if t.status == "COMPLETED"]
    assert len(completed) == 28 and len(trials) == 28 - 15
    assert len({_key(t.hyperparameters.values) for t in completed}) == 28
    assert oracle.surrogate.handed_out == list(range(12, 28))  # each proposal once


def _finish_smooth(oracle, trial):
    oracle.update_trial(trial.trial_id, _metrics(trial.hyperparameters.values, "smooth"))
    trial.status = "COMPLETED"
    oracle.end_trial(trial)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"candidates": 0}, "candidates"),
        ({"initial_trials": 2}, "initial_trials"),
        ({"pool": ("rbf", "svm")}, "`pool` must name some of"),
        ({"min_score": 2.0}, "min_score"),
        ({"choice": "even"}, "`choice` must be one of"),
        ({"reselect_growth": -0.1}, "reselect_growth"),
    ],
)
def test_bad_surrogate_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        SurrogateSettings(**settings)
