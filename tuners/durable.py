"""A KerasTuner oracle that survives kill -9, a full disk, damage and lost workers.

KerasTuner keeps a search in its project directory: `oracle.json` (the
oracle's bookkeeping: trial order, retries, hashes of tried configurations),
`trial_<id>/trial.json` per trial (values, metrics, status), the tuner's
`<tuner_id>.json` and each trial's checkpoint. It writes them in place, in
several uncoordinated steps, and its reload trusts all of them, so a kill or
a full disk can leave a file empty or half written and the search unreadable,
or re-run a finished trial and keep figures that no longer match its weights.

Writing. Every state file is replaced atomically (`flatnas_tf.persistence.storage`:
temporary file, fsync, `os.replace`), and the steps of a trial are ordered so
that one write commits each:

    create:  trial.json (RUNNING, no metrics)  ->  oracle.json lists it  (commit)
    finish:  checkpoint  ->  trial.json + metrics  ->  trial.json COMPLETED  (commit)
             ->  oracle.json

Reloading. The trial files decide how each trial ended:

    trial.json unreadable, of the wrong form, or naming another trial
        -> set aside (renamed trial.json.damaged) and the trial kept as FAILED
           with a message saying so: its id is never handed out again
    an id that oracle.json names, or a trial_<id>/ directory, without a
    readable trial.json                      -> a FAILED placeholder, likewise
    COMPLETED or FAILED                      -> ended, whatever oracle.json says
    anything else (RUNNING, INVALID, ...)    -> metrics cleared, queued to run again;
        with leases, one oracle.json lists as a worker's ongoing trial stays that
        worker's on a fresh lease (a restarted chief: the worker may still be
        training it, and reports it when the chief is back)
    created but never committed (the next trial number, not in oracle.json,
    its trial.json RUNNING without metrics or not written yet)
                                             -> forgotten: the oracle, whose state
        is the one from before its creation, creates it again (same values)
    oracle.json missing or unreadable        -> rebuilt from the trial files; the
        oracle's own fields start from the constructor's values

The files are read and checked by `records.read_project`, which `SearchResult`
uses too, so a reader sees a search as this oracle would reload it.

Leases (distributed searches, `lease_s` set). A trial handed to a worker is
leased to it: every call that names the trial (the worker's heartbeats are
`get_trial` calls, one per epoch and every few seconds of training) renews
the lease. `expire_leases`, which the chief's server runs every half second,
queues a trial whose worker has been silent for `lease_s` again, for the
next worker that asks, and forgets workers silent that long, so that a dead
worker never holds up the end of the search. Once every trial is created,
a worker that asks while others still hold leases is told IDLE (ask again)
instead of STOPPED, so someone is left to run a trial that comes back. A
report that arrives for a trial no longer leased (the late report of a
worker presumed dead) is ignored.

Attempts. Each hand-out of a trial is an attempt, numbered per trial
(`attempts`, saved with the state). The chief's server tells a worker the
attempt it was given and sets `presented_attempt` to the one a call
presents, for the length of the call; a heartbeat or report presenting an
attempt that is no longer the trial's latest (its lease expired and the
trial went to another worker, or to the same worker id restarted) is refused
with `SupersededAttemptError`. A worker writes its checkpoint as
`attempt_checkpoint(trial_dir, n)`; accepting the report of attempt n, the
oracle moves that file into place before the trial is committed, so a
superseded attempt's weights never replace the current attempt's.

Only this project's own state is repaired: its directory holds `MARK_FILE`,
written before the first oracle.json, and oracle.json carries `STATE_FORMAT`
(searches written before the mark are known by NSGA-II's state). A directory
holding another tool's project (a KerasTuner RandomSearch, say) is refused
with one line and left byte for byte as it was (`ForeignProjectError`).

Each recovery prints one line and is kept in `recovery_notes`. Trial ids must
be trial numbers (digits): every path is derived from them, so an id such as
"../../x" in a crafted file is set aside instead of leading a write outside
the project directory.
"""

from __future__ import annotations

import contextvars
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import keras_tuner
from keras_tuner.engine.trial import Trial, TrialStatus

