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
             HEARTBEAT_S seconds of training; told IDLE, it waits a second
             and asks again

The server is KerasTuner's servicer behind a token check
(`flatnas_tf.tuners.access`): only callers presenting the search's token reach
the oracle. The connection itself is not encrypted: on an untrusted network,
keep the port on a loopback or private address (or tunnel it).
"""

from __future__ import annotations

import os
import time
from concurrent import futures

import keras

from flatnas_tf import compat
from flatnas_tf.tuners import access

__all__ = ["HEARTBEAT_S", "Heartbeat", "serve"]

#: Seconds between a worker's heartbeats while it trains.
HEARTBEAT_S = 5.0
#: Seconds between the chief's checks for expired leases and for the end.
POLL_S = 0.5


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


class Heartbeat(keras.callbacks.Callback):
    """Renews a worker's lease on its trial while the trial trains.

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

    def _beat(self) -> None:
        self._last = time.monotonic()
        self.oracle.get_trial(self.trial_id)

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self._last >= self.interval_s:
            self._beat()

    def on_epoch_end(self, epoch, logs=None):
        self._beat()
