"""Tests of NSGA2Oracle on synthetic problems (metrics from formulas, no training)."""

from __future__ import annotations

import json
import math
import random
import socket

import keras_tuner as kt
import numpy as np
import pytest

from flatnas_tf.tuners import pareto, space
from flatnas_tf.tuners.nsga2 import NSGA2Oracle

OBJECTIVES = [kt.Objective("f1", "min"), kt.Objective("f2", "max")]
DIRECTIONS = ["min", "max"]


def conditional_space() -> kt.HyperParameters:
    """Int, Float (stepped, log), Choice, Boolean, nested conditional scopes."""
    hp = kt.HyperParameters()
    hp.Choice("model", ["mlp", "cnn"])
    with hp.conditional_scope("model", ["mlp"]):
        hp.Int("units", 1, 16)
    with hp.conditional_scope("model", ["cnn"]):
        hp.Float("dropout", 0.0, 0.5, step=0.05)
        hp.Boolean("residual")
        with hp.conditional_scope("residual", [True]):
            hp.Choice("blocks", [1, 2, 4, 8])
    hp.Int("depth", 1, 8)
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    hp.Choice("act", ["relu", "gelu", "swish"])
    return hp


def metrics_of(values: dict) -> dict[str, float]:
    """Two conflicting objectives (f1 min, f2 max) and a constraint metric `cost`."""
    x = (values["depth"] - 1) / 7
    width = values["units"] / 16 if values["model"] == "mlp" else values["dropout"] * 2
    act = ["relu", "gelu", "swish"].index(values["act"])
    extra = 0.05 * values.get("blocks", 0) / 8 + 0.02 * act
    lr_pen = 0.1 * abs(math.log10(values["lr"]) + 2.5)
    f1 = x + 0.2 * width + extra
    f2 = math.sqrt(x) - 0.3 * width * (1 - x) - lr_pen
    return {"f1": f1, "f2": f2, "cost": values["depth"] * (1 + width)}


def make_oracle(tmp_path, name="p", **kwargs) -> NSGA2Oracle:
    settings = dict(
        objective=OBJECTIVES,
        population_size=8,
        max_trials=48,
        seed=3,
        hyperparameters=conditional_space(),
    )
    settings.update(kwargs)
    oracle = NSGA2Oracle(**settings)
    oracle._set_project_dir(str(tmp_path), name)  # what BaseTuner.__init__ does
    oracle.verbose = 0
    return oracle


def finish(oracle, trial, status="COMPLETED", metrics_fn=metrics_of):
    if status == "COMPLETED":
        oracle.update_trial(trial.trial_id, metrics_fn(trial.hyperparameters.values))
    trial.status = status
    oracle.end_trial(trial)


def run(oracle, n=None, metrics_fn=metrics_of, status_fn=None) -> list:
    """Sequential create -> compute -> update -> end; returns the created trials."""
    created = []
    while n is None or len(created) < n:
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        assert trial.status == "RUNNING"
        created.append(trial)
        status = status_fn(trial) if status_fn else "COMPLETED"
        finish(oracle, trial, status, metrics_fn)
    return created


def active_names(space, values) -> set[str]:
    """The hyperparameters active under `values`, by walking the space in order."""
    active = set()
    for hp in space:
        if all(cond.is_active(values) for cond in hp.conditions):
            active.add(hp.name)
    return active


def in_domain(hp, value) -> bool:
    if isinstance(hp, kt.engine.hyperparameters.Boolean):
        return isinstance(value, bool)
    if isinstance(hp, kt.engine.hyperparameters.Choice):
        return value in hp.values
    if isinstance(hp, kt.engine.hyperparameters.Int):
        return hp.min_value <= value <= hp.max_value and (value - hp.min_value) % hp.step == 0
    if hp.step is not None:
        return value in list(hp.values)
    return hp.min_value <= value <= hp.max_value


def key(values) -> str:
    return json.dumps(values, sort_keys=True)


