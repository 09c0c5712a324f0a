"""KerasTuner's distributed mode with the project's oracles: a chief and two workers.

Every test starts real processes on 127.0.0.1 (`distributed_worker.py`): a
chief that serves the oracle over gRPC and two workers ("tuner0", "tuner1")
that share one search directory. Each run of a trial appends
"<trial_id> <tuner_id> <pid> start|end" to a log in that directory, which is
how the tests see who ran what. Every wait is bounded and every process is
killed and reaped when a test ends, passed or failed; their output is in
`tmp_path/*.out` and printed when a test fails.

What KerasTuner 1.4 does, from its source (engine/oracle.py,
distribute/oracle_chief.py, engine/base_tuner.py):

- A worker that comes back with the same KERASTUNER_TUNER_ID gets its
  interrupted trial again: `Oracle.create_trial(tuner_id)` first returns
  `ongoing_trials[tuner_id]` when there is one, before anything else.
- The chief leaves `search()` only once some worker was told STOPPED (no
  trial left) and then `exit_chief` holds: no ongoing trial and no tuner id
  still registered (an id is registered at its first `create_trial` and
  removed only when that worker is told STOPPED). Until then it checks every
  20 seconds (the tests shorten that interval to 0.2 s in the chief with
  `--fast-poll`; the logic is KerasTuner's own).
- A worker that never comes back: nothing times it out. Its trial stays
  RUNNING in `ongoing_trials` (and in `oracle.json`), it is never handed to
  another worker (`_retry_queue` is only filled by a failed trial's retry or
  by `Oracle.reload()`, i.e. when the chief itself restarts), the other
  workers are told STOPPED once `max_trials` trials exist and exit, and the
  chief waits forever. Only two things end it: a worker started again with
  the same tuner id (it re-runs the trial, then everything exits), or a
  restart of the chief with `overwrite=False` (`reload()` puts the ongoing
  trials in the retry queue for whichever worker asks next). The same hang
  follows a worker that dies between two trials (its id stays registered) or
  one that gets an error back from the chief (e.g. `end_trial` raising
  "Number of consecutive failures exceeded the limit", which also leaves
  that trial in `ongoing_trials`). The workers' gRPC calls themselves wait up
  to an hour for a chief that is not there (`wait_for_ready`, TIMEOUT = 3600).
- The chief saves `oracle.json` in `end_trial` before it drops the ended
  trial from `ongoing_trials`, and not after, so the file lists each worker's
  last trial as ongoing even when it is COMPLETED (also once the search is
  over). A chief restarted on it with `overwrite=False` (after a crash, or
  to extend `max_trials`) puts those completed trials in the retry queue and
  hands them out again.

`test_worker_killed_mid_trial_resumes_it` checks the behaviour that exists:
while the killed worker is away the chief keeps waiting (still running,
trial RUNNING and ongoing for "tuner1") after the other worker finished, and
restarting "tuner1" later completes the search.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

pytest.importorskip("grpc", reason="KerasTuner's distributed mode needs grpcio")

HELPER = Path(__file__).with_name("distributed_worker.py")
#: Upper bound of every single wait, in seconds.
WAIT = 300.0  # an upper bound: a passing run never waits for it


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """The processes of one distributed search, sharing `tmp_path`."""

    def __init__(self, tmp_path: Path):
        self.root = tmp_path
        self.port = _free_port()
        self.search_dir = tmp_path / "search"
        self.log = tmp_path / "trials.log"
        self.markers = tmp_path / "markers"
        self.markers.mkdir()
        self.summary = tmp_path / "chief_summary.json"
        self.processes: list[tuple[str, subprocess.Popen]] = []

    def start(self, tuner_id: str, kind: str, *options: str) -> subprocess.Popen:
        command = [
            sys.executable,
            str(HELPER),
            f"--kind={kind}",
            f"--directory={self.root}",
            f"--log={self.log}",
            f"--markers={self.markers}",
            *options,
        ]
        if tuner_id == "chief":
            command += [f"--summary={self.summary}", "--fast-poll"]
        env = {
            "KERASTUNER_TUNER_ID": tuner_id,
            "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(self.port),
        }
        return self._start(tuner_id, command, env)

    def start_cli(self, name: str, *arguments: str) -> subprocess.Popen:
        """`flatnas-tf` with `arguments` (the roles come from its own options)."""
        code = "from flatnas_tf.cli.main import main; main()"
        return self._start(name, [sys.executable, "-c", code, *arguments], {})

    def _start(self, name: str, command: list[str], extra_env: dict) -> subprocess.Popen:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", str(self.root)),
            "PYTHONUNBUFFERED": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "CUDA_VISIBLE_DEVICES": "",
            "KERAS_BACKEND": "tensorflow",
            "OMP_NUM_THREADS": "1",
            "TF_NUM_INTRAOP_THREADS": "1",
            **extra_env,
        }
        name = f"{len(self.processes)}-{name}"
        with open(self.root / f"{name}.out", "w") as output:
            process = subprocess.Popen(
                command,
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.processes.append((name, process))
        return process

    def wait_for(self, condition, what: str, alive=(), timeout: float = WAIT):
        """Polls `condition` until true; fails on timeout or if one of `alive` exits."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            for process in alive:
                if process.poll() is not None:
                    pytest.fail(
                        f"process {process.pid} exited ({process.returncode}) "
                        f"while waiting for {what}"
                    )
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.05)

    def wait_exit(self, process: subprocess.Popen, what: str, alive=()) -> int:
        self.wait_for(lambda: process.poll() is not None, f"{what} to exit", alive)
        return process.returncode

    def marker(self, process: subprocess.Popen) -> str | None:
        """The trial id the process wrote in its marker file, once it started one."""
        for path in self.markers.glob(f"*-{process.pid}"):
            return path.read_text() or None
        return None

    def runs(self) -> dict[str, list[tuple[str, int, str]]]:
        """Trial id -> [(tuner_id, pid, "start" or "end"), ...] in log order."""
        runs = defaultdict(list)
        if self.log.exists():
            for line in self.log.read_text().splitlines():
                trial_id, tuner_id, pid, event = line.split()
                runs[trial_id].append((tuner_id, int(pid), event))
        return dict(runs)

    def trial_files(self) -> dict[str, dict]:
        """Trial id -> the content of its trial.json in the shared directory."""
        trials = {}
        for path in sorted(self.search_dir.glob("trial_*/trial.json")):
            trial = json.loads(path.read_text())
            trials[trial["trial_id"]] = trial
        return trials

    def close(self) -> None:
        for _, process in self.processes:
            if process.poll() is None:
                process.kill()
        for _, process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass

    def dump(self) -> None:
        """Prints every process's output (pytest shows it when a test fails)."""
        for name, process in self.processes:
            text = (self.root / f"{name}.out").read_text(errors="replace")
            print(f"===== {name} (pid {process.pid}, exit {process.returncode}) =====")
            print(text[-6000:])
        if self.log.exists():
            print("===== trials.log =====")
            print(self.log.read_text())


