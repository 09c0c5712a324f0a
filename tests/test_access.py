"""A distributed search's token: where it comes from; the chief refusing calls without it."""

from __future__ import annotations

import socket
import stat
import threading
import time

import keras_tuner as kt
import pytest

from flatnas_tf import compat
from flatnas_tf.persistence import storage
from flatnas_tf.tuners import access, distributed
from flatnas_tf.tuners.nsga2 import NSGA2Oracle


@pytest.fixture(autouse=True)
def no_token_in_the_environment(monkeypatch):
    monkeypatch.delenv(access.TOKEN_ENV, raising=False)


def test_the_chief_writes_a_private_token_that_workers_read(tmp_path):
    token = access.search_token(tmp_path / "search", create=True)
    path = tmp_path / "search" / access.TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) == 64 and int(token, 16) >= 0
    assert access.search_token(tmp_path / "search") == token  # a worker on the same directory
    assert access.search_token(tmp_path / "search", create=True) == token  # a restarted chief


def test_a_given_token_wins_over_the_environment_and_the_directory(tmp_path, monkeypatch):
    access.search_token(tmp_path, create=True)
    monkeypatch.setenv(access.TOKEN_ENV, "from-the-environment")
    assert access.search_token(tmp_path) == "from-the-environment"
    given = tmp_path / "given"
    given.write_text("from-a-file\n")
    given.chmod(0o600)
    assert access.search_token(tmp_path, given) == "from-a-file"


def test_a_missing_or_empty_token_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(access.TokenError, match="Start the chief first"):
        access.search_token(tmp_path)
    with pytest.raises(access.TokenError, match="does not exist; check --token-file"):
        access.search_token(tmp_path, tmp_path / "nowhere")
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "empty").chmod(0o600)
    with pytest.raises(access.TokenError, match="is empty"):
        access.search_token(tmp_path, tmp_path / "empty")
    assert not (tmp_path / access.TOKEN_FILE).exists()  # a worker writes none


def test_a_token_readable_by_others_is_used_with_a_warning(tmp_path):
    shared = tmp_path / "shared"
    shared.write_text("secret\n")
    shared.chmod(0o644)
    with pytest.warns(UserWarning, match="can be read by other users.*chmod 600"):
        assert access.search_token(tmp_path, shared) == "secret"


def test_a_worker_waits_for_the_chief_to_write_the_token(tmp_path):
    writer = threading.Timer(0.3, access.search_token, (tmp_path,), {"create": True})
    writer.start()
    try:
        token = access.search_token(tmp_path, wait_s=30)
    finally:
        writer.join()
    assert token == (tmp_path / access.TOKEN_FILE).read_text().strip()


# -- the chief's server, in process -------------------------------------------------


class Chief:
    """A chief's server in this process, on a fixed port, that can be stopped and started."""

    def __init__(self, tmp_path, monkeypatch):
        hp = kt.HyperParameters()
        hp.Int("a", 0, 99)
        self.oracle = NSGA2Oracle(objective=[kt.Objective("f", "min")], max_trials=4, seed=0,
                                  hyperparameters=hp)  # fmt: skip
        self.oracle.lease_s = 30.0
        self.oracle._set_project_dir(str(tmp_path), "chief")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = None
        monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
        monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(self.port))
        monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")

    def start(self):
        self.server, _ = distributed.chief_server(self.oracle, "right", f"127.0.0.1:{self.port}")

    def stop(self):
        self.server.stop(None).wait()


@pytest.fixture
def chief(tmp_path, monkeypatch):
    pytest.importorskip("grpc")
    served = Chief(tmp_path, monkeypatch)
    served.start()
    yield served
    served.stop()


def _client(tmp_path, token, chief_timeout_s=60.0):
    from keras_tuner.src.distribute import oracle_client

    local = NSGA2Oracle(objective=[kt.Objective("f", "min")], max_trials=4, seed=0)
    local._set_project_dir(str(tmp_path), "worker")
    client = oracle_client.OracleClient(local)
    if token is not None:
        distributed.connect(client, token, chief_timeout_s)
    return client