# -- validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"population_size": 1}, "population_size"),
        ({"crossover_probability": 1.5}, "crossover_probability"),
        ({"mutation_probability": -0.1}, "mutation_probability"),
        ({"constraints": {"cost": float("nan")}}, "constraints"),
        ({"objective": [kt.Objective("f", "up")]}, "objective"),
        ({"objective": [kt.Objective("f", "min"), kt.Objective("f", "max")]}, "distinct"),
        ({"max_trials": 0}, "max_trials"),
    ],
)
def test_invalid_arguments_raise(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_oracle(tmp_path, **kwargs)


def test_objective_hooks_and_single_objective(tmp_path):
    oracle = make_oracle(tmp_path, objective=kt.Objective("f1", "min"))
    assert oracle.objective_directions() == ["min"]
    trials = run(oracle, 12)
    values = oracle.objective_values(trials)
    assert values.shape == (12, 1)
    expected = [metrics_of(t.hyperparameters.values)["f1"] for t in trials]
    np.testing.assert_allclose(values[:, 0], expected)
    best = oracle.get_best_trials(1)[0]
    assert best.metrics.get_last_value("f1") == pytest.approx(min(expected))


# -- generations, validity, duplicates, determinism ----------------------------------


def test_generations_and_parents(tmp_path):
    oracle = make_oracle(tmp_path)
    trials = run(oracle)
    assert len(trials) == 48
    assert oracle.generation == 5
    by_id = {t.trial_id: t for t in trials}
    objectives = oracle.objective_values(trials)
    for number, trial in enumerate(trials):
        generation = number // 8
        assert oracle.generation_of(trial.trial_id) == generation
        parents = oracle.parents_of(trial.trial_id)
        if generation == 0:
            assert parents == []
            continue
        assert 1 <= len(parents) <= 2 and len(set(parents)) == len(parents)
        # (mu + lambda): the pool of generation g is the best 8 of the trials before it.
        earlier = slice(0, 8 * generation)
        order = pareto.survival_order(objectives[earlier], DIRECTIONS)
        pool = {trials[i].trial_id for i in order[:8]}
        assert set(parents) <= pool
        assert all(by_id[p].status == "COMPLETED" for p in parents)


def test_children_are_valid_configurations(tmp_path):
    oracle = make_oracle(tmp_path, max_trials=120, population_size=10)
    trials = run(oracle)
    space = oracle.hyperparameters.space
    by_name = {hp.name: hp for hp in space}
    models = set()
    for trial in trials:
        values = trial.hyperparameters.values
        assert set(values) == active_names(space, values), values
        assert all(in_domain(by_name[name], value) for name, value in values.items()), values
        models.add((values["model"], values.get("residual")))
    assert models == {("mlp", None), ("cnn", True), ("cnn", False)}  # all branches explored
    assert len({key(t.hyperparameters.values) for t in trials}) == len(trials)


def test_mutation_moves_stay_in_the_domain():
    rng = random.Random(0)
    hps = kt.engine.hyperparameters

    def distance_one_share(ordered):
        grid = sorted(ordered.values)
        distances = []
        for _ in range(400):
            value = rng.choice(grid)
            new = space.mutate_value(ordered, value, rng)
            assert new in grid and new != value
            distances.append(abs(grid.index(new) - grid.index(value)))
        return distances.count(1) / len(distances)

    # A redraw among the n - 1 other values of an n-value grid lands next to the
    # old value with probability 2 / n. Up to 10 values half the moves are
    # neighbour steps (share 1/2 + 1/n); finer grids are always redrawn (2/n).
    # Tolerance 0.1: 4 standard deviations of a share at n = 400 draws.
    cases = [
        (hps.Int("d", 1, 6), 6, True),
        (hps.Choice("k", [7, 3, 5, 1, 9, 11]), 6, True),
        (hps.Float("s", 0.0, 1.0, step=0.1), 10, True),  # KerasTuner's grid: 0.0 .. 0.9
        (hps.Int("i", 2, 22, step=2), 11, False),
        (hps.Choice("c", [8, 1, 4, 2, 32, 16, 64, 128, 256, 512, 1024]), 11, False),
    ]
    for ordered, size, neighbour_steps in cases:
        assert len(list(ordered.values)) == size
        expected = 0.5 + 1 / size if neighbour_steps else 2 / size
        assert abs(distance_one_share(ordered) - expected) < 0.1, ordered.name
    unordered = hps.Choice("u", ["a", "b", "c"])
    assert {space.mutate_value(unordered, "a", rng) for _ in range(50)} == {"b", "c"}
    assert space.mutate_value(hps.Boolean("b"), True, rng) is False
    assert space.mutate_value(hps.Fixed("x", 3), 3, rng) == 3
    log_float = hps.Float("f", 1e-4, 1e-1, sampling="log")
    assert all(1e-4 <= space.mutate_value(log_float, 1e-2, rng) <= 1e-1 for _ in range(200))


def test_finite_space_is_exhausted_without_duplicates(tmp_path):
    hp = kt.HyperParameters()
    hp.Choice("kind", ["x", "y"])
    with hp.conditional_scope("kind", ["x"]):
        hp.Int("n", 1, 3)
    hp.Boolean("flag")
    # (3 values of n under x + 1 under y) * 2 flags = 8 configurations.
    oracle = make_oracle(tmp_path, hyperparameters=hp, population_size=3, max_trials=50, seed=0)
    trials = run(oracle, metrics_fn=lambda v: {"f1": v.get("n", 0), "f2": float(v["flag"])})
    assert len(trials) == 8
    assert len({key(t.hyperparameters.values) for t in trials}) == 8
    assert oracle.create_trial("tuner0").status == "STOPPED"


def test_same_seed_same_search(tmp_path):
    first = [t.hyperparameters.values for t in run(make_oracle(tmp_path, "a"))]
    second = [t.hyperparameters.values for t in run(make_oracle(tmp_path, "b"))]
    other = [t.hyperparameters.values for t in run(make_oracle(tmp_path, "c", seed=4))]
    assert first == second
    assert first != other


# -- ranking ------------------------------------------------------------------------


def test_front_is_the_non_dominated_set(tmp_path):
    oracle = make_oracle(tmp_path)
    trials = run(oracle)
    front = oracle.pareto_front()
    values = {t.trial_id: oracle.objective_values([t])[0] for t in trials}

    def dominates(a, b):  # brute force, f1 min and f2 max
        return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])

    front_ids = {t.trial_id for t in front}
    for trial in trials:
        dominated = any(dominates(values[o], values[trial.trial_id]) for o in values)
        assert dominated == (trial.trial_id not in front_ids)
    assert oracle.get_best_trials(len(front)) == front