@pytest.fixture
def cluster(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.close()
        cluster.dump()


def _check_complete_search(cluster: Cluster, max_trials: int) -> dict[str, dict]:
    """Exactly `max_trials` completed trials, distinct configurations, run once each."""
    trials = cluster.trial_files()
    assert len(trials) == max_trials
    assert {t["status"] for t in trials.values()} == {"COMPLETED"}
    configurations = [
        tuple(sorted(t["hyperparameters"]["values"].items())) for t in trials.values()
    ]
    assert len(set(configurations)) == max_trials

    summary = json.loads(cluster.summary.read_text())
    assert sorted(summary["trials"]) == sorted(trials)
    assert {t["status"] for t in summary["trials"].values()} == {"COMPLETED"}
    for trial_id, trial in summary["trials"].items():
        assert trial["values"] == trials[trial_id]["hyperparameters"]["values"]
        assert trial["score"] is not None
    assert sorted(summary["end_order"]) == sorted(trials)
    assert summary["ongoing_trials"] == {}
    assert summary["tuner_ids"] == []
    assert summary["pareto_front"]
    assert set(summary["pareto_front"]) <= set(trials)
    assert summary["generation"] >= 1
    return summary


def test_flatnas_tuner_search_with_two_workers(cluster):
    max_trials = 4
    options = ("--max-trials=4", "--population=2", "--seed=3")
    go = cluster.root / "go"
    chief = cluster.start("chief", "flatnas", *options)
    workers = [
        cluster.start(f"tuner{i}", "flatnas", *options, f"--wait-for={go}") for i in range(2)
    ]
    # Both workers join together (once both have imported TensorFlow), so both run trials.
    cluster.wait_for(
        lambda: all((cluster.markers / f"{w.pid}.ready").exists() for w in workers),
        "the workers to be ready",
        alive=(chief, *workers),
    )
    go.touch()

    assert cluster.wait_exit(chief, "the chief") == 0
    for worker in workers:
        assert cluster.wait_exit(worker, "a worker") == 0

    _check_complete_search(cluster, max_trials)
    runs = cluster.runs()
    assert len(runs) == max_trials
    for events in runs.values():
        # Run once, start to end, by one worker.
        assert [event for _, _, event in events] == ["start", "end"]
        assert len({(tuner_id, pid) for tuner_id, pid, _ in events}) == 1
    assert {events[0][0] for events in runs.values()} == {"tuner0", "tuner1"}
    for trial_id in runs:  # the workers wrote their weights to the shared directory
        assert (cluster.search_dir / f"trial_{trial_id}" / "checkpoint.weights.h5").exists()


def test_chief_killed_and_restarted_while_two_workers_train(cluster):
    # Both workers hold their first trial for a while; the chief is killed with
    # both trials leased and comes back on the same directory and port. The
    # workers train on, report to the new chief, and nothing runs twice.
    max_trials = 4
    options = ("--max-trials=4", "--population=2", "--seed=3", "--lease=120")
    go = cluster.root / "go"
    chief = cluster.start("chief", "flatnas", *options)
    workers = [
        cluster.start(f"tuner{i}", "flatnas", *options, "--hold-first-trial=12", f"--wait-for={go}")
        for i in range(2)
    ]
    cluster.wait_for(
        lambda: all((cluster.markers / f"{w.pid}.ready").exists() for w in workers),
        "the workers to be ready",
        alive=(chief, *workers),
    )
    go.touch()
    held = [
        cluster.wait_for(lambda w=w: cluster.marker(w), "a worker's first trial", alive=(chief, w))
        for w in workers
    ]
    os.kill(chief.pid, signal.SIGKILL)
    assert chief.wait(timeout=30) == -signal.SIGKILL
    restarted = cluster.start("chief", "flatnas", *options)

    # Any may exit first: the chief stops once every worker was told STOPPED.
    assert cluster.wait_exit(restarted, "the restarted chief") == 0
    for worker in workers:
        assert cluster.wait_exit(worker, "a worker") == 0
    _check_complete_search(cluster, max_trials)
    runs = cluster.runs()
    assert len(runs) == max_trials
    for trial_id, events in runs.items():  # run once, start to end, by one worker
        assert [event for _, _, event in events] == ["start", "end"], (trial_id, events)
    for worker, trial_id in zip(workers, held, strict=True):
        assert {pid for _, pid, _ in runs[trial_id]} == {worker.pid}
    output = (cluster.root / f"{len(workers) + 1}-chief.out").read_text()
    assert "queued again" not in output and "Traceback" not in output


def test_worker_killed_mid_trial_resumes_it(cluster):
    max_trials = 8
    options = ("--max-trials=8", "--population=4", "--trial-sleep=0.2")
    go = cluster.root / "go"
    chief = cluster.start("chief", "synthetic", *options)
    # tuner1 blocks in its first trial; tuner0 joins only once it has one.
    first = cluster.start("tuner1", "synthetic", *options, "--hold-first-trial=600")
    other = cluster.start("tuner0", "synthetic", *options, f"--wait-for={go}")

    interrupted = cluster.wait_for(
        lambda: cluster.marker(first), "tuner1 to start a trial", alive=(chief, first, other)
    )
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL
    go.touch()

    # The other worker runs every other trial, is told STOPPED and leaves...
    assert cluster.wait_exit(other, "tuner0", alive=(chief,)) == 0
    # ...while the chief keeps waiting for the trial of the worker that is gone.
    time.sleep(2.0)  # ten of the chief's (shortened) polls
    assert chief.poll() is None
    oracle_state = json.loads((cluster.search_dir / "oracle.json").read_text())
    trials = cluster.trial_files()
    assert oracle_state["ongoing_trials"]["tuner1"] == interrupted
    assert oracle_state["retry_queue"] == []
    # The chief saves oracle.json in `end_trial` before it drops the ended trial
    # from `ongoing_trials`, so the file may still list tuner0's last, completed one.
    for tuner_id, trial_id in oracle_state["ongoing_trials"].items():
        assert tuner_id == "tuner1" or trials[trial_id]["status"] == "COMPLETED"
    assert len(trials) == max_trials
    assert trials[interrupted]["status"] == "RUNNING"
    assert sum(t["status"] == "COMPLETED" for t in trials.values()) == max_trials - 1
    values = trials[interrupted]["hyperparameters"]["values"]
    assert cluster.runs()[interrupted] == [("tuner1", first.pid, "start")]

    # The same tuner id comes back: it is given its interrupted trial and finishes it.
    second = cluster.start("tuner1", "synthetic", *options)
    # (Either may exit first: the chief leaves once tuner1 was told STOPPED.)
    assert cluster.wait_exit(chief, "the chief") == 0
    assert cluster.wait_exit(second, "the restarted tuner1") == 0

    summary = _check_complete_search(cluster, max_trials)
    assert summary["trials"][interrupted]["values"] == values
    runs = cluster.runs()
    assert sorted(runs) == sorted(summary["trials"])
    assert runs[interrupted] == [
        ("tuner1", first.pid, "start"),
        ("tuner1", second.pid, "start"),
        ("tuner1", second.pid, "end"),
    ]
    for trial_id, events in runs.items():
        if trial_id != interrupted:
            assert events == [("tuner0", other.pid, "start"), ("tuner0", other.pid, "end")]


def test_cli_search_finishes_when_a_worker_dies_for_good(cluster):
    out = cluster.root / "run"
    common = ["search", "--out", str(out), "--oracle-port", str(cluster.port)]
    tiny = ["--max-trials", "3", "--population", "2", "--epochs", "1", "--samples", "2"]
    tiny += ["--depths", "1"]  # small candidates: the workers' story is the point
    chief = cluster.start_cli(
        "chief", *common, *tiny, "--role", "chief", "--worker-timeout", "25", "--no-export"
    )
    cluster.wait_for(lambda: (out / "run.json").exists(), "the chief's run.json", alive=(chief,))
    doomed = cluster.start_cli("tuner1", *common, *tiny, "--role", "worker", "--worker-id", "1")
    oracle = out / "search" / "oracle.json"

    def doomed_holds_a_trial():
        if not oracle.exists():
            return None
        return json.loads(oracle.read_text())["ongoing_trials"].get("tuner1")

    lost = cluster.wait_for(doomed_holds_a_trial, "tuner1's trial", alive=(chief, doomed))
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=30)
    # A process without the search's token (the chief wrote it into the shared
    # directory) is refused in one line, and takes no trial.
    assert (out / "search" / "token").stat().st_mode & 0o077 == 0
    wrong = cluster.root / "wrong-token"
    wrong.write_text("not-the-token\n")
    wrong.chmod(0o600)
    intruder = cluster.start_cli(
        "intruder", *common, *tiny, "--role", "worker", "--worker-id", "7", "--token-file", wrong
    )
    # The survivor starts beside it (each start-up takes seconds).
    survivor = cluster.start_cli("tuner0", *common, *tiny, "--role", "worker", "--worker-id", "0")
    assert cluster.wait_exit(intruder, "the intruder", alive=(chief,)) == 2
    intruder_output = (cluster.root / "2-intruder.out").read_text()
    assert "refused a call without its token" in intruder_output
    assert "Traceback" not in intruder_output

    # Either may exit first: the chief stops once the survivor was told STOPPED.
    assert cluster.wait_exit(survivor, "the surviving worker") == 0
    assert cluster.wait_exit(chief, "the chief") == 0
    trials = {t: s for t, s in cluster_trials(out).items()}
    assert len(trials) == 3 and {s["status"] for s in trials.values()} == {"COMPLETED"}
    chief_output = (cluster.root / "0-chief.out").read_text()
    assert f"trial {lost}: worker tuner1 silent" in chief_output
    assert "Pareto front" in chief_output
    assert (out / "report" / "report.md").exists()
    survivor_output = (cluster.root / "3-tuner0.out").read_text()
    assert f"trial {lost}" in survivor_output  # the survivor ran the lost trial
    assert "Traceback" not in survivor_output + chief_output
    # A worker started after the end hears so from the chief's mark, not after its timeout.
    started = time.monotonic()
    late = cluster.start_cli(
        "late", *common, *tiny, "--role", "worker", "--worker-id", "2", "--chief-timeout", "600"
    )
    assert cluster.wait_exit(late, "the late worker") == 0
    assert time.monotonic() - started < 120
    late_output = (cluster.root / "4-late.out").read_text()
    assert "has ended (its chief finished at" in late_output
    assert "Traceback" not in late_output
    assert cluster_trials(out) == trials  # it changed nothing


def cluster_trials(out: Path) -> dict[str, dict]:
    return {
        json.loads(p.read_text())["trial_id"]: json.loads(p.read_text())
        for p in (out / "search").glob("trial_*/trial.json")
    }
