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
             KerasTuner waits an hour), then fails with DEADLINE_EXCEEDED; a
             call the chief took but died before answering (UNAVAILABLE) is
             sent again within that time: every oracle call is safe to repeat
             (a repeated create_trial is given the worker's ongoing trial on a
             new attempt, a repeated end_trial of an ended trial is ignored)

A chief that served its search to the end writes `ENDED_FILE` in the search
directory (and removes it when it starts serving): a worker that finds no
chief checks for it once a second, and a worker started after the search
ended hears so at once (`SearchEndedError`) instead of waiting out
`chief_timeout_s`. Only workers that share the directory see the mark.

A chief killed and restarted on the same directory and address keeps the
leases its workers hold (`durable.DurableOracle.reload`): a worker that
trained on while it was away reports its trial when it is back.

Attempts (`durable`, "Attempts"): the chief's CreateTrial answer carries the
attempt number in its trailing metadata (`ATTEMPT_HEADER`); the worker's
client keeps it (`client.attempts`) and presents it on every call naming
the trial; the chief's server sets `durable.presented_attempt` for the call
and answers a superseded attempt FAILED_PRECONDITION. The worker says so in
one line and goes on with its next trial; it stops training a trial whose
heartbeat is refused so.

The server is KerasTuner's servicer behind a token check
(`flatnas_tf.tuners.access`): only callers presenting the search's token reach
the oracle. The connection is encrypted only with `tls` (`access.TLS`): without
it, keep the port on a loopback or private address.
"""

from __future__ import annotations

import collections
import datetime
import json
import os
import threading
import time
from concurrent import futures
from pathlib import Path

import keras

from flatnas_tf import compat
from flatnas_tf.defaults import CHIEF_TIMEOUT_S
from flatnas_tf.persistence import storage
from flatnas_tf.tuners import access, durable

__all__ = [
    "ATTEMPT_HEADER",
    "CHIEF_TIMEOUT_S",
    "ENDED_FILE",
    "HEARTBEAT_S",
    "Heartbeat",
    "SearchEndedError",
    "chief_server",
    "connect",
    "serve",
    "superseded",
]

#: Seconds between a worker's heartbeats while it trains.
HEARTBEAT_S = 5.0
#: Seconds between the chief's checks for expired leases and for the end.
POLL_S = 0.5
#: Seconds a worker's call waits for a chief that is not there (restarting, say).
#: The gRPC metadata key of an attempt number.
ATTEMPT_HEADER = "flatnas-attempt"
#: The chief's mark, in the search directory, that it served the search to its end.
ENDED_FILE = "search_ended.json"
#: The calls that name a trial, and where their request holds its id.
_TRIAL_CALLS = {"GetTrial": "trial_id", "UpdateTrial": "trial_id", "EndTrial": "trial"}


class SearchEndedError(Exception):
    """A worker's call found no chief, and the chief's mark that the search has ended."""


def superseded(error: BaseException) -> bool:
    """Whether `error` is the chief's refusal of a superseded attempt's call."""
    import grpc

    return isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.FAILED_PRECONDITION


def _trial_id(method: str, request) -> str | None:
    """The trial a call names (None for calls naming none)."""
    field = _TRIAL_CALLS.get(method.rsplit("/", 1)[-1])
    if field is None:
        return None
    return request.trial.trial_id if field == "trial" else request.trial_id


def _attempt_scope(oracle):
    """The chief's server interceptor for attempts (module docstring)."""
    import grpc

    class AttemptScope(grpc.ServerInterceptor):
        def intercept_service(self, continuation, details):
            handler = continuation(details)
            if handler is None or handler.unary_unary is None:
                return handler
            presented = dict(details.invocation_metadata or ()).get(ATTEMPT_HEADER)
            creates = details.method.endswith("/CreateTrial")

            def behaviour(request, context):
                scope = durable.presented_attempt.set(int(presented) if presented else None)
                try:
                    response = handler.unary_unary(request, context)
                except durable.SupersededAttemptError as error:
                    context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
                finally:
                    durable.presented_attempt.reset(scope)
                if creates and response.trial.trial_id in oracle.attempts:
                    attempt = str(oracle.attempts[response.trial.trial_id])
                    context.set_trailing_metadata(((ATTEMPT_HEADER, attempt),))
                return response

            return grpc.unary_unary_rpc_method_handler(
                behaviour,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

    return AttemptScope()


def serve(oracle, token: str, poll_s: float = POLL_S, tls: access.TLS | None = None) -> None:
    """Serves `oracle` to the workers until the search is over (see the module docstring).

    Args:
        oracle: The chief's oracle (a `DurableOracle`).
        token: The search's token, which every call must present
            (`access.search_token`).
        poll_s: Seconds between checks.
        tls: Serve over TLS with these files (None: unencrypted).

    Example:
    ```python
    serve(tuner.oracle, token)  # on the chief, with KERASTUNER_ORACLE_IP/PORT set
    ```
    """
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    ended = Path(compat.project_dir(oracle)) / ENDED_FILE
    ended.unlink(missing_ok=True)  # a search extended past its old end serves again
    server, servicer = chief_server(oracle, token, address, tls)
    try:
        while not oracle.search_over(servicer.stop_triggered):
            time.sleep(poll_s)
            oracle.expire_leases()
    finally:
        server.stop(grace=1.0)
    when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    storage.write_json(ended, {"ended": when, "trials": len(oracle.end_order)})


def chief_server(oracle, token: str, address: str, tls: access.TLS | None = None):
    """The chief's gRPC server, started: KerasTuner's servicer behind the token and attempt checks.

    Args:
        oracle: The chief's oracle (a `DurableOracle`).
        token: The search's token.
        address: "host:port" to listen on.
        tls: Serve over TLS with these files (None: unencrypted).

    Returns:
        (the started `grpc.Server`, KerasTuner's `OracleServicer` it serves).

    Raises:
        OSError: The address cannot be listened on.
    """
    import grpc

    protos, OracleServicer = compat.chief_service()  # noqa: N806 (a class)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=1),
        interceptors=[access.token_check(token), _attempt_scope(oracle)],
    )
    servicer = OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if tls is not None:
        bound = server.add_secure_port(address, tls.server_credentials())
    else:
        bound = server.add_insecure_port(address)
    if not bound:
        raise OSError(f"cannot serve the oracle on {address} (address in use or not local?).")
    server.start()
    return server, servicer