def test_best_trials_follow_fronts_then_crowding(tmp_path):
    oracle = make_oracle(tmp_path)
    run(oracle, status_fn=lambda t: "FAILED" if int(t.trial_id) % 7 == 3 else "COMPLETED")
    best = oracle.get_best_trials(100)
    completed = [oracle.trials[i] for i in oracle.start_order]
    completed = [t for t in completed if t.status == "COMPLETED"]
    assert len(best) == len(completed)
    objectives = oracle.objective_values(completed)
    expected = [completed[i].trial_id for i in pareto.survival_order(objectives, DIRECTIONS)]
    assert [t.trial_id for t in best] == expected
    ranks, crowding = pareto.rank_and_crowd(objectives, DIRECTIONS)
    row = {t.trial_id: i for i, t in enumerate(completed)}
    scores = [t.score for t in best]
    assert scores == sorted(scores) and scores[0] == 0.0
    for trial in best:
        assert ranks[row[trial.trial_id]] <= trial.score < ranks[row[trial.trial_id]] + 1
    assert oracle.get_best_trials(3) == best[:3]


def test_failed_and_invalid_trials_never_become_parents(tmp_path):
    def status(trial):
        number = int(trial.trial_id)
        return "FAILED" if number % 4 == 1 else "INVALID" if number % 4 == 2 else "COMPLETED"

    oracle = make_oracle(tmp_path, max_trials=64)
    run(oracle, status_fn=status)
    bad = {i for i, t in oracle.trials.items() if t.status != "COMPLETED"}
    assert len(bad) == 32  # INVALID ends as FAILED without retries
    parents = {p for i in oracle.trials for p in oracle.parents_of(i)}
    assert parents and not parents & bad
    assert not {t.trial_id for t in oracle.get_best_trials(100)} & bad