def test_a_worker_with_the_token_is_served(chief, tmp_path):
    client = _client(tmp_path, "right")
    assert client.get_space().space
    trial = client.create_trial("tuner0")
    assert trial.status == "RUNNING" and list(chief.oracle.trials) == [trial.trial_id]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_caller_without_the_token_is_refused_and_changes_nothing(chief, tmp_path, token):
    import grpc

    client = _client(tmp_path, token)
    started = time.monotonic()
    for call in (lambda: client.create_trial("tuner0"), client.get_space):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "refused a call without its token" in refused.value.details()
    assert time.monotonic() - started < 30  # refused at once, not waited on
    assert chief.oracle.trials == {} and chief.oracle.tuner_ids == set()


def test_a_worker_waits_for_a_restarted_chief_and_gives_up_after_its_timeout(chief, tmp_path):
    import grpc

    client = _client(tmp_path, "right", chief_timeout_s=60.0)
    trial = client.create_trial("tuner0")
    chief.stop()  # the chief is preempted while the worker trains
    answer = {}
    heartbeat = threading.Thread(target=lambda: answer.update(t=client.get_trial(trial.trial_id)))
    heartbeat.start()
    time.sleep(1.0)
    assert heartbeat.is_alive()  # waiting for the chief, not failed
    chief.start()  # back on the same address
    heartbeat.join(timeout=30)
    assert answer["t"].trial_id == trial.trial_id
    chief.stop()
    impatient = _client(tmp_path, "right", chief_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as lost:
        impatient.get_space()
    assert lost.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 10  # its own timeout, not KerasTuner's hour
    chief.start()  # for the fixture's stop


def test_a_worker_with_no_chief_hears_at_once_that_the_search_has_ended(chief, tmp_path):
    import grpc

    chief.stop()
    client = _client(tmp_path, None)
    distributed.connect(client, "right", 60.0, project_dir=tmp_path)
    storage.write_json(tmp_path / distributed.ENDED_FILE, {"ended": "2026-12-06T21:00:00+00:00"})
    started = time.monotonic()
    with pytest.raises(distributed.SearchEndedError, match="has ended .*21:00:00.* more trials"):
        client.create_trial("tuner0")
    assert time.monotonic() - started < 10  # not its 60 s
    (tmp_path / distributed.ENDED_FILE).unlink()  # no mark: it waits out its time
    impatient = _client(tmp_path, None)
    distributed.connect(impatient, "right", 1.5, project_dir=tmp_path)
    with pytest.raises(grpc.RpcError) as lost:
        impatient.get_space()
    assert lost.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    (tmp_path / distributed.ENDED_FILE).write_text("{not json")  # still the chief's mark
    with pytest.raises(distributed.SearchEndedError, match="at an unknown time"):
        client.create_trial("tuner0")
    (tmp_path / distributed.ENDED_FILE).unlink()  # as a chief does before it serves
    chief.start()
    assert client.get_space().space  # connected again
    storage.write_json(tmp_path / distributed.ENDED_FILE, {"ended": "earlier"})
    assert client.create_trial("tuner0").status == "RUNNING"  # a chief that answers is asked


def test_heartbeats_do_not_hold_up_training_while_the_chief_is_away():
    calls = threading.Event()
    release = threading.Event()

    class AwayChief:
        def get_trial(self, trial_id):
            calls.set()
            release.wait(30)  # the chief answers only when it is back

    heartbeat = distributed.Heartbeat(AwayChief(), "003", interval_s=0.0)
    started = time.monotonic()
    for batch in range(50):
        heartbeat.on_train_batch_end(batch)
    heartbeat.on_epoch_end(0)
    assert time.monotonic() - started < 5 and calls.is_set()
    assert heartbeat._pending.is_alive()  # one heartbeat waits; none piled up behind it
    release.set()
    heartbeat._pending.join(timeout=10)
    assert not heartbeat._pending.is_alive()


def test_a_superseded_attempt_is_refused_and_its_weights_never_replace_the_current_ones(
    chief, tmp_path, monkeypatch
):
    import grpc

    from flatnas_tf.tuners import durable

    clock = [1000.0]
    monkeypatch.setattr(durable.time, "monotonic", lambda: clock[0])
    late = _client(tmp_path, "right")
    first = late.create_trial("tuner1")
    assert late.attempts == {first.trial_id: 1}
    clock[0] += 31  # tuner1 is silent past its lease
    assert chief.oracle.expire_leases() == [first.trial_id]
    current = _client(tmp_path, "right")
    second = current.create_trial("tuner0")
    assert second.trial_id == first.trial_id and current.attempts == {first.trial_id: 2}
    trial_dir = tmp_path / "chief" / f"trial_{first.trial_id}"
    durable.attempt_checkpoint(trial_dir, 2).write_bytes(b"current weights")
    durable.attempt_checkpoint(trial_dir, 1).write_bytes(b"stale weights")

    with pytest.raises(grpc.RpcError) as refused:
        late.update_trial(first.trial_id, {"f": 9.0})
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "attempt 1 was superseded by attempt 2" in refused.value.details()
    current.update_trial(second.trial_id, {"f": 1.0})
    second.status = "COMPLETED"
    current.end_trial(second)
    checkpoint = trial_dir / compat.CHECKPOINT_FILE
    assert checkpoint.read_bytes() == b"current weights"
    assert not durable.attempt_checkpoint(trial_dir, 2).exists()
    first.status = "COMPLETED"
    with pytest.raises(grpc.RpcError, match="superseded"):
        late.end_trial(first)  # the late worker comes back: nothing of it is taken
    assert checkpoint.read_bytes() == b"current weights"
    ended = chief.oracle.trials[first.trial_id]
    assert ended.status == "COMPLETED" and ended.metrics.get_last_value("f") == 1.0


def test_a_heartbeat_refused_as_superseded_stops_training(capsys):
    import types

    import grpc

    class Superseded(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.FAILED_PRECONDITION

        def details(self):
            return "trial 003: attempt 1 was superseded by attempt 2"

    class Chief:
        def get_trial(self, trial_id):
            raise Superseded()

    heartbeat = distributed.Heartbeat(Chief(), "003")
    model = types.SimpleNamespace(stop_training=False)
    heartbeat.set_model(model)
    heartbeat.on_epoch_end(0)
    heartbeat._pending.join(timeout=10)
    assert model.stop_training
    assert "attempt 1 was superseded" in capsys.readouterr().out


def _self_signed(directory):
    """A self-signed certificate for 127.0.0.1 and its key (openssl's command line)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = directory / "chief.pem", directory / "chief.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_over_tls_only_workers_trusting_the_chief_are_served(chief, tmp_path):
    import grpc

    cert, key = _self_signed(tmp_path)
    chief.stop()
    chief.server, _ = distributed.chief_server(
        chief.oracle, "right", f"127.0.0.1:{chief.port}", tls=access.TLS(cert, key)
    )
    trusting = _client(tmp_path, None)
    distributed.connect(trusting, "right", 10.0, tls=access.TLS(trusted=cert))
    assert trusting.get_space().space
    plain = _client(tmp_path, "right", chief_timeout_s=2.0)  # no TLS: no connection at all
    with pytest.raises(grpc.RpcError) as failed:
        plain.create_trial("tuner0")
    assert failed.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    (tmp_path / "other").mkdir()
    other, _ = _self_signed(tmp_path / "other")  # a certificate the chief does not have
    doubting = _client(tmp_path, None)
    distributed.connect(doubting, "right", 2.0, tls=access.TLS(trusted=other))
    with pytest.raises(grpc.RpcError):
        doubting.create_trial("tuner0")
    assert chief.oracle.trials == {}


def test_tls_files_are_checked_when_given(tmp_path):
    cert, key = _self_signed(tmp_path)
    with pytest.raises(access.TokenError, match="certificate and its key together"):
        access.TLS(certificate=cert)
    with pytest.raises(access.TokenError, match="does not exist"):
        access.TLS(trusted=tmp_path / "missing.pem")
    with pytest.raises(access.TokenError, match="needs the trusted certificate"):
        access.TLS(cert, key).channel_credentials()