def connect(
    client,
    token: str,
    chief_timeout_s: float = CHIEF_TIMEOUT_S,
    tls: access.TLS | None = None,
    project_dir: str | os.PathLike | None = None,
) -> None:
    """Sends a worker's oracle calls to the chief with the token, waiting at most `chief_timeout_s`.

    The client keeps the attempt of each trial it was given in `client.attempts`
    (trial id -> number) and presents it on every call naming the trial.

    Args:
        client: The worker's KerasTuner `OracleClient` (its `stub` is replaced).
        token: The search's token (`access.search_token`).
        chief_timeout_s: Seconds a call waits for a chief that is not there.
        tls: Connect over TLS, trusting `tls.trusted` (None: unencrypted).
        project_dir: The search directory, shared with the chief: while no
            chief answers, a call ends with `SearchEndedError` once the
            chief's `ENDED_FILE` is there (None: calls wait out their time).

    Raises:
        SearchEndedError: (from a call) see `project_dir`.

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

    attempts: dict[str, int] = {}

    class ChiefCalls(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation, call, request):
            headers = [*(call.metadata or ()), metadata]
            trial_id = _trial_id(call.method, request)
            if trial_id in attempts:
                headers.append((ATTEMPT_HEADER, str(attempts[trial_id])))
            deadline = time.monotonic() + min(call.timeout or chief_timeout_s, chief_timeout_s)
            pause = 0.5
            while True:
                _await_chief(plain, deadline, ended)
                details = Details(
                    call.method, max(deadline - time.monotonic(), 0.01), headers,
                    call.credentials, call.wait_for_ready, call.compression,
                )  # fmt: skip
                outcome = continuation(details, request)
                # A call the chief took but died before answering fails UNAVAILABLE
                # (gRPC waits only to connect): sent again, as every call is safe to.
                lost = outcome.exception() is not None and (
                    outcome.code() == grpc.StatusCode.UNAVAILABLE
                )
                if not lost or time.monotonic() + pause > deadline:
                    break
                time.sleep(pause)
                pause = min(2 * pause, 5.0)
            if call.method.endswith("/CreateTrial") and outcome.exception() is None:
                for key, value in outcome.trailing_metadata() or ():
                    if key == ATTEMPT_HEADER:
                        attempts[outcome.result().trial.trial_id] = int(value)
            return outcome

    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    if tls is not None:
        plain = grpc.secure_channel(address, tls.channel_credentials())
    else:
        plain = grpc.insecure_channel(address)
    ended = None if project_dir is None else Path(project_dir) / ENDED_FILE
    channel = grpc.intercept_channel(plain, ChiefCalls())
    client.stub = protos.get_service_grpc().OracleStub(channel)
    client.attempts = attempts


def _await_chief(channel, deadline: float, ended: Path | None) -> None:
    """Returns once `channel` reaches a chief or at `deadline`, checking `ended` every second.

    Raises:
        SearchEndedError: No chief answers and its mark `ended` is there.
    """
    import grpc

    while True:
        ready = grpc.channel_ready_future(channel)
        try:
            ready.result(timeout=min(1.0, max(deadline - time.monotonic(), 0.0)))
            return
        except grpc.FutureTimeoutError:
            ready.cancel()
        when = _ended_at(ended)
        if when is not None:
            raise SearchEndedError(
                f"the search in {ended.parent} has ended (its chief finished at {when}): this "
                "worker has nothing left to do. To search on, start the chief again with more "
                "trials, then the workers."
            )
        if time.monotonic() >= deadline:
            return  # the call fails DEADLINE_EXCEEDED


def _ended_at(ended: Path | None) -> str | None:
    """When the chief's mark `ended` says the search ended (None: no mark).

    A mark that cannot be read as the chief writes it still marks the end
    (only the chief writes it, atomically): its time is then unknown.
    """
    if ended is None:
        return None
    try:
        return str(json.loads(ended.read_text())["ended"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return "an unknown time"


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
            if superseded(error):  # another worker has the trial: stop training it
                print(f"trial {self.trial_id}: {error.details()}", flush=True)
                self.model.stop_training = True
            elif isinstance(error, SearchEndedError):  # and went on without this trial
                print(error, flush=True)
                self.model.stop_training = True
            else:
                print(f"heartbeat of trial {self.trial_id} not delivered ({type(error).__name__})")

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self._last >= self.interval_s:
            self._beat()

    def on_epoch_end(self, epoch, logs=None):
        self._beat()