@pytest.mark.filterwarnings("ignore:All-NaN:RuntimeWarning")
def test_completed_trial_without_metrics_is_invalid(tmp_path):
    oracle = make_oracle(tmp_path, max_consecutive_failed_trials=10)
    trial = oracle.create_trial("tuner0")
    trial.status = "COMPLETED"
    oracle.end_trial(trial)  # nothing reported: the score is NaN, so INVALID -> FAILED
    assert oracle.trials[trial.trial_id].status == "FAILED"
    trial = oracle.create_trial("tuner0")
    oracle.update_trial(trial.trial_id, {"f1": float("nan"), "f2": 1.0})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)  # an objective not measured, no constraint: a failed measurement
    assert oracle.trials[trial.trial_id].status == "FAILED"
    assert oracle.get_best_trials(10) == []

    constrained = make_oracle(tmp_path, "constrained", constraints={"cost": 2.0})
    trial = constrained.create_trial("tuner0")
    constrained.update_trial(trial.trial_id, {"f1": float("nan"), "f2": 1.0, "cost": 9.0})
    trial.status = "COMPLETED"
    constrained.end_trial(trial)  # outside a constraint: a measured, infeasible result
    stored = constrained.trials[trial.trial_id]
    assert stored.status == "COMPLETED" and math.isfinite(stored.score)
    assert constrained.pareto_front() == []


def test_incremental_ranking_equals_ranking_from_scratch(tmp_path):
    # Trials end out of creation order, one reports again after completing and
    # one ends without metrics; after every change the oracle's ranking (kept
    # up to date incrementally) equals a full sort of the completed trials.
    oracle = make_oracle(
        tmp_path, population_size=6, max_trials=60, max_consecutive_failed_trials=9
    )
    rng = random.Random(0)
    running = [oracle.create_trial(f"tuner{i}") for i in range(8)]

    def check():
        completed = [oracle.trials[i] for i in oracle.start_order]
        completed = [t for t in completed if t.status == "COMPLETED"]
        objectives = oracle.objective_values(completed)
        expected = pareto.survival(objectives, DIRECTIONS)
        ranking = oracle.rank()
        assert [t.trial_id for t in ranking.trials] == [t.trial_id for t in completed]
        np.testing.assert_array_equal(ranking.ranks, expected.ranks)
        np.testing.assert_array_equal(ranking.order, expected.order)
        assert [t.trial_id for t in oracle.get_best_trials(5)] == [
            completed[row].trial_id for row in expected.order[:5]
        ]

    for number in range(44):
        trial = running.pop(rng.randrange(len(running)))
        if number == 20:
            trial.status = "COMPLETED"  # nothing reported: INVALID, then FAILED
            oracle.end_trial(trial)
        else:
            finish(oracle, trial)
        if number == 30:  # a completed trial reports again (a later step)
            again = oracle.get_best_trials(1)[0]
            oracle.update_trial(again.trial_id, {"f1": 5.0, "f2": -5.0}, step=1)
        check()
        running.append(oracle.create_trial(f"tuner{number}"))
    assert oracle.trials[running[0].trial_id].status == "RUNNING"
    # One sort from scratch for the first ranking, one after the report that
    # changed a completed trial's values, one after the INVALID trial left.
    assert oracle._incremental_ranks.rebuilds <= 3
    assert oracle._incremental_ranks.insertions >= 35  # of 43 completions