from flatnas_tf import compat
from flatnas_tf.persistence import storage
from flatnas_tf.tuners.records import (
    ENDED,
    MALFORMED,
    ORACLE_FILE,
    TRIAL_FILE,
    being_created,
    check_trial_id,
    lost_message,
    read_project,
)

__all__ = [
    "MARK_FILE",
    "ORACLE_FILE",
    "STATE_FORMAT",
    "TRIAL_FILE",
    "TRIAL_ID_DIGITS",
    "DurableOracle",
    "ForeignProjectError",
    "SupersededAttemptError",
    "attempt_checkpoint",
    "check_trial_id",
    "presented_attempt",
]

#: Written into oracle.json with the state: the mark of a project this oracle wrote.
STATE_FORMAT = "flatnas-tf/oracle/1"
#: The same mark in a file of its own, written before the first oracle.json, so that
#: an oracle.json damaged into a stranger's shape is still known as this project's.
MARK_FILE = "flatnas_tf_project.json"

#: A new search's trial ids are trial numbers with this many digits at least
#: ("000", "001", ...), whatever its max_trials (KerasTuner pads to the width of
#: max_trials, so a search grown from 9 to 10 trials mixed "8" and "09"). A
#: search reloaded from its files keeps the width its ids have.
TRIAL_ID_DIGITS = 3


#: The attempt the call being served presents (None: a local call, not checked).
presented_attempt: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "presented_attempt", default=None
)


class ForeignProjectError(ValueError):
    """The directory holds a project that flatnas-tf did not write: it is left as it is."""


class SupersededAttemptError(RuntimeError):
    """A heartbeat or report of an attempt that is no longer its trial's latest."""


def attempt_checkpoint(trial_dir: str | os.PathLike, attempt: int) -> Path:
    """Where a distributed worker writes the weights of attempt `attempt` of a trial."""
    return Path(trial_dir) / f"checkpoint.attempt-{attempt}.weights.h5"


