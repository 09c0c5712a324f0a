"""A search directory survives kills, damage, a full disk and crafted files (tuners/durable.py).

The searches are `benchmarks/crash_soak.py`'s: tiny candidates on digits, one
epoch, data in a fixed order, so a trial gives the same figures whenever it
runs. One finished search is made per module and copied into each test.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time

import crash_soak
import keras_tuner as kt
import pytest
from support.benchmarks import run_benchmark

from flatnas_tf.persistence import storage
from flatnas_tf.tuners import durable
from flatnas_tf.tuners.durable import check_trial_id
from flatnas_tf.tuners.nsga2 import NSGA2Oracle
from flatnas_tf.tuners.result import SearchResult

TRIALS = 5
STARTED = ["000", "001", "002", "003", "004"]  # the trials a finished search ran, in order


def _search(directory, max_trials=TRIALS):
    """Runs or resumes the search; each trial run appends its id to runs.log."""
    tuner = crash_soak._tuner(directory, max_trials, directory / crash_soak.RUN_LOG)
    train, validation = crash_soak._data()
    tuner.search(train, validation_data=validation, epochs=1, verbose=0)
    return tuner


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    directory = tmp_path_factory.mktemp("finished")
    _search(directory)
    return directory


@pytest.fixture
def copy(finished, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(finished, target)
    return target


def _project(directory):
    return directory / crash_soak.PROJECT


def _figures(tuner):
    return {t.trial_id: (t.status, t.hyperparameters.values) for t in tuner.oracle.trials.values()}


def test_kill_at_random_moments_loses_nothing(tmp_path):
    argv = ["--rounds", "3", "--trials", "5", "--write-delay", "0.05", "--seed", "1"]
    argv += ["--keep", str(tmp_path / "soak")]
    figures = run_benchmark(crash_soak.main, tmp_path / "crash_soak.json", *argv)
    assert figures["trials_finished"] == 5
    for name in ("unreadable", "lost", "duplicated", "mismatched_figures"):
        assert figures[name] == 0, figures
    assert figures["archive_equal"] and figures["front_equal"], figures


@pytest.mark.parametrize("damage", [b"", b'{"ongoing_trials": 3}', b'{"start_order": ["../x"]'])
def test_damaged_oracle_state_is_rebuilt_from_the_trial_files(finished, copy, damage):
    before = _figures(crash_soak._tuner(finished, TRIALS))
    (_project(copy) / "oracle.json").write_bytes(damage)
    tuner = crash_soak._tuner(copy, TRIALS)
    assert len(tuner.oracle.recovery_notes) == 1
    assert "rebuilt it from 5 trial files" in tuner.oracle.recovery_notes[0]
    assert _figures(tuner) == before
    assert tuner.oracle.end_order == sorted(before, key=int)
    assert tuner.pareto_front()  # ranks as before: the figures are in the trial files
    # The rebuilt state is written at once: a finished search saves nothing more later.
    assert len(SearchResult.load(_project(copy), attempts=1).trials) == TRIALS


def test_damaged_trial_file_is_set_aside_and_its_id_never_reused(copy):
    path = _project(copy) / "trial_002" / "trial.json"
    path.write_bytes(path.read_bytes()[:200])  # a half-written file
    tuner = _search(copy, TRIALS + 1)  # resumes, and runs one more trial
    assert (path.parent / "trial.json.damaged").exists()
    damaged = tuner.oracle.trials["002"]
    assert damaged.status == "FAILED" and "not valid JSON" in damaged.message
    assert sorted(tuner.oracle.trials, key=int) == [f"{n:03d}" for n in range(6)]
    assert tuner.oracle.trials["005"].status == "COMPLETED"
    assert json.loads(path.read_text())["status"] == "FAILED"  # the record is kept


def test_deleted_trial_file_gives_a_failed_placeholder(finished, copy):
    (_project(copy) / "trial_001" / "trial.json").unlink()
    tuner = crash_soak._tuner(copy, TRIALS)
    assert tuner.oracle.trials["001"].status == "FAILED"
    assert "missing" in tuner.oracle.trials["001"].message
    others = {k: v for k, v in _figures(tuner).items() if k != "001"}
    before = _figures(crash_soak._tuner(finished, TRIALS))
    assert others == {k: v for k, v in before.items() if k != "001"}


def test_crafted_trial_ids_never_lead_outside_the_directory(copy, tmp_path):
    path = _project(copy) / "trial_003" / "trial.json"
    state = json.loads(path.read_text())
    state["trial_id"] = "../../../../escaped"
    path.write_text(json.dumps(state))
    oracle = _project(copy) / "oracle.json"
    oracle_state = json.loads(oracle.read_text())
    oracle_state["retry_queue"] = ["../../../../queued"]
    oracle.write_text(json.dumps(oracle_state))
    before = set(map(str, tmp_path.rglob("*")))
    tuner = _search(copy, TRIALS + 1)
    created = set(map(str, tmp_path.rglob("*"))) - before
    assert all(p.startswith(str(copy)) for p in created), created
    assert not any("escaped" in p or "queued" in p for p in created)
    assert tuner.oracle.trials["003"].status == "FAILED"
    with pytest.raises(ValueError, match="not a trial id"):
        check_trial_id("../x")


def test_finished_trial_is_not_rerun_when_the_oracle_missed_its_end(finished, copy):
    # Killed after trial 004's trial.json said COMPLETED, before oracle.json heard of it.
    oracle = _project(copy) / "oracle.json"
    state = json.loads(oracle.read_text())
    state["end_order"].remove("004")
    state["ongoing_trials"] = {"tuner0": "004"}
    oracle.write_text(json.dumps(state))
    tuner = _search(copy, TRIALS)
    assert tuner.oracle.trials["004"].status == "COMPLETED"
    assert crash_soak._started(copy) == STARTED  # nothing ran again
    assert _figures(tuner) == _figures(crash_soak._tuner(finished, TRIALS))


def test_unfinished_trial_with_stale_figures_is_measured_again(finished, copy):
    # Killed after the figures were reported, before the trial was marked COMPLETED.
    path = _project(copy) / "trial_003" / "trial.json"
    state = json.loads(path.read_text())
    state["status"] = "RUNNING"
    for metric in state["metrics"]["metrics"].values():  # figures of another run
        for observation in metric["observations"]:
            observation["value"] = [0.123]
    path.write_text(json.dumps(state))
    tuner = _search(copy, TRIALS)
    assert crash_soak._started(copy) == [*STARTED, "003"]  # run once more
    assert tuner.oracle.trials["003"].status == "COMPLETED"
    assert tuner.figures(tuner.oracle.trials["003"])["params"] != 0.123
    assert crash_soak.mismatched(copy, TRIALS) == []


def test_search_killed_before_its_tuner_file_resumes(finished, copy):
    (_project(copy) / "tuner0.json").unlink()
    tuner = _search(copy, TRIALS)
    assert crash_soak._started(copy) == STARTED  # nothing ran again
    assert _figures(tuner) == _figures(crash_soak._tuner(finished, TRIALS))


def test_full_disk_ends_the_search_and_keeps_the_state(copy, monkeypatch):
    write_bytes = storage.write_bytes
    calls = []

    def full_after_two(path, data):
        calls.append(path)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write_bytes(path, data)

    monkeypatch.setattr(storage, "write_bytes", full_after_two)
    with pytest.raises(OSError) as raised:
        _search(copy, TRIALS + 2)
    assert raised.value.errno == errno.ENOSPC
    monkeypatch.undo()
    for path in _project(copy).rglob("*.json"):
        json.loads(path.read_text())  # every state file still parses
    assert not list(_project(copy).rglob(f".*{storage.PARTIAL}*"))
    tuner = _search(copy, TRIALS + 2)  # space freed: the search resumes and finishes
    assert len(tuner.oracle.end_order) == TRIALS + 2


def test_second_search_in_one_directory_is_refused(copy):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = _project(copy) / "search.lock"
        owner = {"host": os.uname().nodename, "pid": sleeper.pid, "since": time.time()}
        lock.write_text(json.dumps(owner))
        with pytest.raises(storage.DirectoryLockedError, match=f"process {sleeper.pid}"):
            _search(copy, TRIALS + 1)
    finally:
        sleeper.kill()
        sleeper.wait()
    tuner = _search(copy, TRIALS + 1)  # its owner is gone: the lock is stale
    assert len(tuner.oracle.end_order) == TRIALS + 1
    assert not lock.exists()


def test_directory_lock_nests_and_refuses_empty_lock_files_only_while_fresh(tmp_path):
    with storage.directory_lock(tmp_path) as path, storage.directory_lock(tmp_path):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()
    path.write_text("")
    with pytest.raises(storage.DirectoryLockedError, match="right now"):
        with storage.directory_lock(tmp_path):
            pass
    os.utime(path, (time.time() - 60, time.time() - 60))
    with storage.directory_lock(tmp_path):
        pass


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _leased_oracle(tmp_path, monkeypatch, max_trials=3):
    clock = _Clock()
    monkeypatch.setattr(durable.time, "monotonic", clock)
    hp = kt.HyperParameters()
    hp.Int("a", 0, 99)
    oracle = NSGA2Oracle(
        objective=[kt.Objective("f", "min")], max_trials=max_trials, seed=0, hyperparameters=hp
    )
    oracle._set_project_dir(str(tmp_path), "leases")
    oracle.lease_s = 30.0
    return oracle, clock


def _finish(oracle, trial, value=1.0):
    oracle.update_trial(trial.trial_id, {"f": value})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)


def test_a_silent_workers_trial_goes_to_another_worker(tmp_path, monkeypatch):
    oracle, clock = _leased_oracle(tmp_path, monkeypatch)
    lost = oracle.create_trial("tuner1")
    for _ in range(2):
        _finish(oracle, oracle.create_trial("tuner0"))
    clock.now += 20
    assert oracle.create_trial("tuner0").status == "IDLE"  # all created; tuner1 may return
    oracle.get_trial(lost.trial_id)  # tuner1's heartbeat renews the lease
    clock.now += 20
    assert oracle.expire_leases() == []
    assert not oracle.search_over(stop_sent=False)
    clock.now += 31
    assert oracle.expire_leases() == [lost.trial_id]
    assert "worker tuner1 silent for 51 s" in oracle.recovery_notes[-1]
    assert json.loads((tmp_path / "leases" / "oracle.json").read_text())["retry_queue"] == [
        lost.trial_id
    ]
    again = oracle.create_trial("tuner0")
    assert again.trial_id == lost.trial_id and again.status == "RUNNING"
    late = kt.engine.trial.Trial(oracle.get_space(), trial_id=lost.trial_id, status="COMPLETED")
    _finish(oracle, again, 5.0)  # tuner0's report: accepted
    oracle.end_trial(late)  # tuner1 comes back late: ignored
    assert oracle.update_trial(lost.trial_id, {"f": 9.0}).metrics.get_last_value("f") == 5.0
    assert "tuner1" not in oracle.tuner_ids  # forgotten with its lease
    assert oracle.create_trial("tuner0").status == "STOPPED"
    assert oracle.search_over(stop_sent=True)


def test_a_worker_ending_a_long_trial_is_told_stopped_before_the_chief_leaves(
    tmp_path, monkeypatch
):
    # The trial outlasts the lease (heartbeats keep it), so the worker's last
    # create_trial is long past when it reports: it must still be waited for,
    # or the chief stops serving and the worker's next call waits an hour.
    oracle, clock = _leased_oracle(tmp_path, monkeypatch, max_trials=1)
    trial = oracle.create_trial("tuner0")
    for _ in range(3):
        clock.now += 20
        oracle.get_trial(trial.trial_id)
    _finish(oracle, trial)
    clock.now += 1
    oracle.expire_leases()
    assert "tuner0" in oracle.tuner_ids
    assert not oracle.search_over(stop_sent=False)
    assert oracle.create_trial("tuner0").status == "STOPPED"
    assert oracle.search_over(stop_sent=True)


def test_a_worker_dying_between_trials_is_forgotten_after_the_lease(tmp_path, monkeypatch):
    oracle, clock = _leased_oracle(tmp_path, monkeypatch, max_trials=1)
    _finish(oracle, oracle.create_trial("tuner0"))
    clock.now += 29
    oracle.expire_leases()
    assert not oracle.search_over(stop_sent=False)  # it may still ask
    clock.now += 2
    oracle.expire_leases()
    assert "tuner0" not in oracle.tuner_ids
    assert oracle.search_over(stop_sent=False)


def test_without_a_lease_trials_wait_for_their_worker(tmp_path, monkeypatch):
    oracle, clock = _leased_oracle(tmp_path, monkeypatch, max_trials=1)
    oracle.lease_s = None
    oracle.create_trial("tuner1")
    clock.now += 10**6
    assert oracle.expire_leases() == []
    assert oracle.create_trial("tuner0").status == "STOPPED"  # KerasTuner's behaviour


def test_a_restarted_chief_keeps_the_leases_its_workers_still_hold(tmp_path, monkeypatch):
    oracle, clock = _leased_oracle(tmp_path, monkeypatch, max_trials=4)
    _finish(oracle, oracle.create_trial("tuner0"))
    held = {w: oracle.create_trial(w).trial_id for w in ("tuner0", "tuner1")}
    # The chief is killed here; a new one reloads the directory a while later.
    clock.now += 100
    chief, _ = _leased_oracle(tmp_path, monkeypatch, max_trials=4)
    monkeypatch.setattr(durable.time, "monotonic", clock)  # one clock for both chiefs
    chief.reload()
    assert {w: t.trial_id for w, t in chief.ongoing_trials.items()} == held
    assert chief._retry_queue == [] and chief.recovery_notes == []
    clock.now += 20
    chief.get_trial(held["tuner1"])  # tuner1 trains on: its heartbeat reaches the new chief
    _finish(chief, chief.trials[held["tuner1"]], 2.0)
    assert chief.trials[held["tuner1"]].status == "COMPLETED"  # its report is accepted
    clock.now += 11  # tuner0 silent for 31 s since the restart: it died with the chief
    assert chief.expire_leases() == [held["tuner0"]]
    again = chief.create_trial("tuner1")
    assert again.trial_id == held["tuner0"]  # run again once, by the worker still there
    _finish(chief, again)
    last = chief.create_trial("tuner1")
    _finish(chief, last)
    assert chief.create_trial("tuner1").status == "STOPPED"
    assert sorted(chief.end_order) == ["000", "001", "002", "003"]


def test_attempts_are_counted_per_hand_out_and_kept_with_the_state(tmp_path, monkeypatch):
    oracle, clock = _leased_oracle(tmp_path, monkeypatch, max_trials=4)
    trial = oracle.create_trial("tuner1")
    clock.now += 31
    oracle.expire_leases()
    assert oracle.create_trial("tuner0").trial_id == trial.trial_id
    assert oracle.attempts == {trial.trial_id: 2}
    chief, _ = _leased_oracle(tmp_path, monkeypatch, max_trials=4)
    chief.reload()
    assert chief.attempts == {trial.trial_id: 2}
    scope = durable.presented_attempt.set(1)  # tuner1's report, served by the new chief
    try:
        with pytest.raises(durable.SupersededAttemptError, match="superseded by attempt 2"):
            chief.update_trial(trial.trial_id, {"f": 9.0})
    finally:
        durable.presented_attempt.reset(scope)
    assert chief.trials[trial.trial_id].metrics.get_last_value("f") is None


def test_without_leases_a_restarted_oracle_runs_unfinished_trials_again(tmp_path, monkeypatch):
    oracle, _ = _leased_oracle(tmp_path, monkeypatch, max_trials=4)
    oracle.lease_s = None
    lost = oracle.create_trial("tuner0").trial_id
    resumed, _ = _leased_oracle(tmp_path, monkeypatch, max_trials=4)
    resumed.lease_s = None
    resumed.reload()
    assert resumed.ongoing_trials == {} and resumed._retry_queue == [lost]


@pytest.mark.parametrize("max_trials", [4, 10, 1000])
def test_trial_ids_have_three_digits_whatever_max_trials(tmp_path, monkeypatch, max_trials):
    oracle, _ = _leased_oracle(tmp_path, monkeypatch, max_trials=max_trials)
    for _ in range(3):
        _finish(oracle, oracle.create_trial("tuner0"))
    assert oracle.start_order == ["000", "001", "002"]
    assert sorted(p.name for p in (tmp_path / "leases").glob("trial_*")) == [
        "trial_000",
        "trial_001",
        "trial_002",
    ]


@pytest.mark.parametrize("digits", [1, 2])
def test_a_resumed_search_keeps_the_width_of_its_ids(tmp_path, monkeypatch, digits):
    # A search written by a version that padded to len(str(max_trials)), grown
    # past that width: its new ids keep the old width (no "8" next to "09").
    oracle, _ = _leased_oracle(tmp_path, monkeypatch, max_trials=4)
    oracle.trial_id_digits = digits
    for _ in range(4):
        _finish(oracle, oracle.create_trial("tuner0"))
    resumed, _ = _leased_oracle(tmp_path, monkeypatch, max_trials=12)
    resumed.reload()
    while (trial := resumed.create_trial("tuner0")).status == "RUNNING":
        _finish(resumed, trial)
    assert resumed.start_order == [f"{n:0{digits}d}" for n in range(12)]


@pytest.mark.parametrize("existing", [0, TRIALS])
def test_trial_killed_while_being_created_is_created_again(finished, copy, existing):
    if existing == 0:  # killed in the very first write of the search
        shutil.rmtree(_project(copy))
        _project(copy).mkdir()
        (copy / crash_soak.RUN_LOG).unlink()
    trial_dir = _project(copy) / f"trial_{existing}"
    trial_dir.mkdir()
    (trial_dir / f".trial.json{storage.PARTIAL}x1").write_text('{"trial_id": "')
    tuner = _search(copy, TRIALS + 1)
    assert tuner.oracle.recovery_notes == []
    assert [t.status for t in tuner.oracle.trials.values()] == ["COMPLETED"] * (TRIALS + 1)
    assert not list(trial_dir.glob(f".*{storage.PARTIAL}*"))


def _snapshot(directory):
    return {p: p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_another_tools_project_is_refused_and_left_as_it_was(tmp_path):
    hp = kt.HyperParameters()
    hp.Int("units", 1, 8)
    oracle = kt.oracles.RandomSearchOracle(objective="loss", max_trials=2, hyperparameters=hp)
    oracle._set_project_dir(str(tmp_path), "foreign")  # what BaseTuner.__init__ does
    for _ in range(2):  # a KerasTuner RandomSearch project with two finished trials
        trial = oracle.create_trial("tuner0")
        oracle.update_trial(trial.trial_id, {"loss": 1.0})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    oracle.save()
    before = _snapshot(tmp_path / "foreign")
    ours = NSGA2Oracle(objective=["loss"], max_trials=4, seed=0, hyperparameters=hp)
    ours._set_project_dir(str(tmp_path), "foreign")
    with pytest.raises(durable.ForeignProjectError) as refused:
        ours.reload()  # what a tuner does with overwrite=False
    message = str(refused.value)
    assert "holds a project that flatnas-tf did not write" in message and "\n" not in message
    assert "overwrite=True" in message and not ours.recovery_notes
    assert _snapshot(tmp_path / "foreign") == before  # byte for byte


def test_this_projects_mark_keeps_a_strange_oracle_state_repairable(copy):
    project = _project(copy)
    assert json.loads((project / durable.MARK_FILE).read_text()) == {"format": durable.STATE_FORMAT}
    assert json.loads((project / "oracle.json").read_text())["format"] == durable.STATE_FORMAT
    (project / "oracle.json").write_text('{"ongoing_trials": {}}')  # no mark, no NSGA-II state
    assert durable.own_project_problem(project) is None
    (project / durable.MARK_FILE).unlink()  # without the mark file: another tool's project
    assert "holds no flatnas-tf state" in durable.own_project_problem(project)