def test_consecutive_failures_count_the_newest_run_only(tmp_path):
    oracle = make_oracle(tmp_path, max_consecutive_failed_trials=3)
    for status in ["FAILED", "FAILED", "COMPLETED", "FAILED", "FAILED"]:
        finish(oracle, oracle.create_trial("tuner0"), status)
    trial = oracle.create_trial("tuner0")
    trial.message = "out of memory"
    with pytest.raises(RuntimeError, match="(?s)limit of 3.*out of memory"):
        finish(oracle, trial, "FAILED")


def test_constraints_keep_infeasible_trials_off_the_front(tmp_path):
    oracle = make_oracle(tmp_path, constraints={"cost": 6.0}, max_trials=64)
    reported = []

    def metrics(values):  # every 9th trial (from the 6th) never reports the constraint
        result = metrics_of(values)
        reported.append(len(reported) % 9 != 5)
        if not reported[-1]:
            del result["cost"]
        return result

    trials = run(oracle, metrics_fn=metrics)
    violations = oracle.constraint_violations(trials)
    assert np.isinf(violations).sum() >= 5
    assert (violations > 0).sum() > 5 and (violations == 0).sum() > 5
    feasible = {t.trial_id for t, v in zip(trials, violations, strict=True) if v == 0}
    front = oracle.pareto_front()
    assert front and {t.trial_id for t in front} <= feasible
    # Feasible trials come before every infeasible one in the best-trials order.
    order = [t.trial_id in feasible for t in oracle.get_best_trials(100)]
    assert order == sorted(order, reverse=True)
    # The constraint metric is registered as "min", the max objective as "max".
    assert trials[0].metrics.get_direction("cost") == "min"
    assert trials[0].metrics.get_direction("f2") == "max"


def test_objective_hook_sees_the_whole_archive(tmp_path):
    calls = []

    class Normalised(NSGA2Oracle):
        """f1 divided by the archive mean of f1: depends on every completed trial."""

        def objective_values(self, trials):
            archive = [t.trial_id for t in self._completed()]
            calls.append((len(trials), [t.trial_id for t in trials] == archive))
            raw = super().objective_values(trials)
            completed = super().objective_values(self._completed())
            return raw / np.array([np.nanmean(completed[:, 0]), 1.0])

    oracle = Normalised(
        objective=OBJECTIVES,
        population_size=6,
        max_trials=30,
        seed=1,
        hyperparameters=conditional_space(),
    )
    oracle._set_project_dir(str(tmp_path), "hook")
    oracle.verbose = 0
    run(oracle)
    # Every ranking passed exactly the completed trials, in creation order.
    assert calls and all(whole for _, whole in calls)
    assert max(n for n, _ in calls) == 30
    assert oracle.get_best_trials(1)[0].trial_id == oracle.pareto_front()[0].trial_id


# -- asynchrony ---------------------------------------------------------------------


def test_asynchronous_requests_never_idle(tmp_path):
    oracle = make_oracle(tmp_path, population_size=5, max_trials=60)
    running = [oracle.create_trial(f"tuner{i}") for i in range(12)]  # > one generation
    assert all(t.status == "RUNNING" for t in running)
    assert len({key(t.hyperparameters.values) for t in running}) == 12
    assert all(oracle.parents_of(t.trial_id) == [] for t in running)  # nothing completed yet
    completed = set()
    for _ in range(48):
        trial = running.pop(0)
        finish(oracle, trial)
        completed.add(trial.trial_id)
        new = oracle.create_trial(trial.trial_id + "-worker")
        assert new.status == "RUNNING"
        assert set(oracle.parents_of(new.trial_id)) <= completed
        running.append(new)
    assert oracle.generation == 11
    bred = [i for i in oracle.start_order if oracle.parents_of(i)]
    assert len(bred) >= 40