def own_project_problem(project_dir: Path) -> str | None:
    """Why a project directory is another tool's (None when it is this project's).

    Recovery repairs this project's own state only. A project is this one's
    when it holds `MARK_FILE`, or its oracle.json carries `STATE_FORMAT` or
    (written before the mark existed) NSGA-II's state, or oracle.json is
    missing or unreadable (damage, which `reload` repairs); a readable
    oracle.json of any other shape (e.g. a KerasTuner RandomSearch project)
    is foreign.
    """
    if (project_dir / MARK_FILE).exists():
        return None
    oracle_file = project_dir / ORACLE_FILE
    try:
        state = json.loads(oracle_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(state, dict):
        return None
    if state.get("format") == STATE_FORMAT or isinstance(state.get("nsga2"), dict):
        return None
    return f"its {ORACLE_FILE} holds no flatnas-tf state (format {state.get('format')!r})"


class DurableOracle(keras_tuner.Oracle):
    """`keras_tuner.Oracle` with atomic state files and recovery on reload.

    A drop-in base class for oracles (see the module docstring); it changes
    how state is written and read back, never which trials are proposed.

    Attributes:
        recovery_notes: One line per repair made by the last `reload` and
            per lease that expired.
        lease_s: Seconds a worker may stay silent before its trial is queued
            again; None (the default) keeps trials leased forever, as
            KerasTuner does.
        repairs_files: Whether `reload` writes its repairs (sets damaged files
            aside, saves placeholders); False reads a search, e.g. a running
            one, without changing anything.
        trial_id_digits: The width of new trial ids (`TRIAL_ID_DIGITS`, or
            the width of the ids a reloaded search has).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.recovery_notes: list[str] = []
        self.lease_s: float | None = None
        self.repairs_files = True
        self.trial_id_digits = TRIAL_ID_DIGITS
        self._heard: dict[str, float] = {}  # trial or tuner id -> last call naming it
        #: Trial id -> the number of its latest hand-out (1 for the first).
        self.attempts: dict[str, int] = {}

    # -- leases ---------------------------------------------------------------------

    @keras_tuner.synchronized
    def create_trial(self, tuner_id: str) -> Trial:
        now = time.monotonic()
        self._heard[f"tuner:{tuner_id}"] = now
        if self._wait_for_leases(tuner_id):
            self.tuner_ids.add(tuner_id)
            return Trial(self.get_space(), status=TrialStatus.IDLE)
        new = (
            tuner_id not in self.ongoing_trials
            and not self._retry_queue
            and not (self.max_trials and len(self.trials) >= self.max_trials)
        )
        # KerasTuner's own paths (the worker's ongoing trial, a retried one,
        # STOPPED) hand out no new id; a new trial is created here, under an
        # id of this oracle's format.
        if new:
            trial = self._create_new_trial(tuner_id)
        else:
            trial = super().create_trial(tuner_id)
            if trial.status == TrialStatus.RUNNING:  # handed out again: a new attempt
                self.attempts[trial.trial_id] = self.attempts.get(trial.trial_id, 0) + 1
                self.save()
        self._heard[trial.trial_id] = now
        return trial

    def _create_new_trial(self, tuner_id: str) -> Trial:
        """KerasTuner's `create_trial` for a new trial, with `trial_id_digits`-wide ids."""
        self.tuner_ids.add(tuner_id)
        trial_id = f"{len(self.trials):0{self.trial_id_digits}d}"
        response = self.populate_space(trial_id)
        hyperparameters = self.hyperparameters.copy()
        hyperparameters.values = response.get("values") or {}
        trial = Trial(hyperparameters, trial_id=trial_id, status=response["status"])
        if trial.status == TrialStatus.RUNNING:
            self._record_values(trial)
            self.ongoing_trials[tuner_id] = trial
            self.trials[trial_id] = trial
            self.attempts[trial_id] = 1
            self.start_order.append(trial_id)
            self._save_trial(trial)
            self._display.on_trial_begin(trial)  # its start time is in the state saved next
            self.save()
        elif trial.status == TrialStatus.STOPPED:
            self.tuner_ids.remove(tuner_id)
        return trial

    def _wait_for_leases(self, tuner_id: str) -> bool:
        """Whether a worker is told IDLE rather than STOPPED.

        So when every trial is created and none is queued, but another
        worker's trial may still come back to the queue.
        """
        return (
            self.lease_s is not None
            and self.max_trials is not None
            and len(self.trials) >= self.max_trials
            and not self._retry_queue
            and tuner_id not in self.ongoing_trials
            and bool(self.ongoing_trials)
        )

    @keras_tuner.synchronized
    def get_trial(self, trial_id: str) -> Trial:
        self._check_attempt(trial_id)
        self._hear(trial_id)  # a worker's heartbeat
        return super().get_trial(trial_id)

    @keras_tuner.synchronized
    def update_trial(self, trial_id: str, metrics: Mapping[str, float], step: int = 0) -> Trial:
        self._check_attempt(trial_id)
        if self._lease_lost(trial_id):
            return self.trials[trial_id]
        self._hear(trial_id)
        return super().update_trial(trial_id, metrics, step=step)

    @keras_tuner.synchronized
    def end_trial(self, trial: Trial) -> None:
        self._check_attempt(trial.trial_id)
        if self._lease_lost(trial.trial_id):
            return
        self._hear(trial.trial_id)
        attempt = presented_attempt.get()
        if attempt is not None:  # a worker's weights, moved into place before the commit
            trial_dir = self._get_trial_dir(trial.trial_id)
            written = attempt_checkpoint(trial_dir, attempt)
            if written.exists():
                os.replace(written, Path(trial_dir) / compat.CHECKPOINT_FILE)
        super().end_trial(trial)

    def _check_attempt(self, trial_id: str) -> None:
        """Refuses a call presenting an attempt that is not the trial's latest."""
        attempt, latest = presented_attempt.get(), self.attempts.get(trial_id)
        if attempt is not None and attempt != latest:
            raise SupersededAttemptError(
                f"trial {trial_id}: attempt {attempt} was superseded by attempt {latest} (its "
                "lease expired and the trial was handed out again); this call is refused and "
                "its figures and weights are not used."
            )

    def _hear(self, trial_id: str) -> None:
        """Renews the lease on `trial_id` and the life of the worker holding it.

        The worker's own life matters once its trial ends: a worker that
        reports its last trial is about to ask for the next one (and be told
        STOPPED), so the chief must not forget it, and stop serving, because
        its previous `create_trial` was over `lease_s` ago.
        """
        now = time.monotonic()
        self._heard[trial_id] = now
        for tuner_id, trial in self.ongoing_trials.items():
            if trial.trial_id == trial_id:
                self._heard[f"tuner:{tuner_id}"] = now

    def _retry(self, trial: Trial) -> bool:
        retried = super()._retry(trial)
        if retried:
            # KerasTuner keeps the failed run's metrics, and its tuner then takes
            # them for a report made inside run_trial and drops the new results.
            _clear_figures(trial)
        return retried

    def _check_consecutive_failures(self) -> None:
        # KerasTuner walks every ended trial at every end (a cost that grows with
        # the search); a run of failures reaching the limit ends at the newest
        # ended trial, so the last `limit` ones tell.
        limit = self.max_consecutive_failed_trials
        newest = [self.trials[trial_id] for trial_id in self.end_order[-limit:]]
        if len(newest) == limit and all(t.status == TrialStatus.FAILED for t in newest):
            raise RuntimeError(
                f"Number of consecutive failures exceeded the limit of {limit}.\n"
                + (newest[-1].message or "")
            )

    def _lease_lost(self, trial_id: str) -> bool:
        """Whether a report names a trial that is not leased to anyone (any more)."""
        if self.lease_s is None:
            return False
        return all(t.trial_id != trial_id for t in self.ongoing_trials.values())

    @keras_tuner.synchronized
    def expire_leases(self) -> list[str]:
        """Queues again the trials of workers silent for `lease_s`; forgets such workers.

        Returns:
            The ids of the trials queued again.
        """
        if self.lease_s is None:
            return []
        now = time.monotonic()
        expired = []
        for tuner_id, trial in list(self.ongoing_trials.items()):
            silent = now - self._heard.get(trial.trial_id, now)
            if silent > self.lease_s:
                del self.ongoing_trials[tuner_id]
                _clear_figures(trial)
                self._retry_queue.append(trial.trial_id)
                expired.append(trial.trial_id)
                self._note(
                    f"trial {trial.trial_id}: worker {tuner_id} silent for {silent:.0f} s "
                    f"(lease {self.lease_s:g} s); the trial is queued again."
                )
        for tuner_id in list(self.tuner_ids):
            leased = tuner_id in self.ongoing_trials
            if not leased and now - self._heard.get(f"tuner:{tuner_id}", now) > self.lease_s:
                self.tuner_ids.discard(tuner_id)
        if expired:
            self.save()
        return expired

    @keras_tuner.synchronized
    def search_over(self, stop_sent: bool) -> bool:
        """Whether a chief may stop serving: no trial left or running, no worker to tell.

        Args:
            stop_sent: Whether some worker has been told STOPPED.
        """
        ended = len(self.end_order)
        done = stop_sent or (self.max_trials is not None and ended >= self.max_trials)
        return done and not self.ongoing_trials and not self.tuner_ids

    # -- writing --------------------------------------------------------------------

    def save(self) -> None:
        mark = Path(self._project_dir) / MARK_FILE
        if not mark.exists():  # before the first oracle.json: see MARK_FILE
            storage.write_json(mark, {"format": STATE_FORMAT})
        storage.write_json(compat.oracle_file(self), self.get_state())

    def _save_trial(self, trial: Trial) -> None:
        path = os.path.join(self._get_trial_dir(trial.trial_id), TRIAL_FILE)
        storage.write_json(path, trial.get_state())

    def _get_trial_dir(self, trial_id: str) -> str:
        return super()._get_trial_dir(check_trial_id(trial_id))

    # -- reading --------------------------------------------------------------------

    def get_state(self) -> dict:
        return {**super().get_state(), "format": STATE_FORMAT, "attempts": dict(self.attempts)}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.attempts = {str(k): int(v) for k, v in state.get("attempts", {}).items()}

    def reload(self) -> None:
        """Reloads the search from its directory, repairing what a crash left (module docstring).

        Raises:
            ForeignProjectError: The directory holds another tool's project
                (e.g. a KerasTuner RandomSearch): nothing is read into this
                oracle and nothing in the directory changes.
        """
        foreign = own_project_problem(Path(self._project_dir))
        if foreign is not None:
            raise ForeignProjectError(
                f"{self._project_dir} holds a project that flatnas-tf did not write ({foreign}); "
                "pass overwrite=True to start a new search there, or choose another directory."
            )
        fresh = self.get_state()  # the constructor's state: what a rebuilt oracle starts from
        self.recovery_notes = []
        files = read_project(
            Path(self._project_dir), Trial.from_state, _set_aside if self.repairs_files else None
        )
        self.trials = files.trials
        if files.trials or files.lost:  # the width its ids have (older versions: other widths)
            self.trial_id_digits = min(len(i) for i in [*files.trials, *files.lost])
        for trial_id, reason in files.lost.items():
            self.trials[trial_id] = self._placeholder(trial_id, reason)
        state, problem = files.oracle_state, files.oracle_problem
        never_saved = problem == "missing"
        committed = files.committed
        if problem is None:
            try:
                self.set_state(state)
            except MALFORMED as error:
                problem, committed = f"{type(error).__name__}: {error}", None
        if problem is not None:
            self.set_state(fresh)
        self._reconcile(committed, state.get("ongoing_trials", {}) if problem is None else {})
        if (problem is not None and not never_saved) or (never_saved and self.trials):
            self._note(
                f"{ORACLE_FILE} was {problem}; rebuilt it from {len(self.trials)} "
                "trial files (the parents of earlier trials are not known)."
            )
            if self.repairs_files:  # else a finished search, which saves no more, stays damaged
                self.save()

    def _placeholder(self, trial_id: str, reason: str) -> Trial:
        """A FAILED trial standing for one whose file is lost, so its id is never reused."""
        trial = Trial(keras_tuner.HyperParameters(), trial_id=trial_id, status=TrialStatus.FAILED)
        trial.message = lost_message(trial_id, reason)
        self._note(trial.message + " It is kept as FAILED.")
        if self.repairs_files:
            self._save_trial(trial)
        return trial

    def _reconcile(self, committed: int | None, leased: Mapping[str, str]) -> None:
        """Makes the bookkeeping agree with the trial files (see the module docstring).

        Args:
            committed: Trials that oracle.json had committed; None if it was rebuilt.
            leased: oracle.json's ongoing trials (worker -> trial id): with
                leases, each unfinished one stays its worker's, on a fresh lease.
        """
        trials = self.trials
        for trial_id, trial in list(trials.items()):
            has_metrics = bool(trial.metrics.metrics)
            if being_created(trial_id, trial.status, has_metrics, self.start_order, committed):
                del trials[trial_id]  # created again, with the same values, at the next request
        order = sorted(trials, key=int)
        ended = [t for t in self.end_order if t in trials and trials[t].status in ENDED]
        seen = set(ended)
        ended += [t for t in order if trials[t].status in ENDED and t not in seen]
        unfinished = [t for t in order if trials[t].status not in ENDED]
        for trial_id in unfinished:
            _clear_figures(trials[trial_id])
        for trial_id in ended:
            self._run_times[trial_id] = max(self._run_times[trial_id], 1)
        self.start_order, self.end_order = order, ended
        self.ongoing_trials = {}
        if self.lease_s is not None:  # a restarted chief: workers may still train them
            now = time.monotonic()
            for tuner_id, trial_id in leased.items():
                if trial_id in unfinished:
                    unfinished.remove(trial_id)
                    self.ongoing_trials[tuner_id] = trials[trial_id]
                    self.tuner_ids.add(tuner_id)
                    self._heard[trial_id] = self._heard[f"tuner:{tuner_id}"] = now
        self._retry_queue = unfinished[::-1]  # pop() hands out the lowest number first
        for trial_id in order:
            if trials[trial_id].hyperparameters.values:
                self._record_values(trials[trial_id])

    def _note(self, line: str) -> None:
        self.recovery_notes.append(line)
        print(f"Recovered: {line}")


def _clear_figures(trial: Trial) -> None:
    """Forgets what a trial reported, before it runs again."""
    trial.metrics = compat.MetricsTracker()
    trial.score, trial.best_step = None, 0


def _set_aside(path: Path) -> str:
    """Renames a damaged file to `<name>.damaged` (`.damaged-2`, ... if taken); says so."""
    aside = path.with_name(f"{path.name}.damaged")
    number = 1
    while aside.exists():
        number += 1
        aside = path.with_name(f"{path.name}.damaged-{number}")
    os.replace(path, aside)
    return f"set aside as {aside.name}"
