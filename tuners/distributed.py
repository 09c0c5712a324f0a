"""Distributed search that ends even when workers die: the chief's server and heartbeats.

KerasTuner's distributed mode (a chief serving the oracle over gRPC, workers
running trials; roles from KERASTUNER_TUNER_ID / _ORACLE_IP / _ORACLE_PORT)
waits forever for a worker that never comes back. Here, with the oracle's
leases (`durable.DurableOracle.lease_s`):

    chief:   serve KerasTuner's own OracleServicer on ORACLE_IP:ORACLE_PORT
             every 0.5 s: oracle.expire_leases()       (silent workers' trials
                                                        go back to the queue)
             stop once oracle.search_over(...)         (no trial left or leased,
                                                        no live worker to tell)
    worker:  a heartbeat (oracle.get_trial) at every epoch end and every
             HEARTBEAT_S seconds of training, sent from a thread so that
             training goes on while the chief is away; told IDLE, it waits
             a second and asks again. Every call (`connect`) presents the
             search's token and waits at most `chief_timeout_s` for a chief
             that is not there (gRPC reconnects with backoff meanwhile;
             KerasTuner waits an hour), then fails with DEADLINE_EXCEEDED

A chief killed and restarted on the same directory and address keeps the
leases its workers hold (`durable.DurableOracle.reload`): a worker that
trained on while it was away reports its trial when it is back.

The server is KerasTuner's servicer behind a token check
(`flatnas_tf.tuners.access`): only callers presenting the search's token reach
the oracle. The connection itself is not encrypted: on an untrusted network,
keep the port on a loopback or private address (or tunnel it).
"""

from __future__ import annotations

import collections
import os
import threading
import time
from concurrent import futures

import keras

from flatnas_tf import compat
from flatnas_tf.tuners import access

__all__ = ["CHIEF_TIMEOUT_S", "HEARTBEAT_S", "Heartbeat", "connect", "serve"]

#: Seconds between a worker's heartbeats while it trains.
HEARTBEAT_S = 5.0
#: Seconds between the chief's checks for expired leases and for the end.
POLL_S = 0.5
#: Seconds a worker's call waits for a chief that is not there (restarting, say).
CHIEF_TIMEOUT_S = 600.0


def serve(oracle, token: str, poll_s: float = POLL_S) -> None:
    """Serves `oracle` to the workers until the search is over (see the module docstring).

    Args:
        oracle: The chief's oracle (a `DurableOracle`).
        token: The search's token, which every call must present
            (`access.search_token`).
        poll_s: Seconds between checks.

    Example:
    ```python
    serve(tuner.oracle, token)  # on the chief, with KERASTUNER_ORACLE_IP/PORT set
    ```
    """
    import grpc

    protos, OracleServicer = compat.chief_service()  # noqa: N806 (a class)

    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=1), interceptors=[access.token_check(token)]
    )
    servicer = OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if not server.add_insecure_port(address):
        raise OSError(f"cannot serve the oracle on {address} (address in use or not local?).")
    server.start()
    try:
        while not oracle.search_over(servicer.stop_triggered):
            time.sleep(poll_s)
            oracle.expire_leases()
    finally:
        server.stop(grace=1.0)


def connect(client, token: str, chief_timeout_s: float = CHIEF_TIMEOUT_S) -> None:
    """Sends a worker's oracle calls to the chief with the token, waiting at most `chief_timeout_s`.

    Args:
        client: The worker's KerasTuner `OracleClient` (its `stub` is replaced).
        token: The search's token (`access.search_token`).
        chief_timeout_s: Seconds a call waits for a chief that is not there.

    Example:
    ```python
    connect(tuner.oracle, access.search_token(tuner.project_dir, wait_s=300))
    ```
    """
    import grpc

    protos, _ = compat.chief_service()
    metadata = access.authorization(token)
    fields = ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")

    class Details(collections.namedtuple("Details", fields), grpc.ClientCallDetails):
        pass

    class ChiefCalls(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation, call, request):
            timeout = min(call.timeout or chief_timeout_s, chief_timeout_s)
            details = Details(
                call.method,
                timeout,
                [*(call.metadata or ()), metadata],
                call.credentials,
                call.wait_for_ready,
                call.compression,
            )
            return continuation(details, request)

    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    channel = grpc.intercept_channel(grpc.insecure_channel(address), ChiefCalls())
    client.stub = protos.get_service_grpc().OracleStub(channel)


class Heartbeat(keras.callbacks.Callback):
    """Renews a worker's lease on its trial while the trial trains.

    Each heartbeat is sent from a thread (one at a time): while the chief is
    away, training goes on and the pending heartbeat reaches the chief when
    it is back.

    Args:
        oracle: The worker's oracle proxy (`OracleClient`).
        trial_id: The trial being trained.
        interval_s: Seconds between heartbeats within an epoch.
    """

    def __init__(self, oracle, trial_id: str, interval_s: float = HEARTBEAT_S):
        super().__init__()
        self.oracle = oracle
        self.trial_id = trial_id
        self.interval_s = interval_s
        self._last = time.monotonic()
        self._pending: threading.Thread | None = None

    def _beat(self) -> None:
        self._last = time.monotonic()
        if self._pending is not None and self._pending.is_alive():
            return  # the chief has not answered the last one yet
        self._pending = threading.Thread(target=self._send, daemon=True)
        self._pending.start()

    def _send(self) -> None:
        try:
            self.oracle.get_trial(self.trial_id)
        except Exception as error:  # noqa: BLE001 (the trial's own report says what is wrong)
            print(f"heartbeat of trial {self.trial_id} not delivered ({error.__class__.__name__})")

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self._last >= self.interval_s:
            self._beat()

    def on_epoch_end(self, epoch, logs=None):
        self._beat()