# -- resume -------------------------------------------------------------------------


def test_resume_continues_the_same_search(tmp_path):
    reference = make_oracle(tmp_path, "uninterrupted", max_trials=56)
    expected = [t.hyperparameters.values for t in run(reference)]

    first = make_oracle(tmp_path, "resumed", max_trials=56)
    run(first, 21)
    pending = first.create_trial("tuner0")  # interrupted while trial 21 runs
    state = first.get_state()
    assert json.loads(json.dumps(state, allow_nan=False)) == state  # plain JSON

    second = make_oracle(tmp_path, "resumed", max_trials=56, seed=None, population_size=4)
    second.reload()  # what a tuner with overwrite=False does; saved state wins
    assert second.population_size == 8 and second.seed == 3
    assert second.generation == first.generation == 2
    retried = second.create_trial("tuner0")
    assert retried.trial_id == pending.trial_id
    assert retried.hyperparameters.values == pending.hyperparameters.values
    finish(second, retried)
    run(second)
    ids = second.start_order
    assert len(ids) == len(set(ids)) == 56
    assert [second.trials[i].hyperparameters.values for i in ids] == expected
    assert second.generation == reference.generation == 6
    assert all(second.trials[i].status == "COMPLETED" for i in ids)


def test_reload_does_not_rerun_the_last_finished_trial(tmp_path):
    first = make_oracle(tmp_path, "finished", max_trials=10)
    run(first, 4)  # ended normally: oracle.json still lists trial 3 as ongoing
    assert json.loads((tmp_path / "finished" / "oracle.json").read_text())["ongoing_trials"]
    second = make_oracle(tmp_path, "finished", max_trials=10)
    second.reload()
    new = second.create_trial("tuner0")
    assert new.trial_id not in first.start_order
    assert second.trials[first.start_order[-1]].status == "COMPLETED"


def test_keras_tuner_search_and_resume(tmp_path):
    class Formula(kt.engine.base_tuner.BaseTuner):
        """A tuner whose trials compute their metrics from the hyperparameters."""

        def run_trial(self, trial, **kwargs):
            result = metrics_of(trial.hyperparameters.values)
            result["multi_objective"] = result["f1"] - result["f2"]
            return result

    def build(hp):
        model = hp.Choice("model", ["mlp", "cnn"])
        with hp.conditional_scope("model", ["mlp"]):
            if model == "mlp":
                hp.Int("units", 1, 16)
        with hp.conditional_scope("model", ["cnn"]):
            if model == "cnn":
                hp.Float("dropout", 0.0, 0.5, step=0.05)
                residual = hp.Boolean("residual")
                with hp.conditional_scope("residual", [True]):
                    if residual:
                        hp.Choice("blocks", [1, 2, 4, 8])
        hp.Int("depth", 1, 8)
        hp.Float("lr", 1e-4, 1e-1, sampling="log")
        hp.Choice("act", ["relu", "gelu", "swish"])

    def tuner(project, max_trials, overwrite):
        oracle = NSGA2Oracle(objective=OBJECTIVES, population_size=6, max_trials=max_trials, seed=7)
        return Formula(
            oracle, build, directory=str(tmp_path), project_name=project, overwrite=overwrite
        )

    straight = tuner("straight", 30, True)
    straight.search(verbose=0)
    part = tuner("parts", 14, True)
    part.search(verbose=0)
    rest = tuner("parts", 30, False)  # reloads oracle.json and trial_*/trial.json
    rest.search(verbose=0)
    values = [straight.oracle.trials[i].hyperparameters.values for i in straight.oracle.start_order]
    resumed = [rest.oracle.trials[i].hyperparameters.values for i in rest.oracle.start_order]
    assert len(rest.oracle.start_order) == len(set(rest.oracle.start_order)) == 30
    assert resumed == values
    best = straight.get_best_hyperparameters(3)
    front = straight.oracle.pareto_front()
    assert [hp.values for hp in best] == [t.hyperparameters.values for t in front[:3]]


# -- distributed mode (the gRPC calls, in process) ----------------------------------


def test_oracle_served_over_grpc(tmp_path, monkeypatch):
    grpc = pytest.importorskip("grpc")
    from concurrent import futures

    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief, oracle_client

    chief = make_oracle(tmp_path, "chief", population_size=4, max_trials=24)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    protos.get_service_grpc().add_OracleServicer_to_server(
        oracle_chief.OracleServicer(chief), server
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
        monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
        monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
        local = make_oracle(tmp_path, "worker", population_size=4, max_trials=24)
        client = oracle_client.OracleClient(local)
        assert client.get_space().space
        workers = ["tuner0", "tuner1", "tuner2"]
        running = {w: client.create_trial(w) for w in workers}
        done = 0
        while running:
            for worker in list(running):
                trial = running.pop(worker)
                if trial.status == "STOPPED":
                    continue
                assert trial.status == "RUNNING"
                client.update_trial(trial.trial_id, metrics_of(trial.hyperparameters.values))
                trial.status = "COMPLETED"
                client.end_trial(trial)
                done += 1
                running[worker] = client.create_trial(worker)
        assert done == 24
        trials = chief.trials.values()
        assert all(t.status == "COMPLETED" and math.isfinite(t.score) for t in trials)
        remote = [t.trial_id for t in client.get_best_trials(5)]
        assert remote == [t.trial_id for t in chief.get_best_trials(5)]
        assert client.get_trial(remote[0]).score == 0.0
        assert any(chief.parents_of(i) for i in chief.start_order)
    finally:
        server.stop(None)


# -- search quality -----------------------------------------------------------------


def zdt1_space(n=6) -> kt.HyperParameters:
    hp = kt.HyperParameters()
    for i in range(n):
        hp.Float(f"x{i}", 0.0, 1.0, step=0.02)
    return hp


def zdt1(values) -> dict[str, float]:
    x = np.array([values[f"x{i}"] for i in range(len(values))])
    g = 1 + 9 * x[1:].mean()
    f1, f2 = float(x[0]), float(g * (1 - math.sqrt(x[0] / g)))
    return {"f1": f1, "f2": f2, "multi_objective": f1 + f2}  # RandomSearch scores the sum


def test_nsga2_beats_random_search_on_zdt1(tmp_path):
    objectives = [kt.Objective("f1", "min"), kt.Objective("f2", "min")]
    budget = 20 * 7  # the random initial population and 6 bred generations
    volumes = {"nsga": [], "random": []}
    for seed in (1, 2, 3):
        for name, cls, extra in (
            ("nsga", NSGA2Oracle, {"population_size": 20}),
            ("random", kt.oracles.RandomSearchOracle, {}),
        ):
            oracle = cls(
                objective=objectives,
                max_trials=budget,
                seed=seed,
                hyperparameters=zdt1_space(10),
                **extra,
            )
            oracle._set_project_dir(str(tmp_path), f"{name}{seed}")
            oracle.verbose = 0
            trials = run(oracle, metrics_fn=zdt1)
            points = [[t.metrics.get_last_value(n) for n in ("f1", "f2")] for t in trials]
            # f2 = 5 is about g of an average random design (1 + 9 * 0.5): only
            # points better than that count.
            volumes[name].append(pareto.hypervolume(points, "min", reference=[1.1, 5.0]))
    # Margin: twice the seed-to-seed standard deviation of random search's
    # hypervolume here (0.15, measured over 12 seeds), so the lead is not what
    # reseeding random search could give. Measured over 12 seeds: NSGA-II 3.44,
    # random 2.78 on average; the lead was 0.18 at least and 0.67 on average.
    assert np.mean(volumes["nsga"]) > np.mean(volumes["random"]) + 2 * 0.15
