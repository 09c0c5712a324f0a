"""A search directory's files, read and checked without KerasTuner or TensorFlow.

KerasTuner keeps a search in its project directory: `oracle.json` (the
oracle's state) and `trial_<id>/trial.json` per trial (`Trial.get_state()`:
hyperparameters, metrics, status, score). This module reads them as plain
JSON, so that the durable oracle (`durable`) and a reader of a finished or
running search (`SearchResult`, `flatnas-tf report`) apply the same rules:

    read_project(project, build)
        trial files   trial_<digits>/trial.json, parsed, checked
                      (`check_trial_state`) and built with `build`;
                      unreadable or malformed -> lost (with the reason)
        oracle.json   parsed; the trial ids it names (`referenced_ids`)
        lost          ids named by oracle.json or with a trial_<id>/
                      directory whose trial.json cannot be had, except the
                      one being created (the next number, never named)
    being_created(trial_id, status, has_metrics, start_order)
        the trial of the next number, RUNNING, not yet committed by
        oracle.json and without metrics: its creation was cut short

`TrialRecord` is a trial as a plain, immutable record (id, status,
hyperparameter values, the last value of each metric); its KerasTuner
`HyperParameters` are built only when asked for.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from flatnas_tf.checks import is_number
from flatnas_tf.figures import FIGURES

if TYPE_CHECKING:
    import keras_tuner

__all__ = [
    "COMPLETED",
    "ENDED",
    "FAILED",
    "MALFORMED",
    "ORACLE_FILE",
    "RUNNING",
    "STATUSES",
    "TRIAL_FILE",
    "ProjectFiles",
    "SearchFilesError",
    "TrialRecord",
    "being_created",
    "check_trial_id",
    "check_trial_state",
    "last_metric_value",
    "lost_message",
    "read_json",
    "read_project",
]

ORACLE_FILE = "oracle.json"
TRIAL_FILE = "trial.json"

# KerasTuner's TrialStatus values (plain strings).
RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
STATUSES = frozenset({RUNNING, "IDLE", "INVALID", "STOPPED", COMPLETED, FAILED})
#: Statuses of a trial that has ended for good.
ENDED = (COMPLETED, FAILED)

#: What reading a state of the wrong form raises.
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError)

_TRIAL_ID = re.compile(r"[0-9]{1,12}")
_MISSING = f"its {TRIAL_FILE} is missing"

Built = TypeVar("Built")


class SearchFilesError(ValueError):
    """A directory whose files are not (or no longer) a readable flatnas-tf search."""


def check_trial_id(trial_id: Any) -> str:
    """Returns `trial_id` if it is a trial number (1-12 digits), else raises.

    Args:
        trial_id: A trial id read from a state file or given by a user.

    Returns:
        The id.

    Raises:
        ValueError: It is not a trial number.

    Example:
    >>> check_trial_id("007")
    '007'
    """
    if not isinstance(trial_id, str) or not _TRIAL_ID.fullmatch(trial_id):
        raise ValueError(f"{trial_id!r} is not a trial id (trial ids are numbers such as '007').")
    return trial_id


def read_json(path: Path) -> tuple[Any, str | None]:
    """(parsed JSON, None), or (None, what is wrong with the file: "missing", ...)."""
    try:
        return json.loads(path.read_bytes()), None
    except FileNotFoundError:
        return None, "missing"
    except OSError as error:
        return None, f"unreadable ({error.strerror or error})"
    except (UnicodeDecodeError, ValueError) as error:
        return None, f"not valid JSON ({error})" if path.stat().st_size else "empty"


def referenced_ids(state: Any) -> tuple[list[str], str | None]:
    """The trial ids an oracle state names, or what is wrong with its form."""
    try:
        ids = [
            *state["ongoing_trials"].values(),
            *state["start_order"],
            *state["end_order"],
            *state["retry_queue"],
        ]
        for trial_id in ids:
            check_trial_id(trial_id)
        return ids, None
    except MALFORMED as error:
        return [], f"not an oracle state ({type(error).__name__}: {error})"


def check_trial_state(state: Any, trial_id: str) -> None:
    """Checks a `trial.json` state enough that building a trial from it cannot fail later.

    Args:
        state: The parsed file.
        trial_id: The id its directory names.

    Raises:
        KeyError, TypeError, ValueError: What is wrong with it.
    """
    if state["trial_id"] != trial_id:
        raise ValueError(f"it names trial {state['trial_id']!r}, not {trial_id!r}")
    if state["status"] not in STATUSES:
        raise ValueError(f"unknown status {state['status']!r}")
    if not isinstance(state["hyperparameters"]["values"], dict):
        raise TypeError("hyperparameter values are not a mapping")
    score = state.get("score")
    if score is not None and not isinstance(score, (int, float)):
        raise TypeError(f"score {score!r} is not a number")
    for name, history in state["metrics"]["metrics"].items():
        for observation in history["observations"]:
            values = _as_list(observation["value"])
            if not all(is_number(v) for v in values):
                raise TypeError(f"metric {name!r} holds {values!r}, not numbers")


def last_metric_value(history: Mapping[str, Any]) -> float:
    """The mean over executions at the highest step of a saved metric history, or NaN.

    The file form of `archive.last_value`: observations at the same step are
    the executions of that step (KerasTuner appends them).

    Args:
        history: `{"direction": ..., "observations": [{"value": [...], "step": s}]}`.

    Returns:
        The mean of the values at the highest step; NaN without observations.
    """
    by_step: dict[int, list[float]] = {}
    for observation in history["observations"]:
        by_step.setdefault(observation["step"], []).extend(_as_list(observation["value"]))
    if not by_step:
        return math.nan
    values = by_step[max(by_step)]
    return math.fsum(values) / len(values) if values else math.nan


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]  # as KerasTuner's MetricObservation


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """A trial read from its saved state: plain values, no KerasTuner objects.

    Attributes:
        trial_id: The trial's id ("007").
        status: KerasTuner's status string ("COMPLETED", "FAILED", "RUNNING", ...).
        values: The hyperparameter values of the trial.
        metrics: The last reported value of each metric (mean over executions).
        score: KerasTuner's score (None if never scored).
        message: Why it failed, when it did.
        hyperparameters_config: KerasTuner's `HyperParameters.get_config()`.

    Example:
    >>> record = TrialRecord.from_state(json.load(open("trial_007/trial.json")))  # doctest: +SKIP
    >>> record.metric("val_accuracy"), record.values["width"]  # doctest: +SKIP
    """

    trial_id: str
    status: str
    values: Mapping[str, Any]
    metrics: Mapping[str, float]
    score: float | None = None
    message: str | None = None
    hyperparameters_config: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: {"space": [], "values": {}}, repr=False
    )

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TrialRecord:
        """A record from `Trial.get_state()` (the content of `trial.json`).

        Args:
            state: The state; `check_trial_state` tells whether it is well formed.

        Returns:
            The record.
        """
        config = state["hyperparameters"]
        return cls(
            trial_id=str(state["trial_id"]),
            status=str(state["status"]),
            values=dict(config["values"]),
            metrics={
                name: last_metric_value(history)
                for name, history in state["metrics"]["metrics"].items()
            },
            score=state.get("score"),
            message=state.get("message"),
            hyperparameters_config=config,
        )

    @classmethod
    def lost(cls, trial_id: str, reason: str) -> TrialRecord:
        """A FAILED record standing for a trial whose file cannot be read."""
        return cls(trial_id, FAILED, {}, {}, message=lost_message(trial_id, reason))

    def metric(self, name: str) -> float:
        """The last reported value of a metric (NaN if never reported)."""
        return self.metrics.get(name, math.nan)

    @property
    def figures(self) -> dict[str, float]:
        """Every figure of `flatnas_tf.figures.FIGURES`, NaN where not measured."""
        return {name: self.metric(name) for name in FIGURES}

    @property
    def hyperparameters(self) -> keras_tuner.HyperParameters:
        """The trial's KerasTuner `HyperParameters` (imports KerasTuner)."""
        import keras_tuner

        # from_config turns the config's conditions into objects in place: give it a copy.
        config = copy.deepcopy(dict(self.hyperparameters_config))
        return keras_tuner.HyperParameters.from_config(config)


def lost_message(trial_id: str, reason: str) -> str:
    """The message of a trial kept as FAILED because its file cannot be read."""
    return f"Trial {trial_id} cannot be read back: {reason}."


@dataclasses.dataclass
class ProjectFiles(Generic[Built]):
    """What `read_project` found in a search directory.

    Attributes:
        oracle_state: The parsed oracle.json (None when it cannot be had).
        oracle_problem: What is wrong with oracle.json ("missing", "not valid
            JSON (...)", "not an oracle state (...)"), or None.
        trials: Trial id -> what `build` made of its trial.json.
        lost: Trial id -> why its trial.json cannot be had, for the ids that
            must be kept as FAILED (ascending ids).
        committed: The number of trials oracle.json committed (0 when it was
            never written; None when it is unreadable).
    """

    oracle_state: Any
    oracle_problem: str | None
    trials: dict[str, Built]
    lost: dict[str, str]
    committed: int | None


def read_project(
    project: Path,
    build: Callable[[Mapping[str, Any]], Built],
    set_aside: Callable[[Path], str] | None = None,
) -> ProjectFiles[Built]:
    """Reads a search directory's oracle.json and trial files (module docstring).

    Args:
        project: The project directory (holding oracle.json).
        build: Makes a trial of a checked trial.json state (e.g.
            `TrialRecord.from_state`); may raise `MALFORMED` errors.
        set_aside: Moves a damaged trial.json out of the way and says where
            ("set aside as trial.json.damaged"); None leaves files in place.

    Returns:
        The `ProjectFiles`.
    """
    trials: dict[str, Built] = {}
    unreadable: dict[str, str] = {}
    for directory in sorted(project.glob("trial_*")):
        trial_id = directory.name[len("trial_") :]
        if not directory.is_dir() or not _TRIAL_ID.fullmatch(trial_id):
            continue  # not a name a search writes; left alone
        path = directory / TRIAL_FILE
        if not path.exists():
            unreadable[trial_id] = _MISSING
            continue
        state, problem = read_json(path)
        if problem is None:
            try:
                check_trial_state(state, trial_id)
                trials[trial_id] = build(state)
                continue
            except MALFORMED as error:
                problem = f"{type(error).__name__}: {error}"
        where = "left in place" if set_aside is None else set_aside(path)
        unreadable[trial_id] = f"its {TRIAL_FILE} was {problem} ({where})"
    state, problem = read_json(project / ORACLE_FILE)
    referenced: list[str] = []
    if problem is None:
        referenced, problem = referenced_ids(state)
    committed = None
    if problem is None:
        committed = len(state["start_order"])
    elif problem == "missing":
        committed = 0  # killed in the first creation (or deleted): nothing was committed
    lost = {}
    for trial_id in sorted({*referenced, *unreadable} - set(trials), key=int):
        reason = unreadable.get(trial_id, _MISSING)
        if reason == _MISSING and trial_id not in referenced and _is_number(trial_id, committed):
            continue  # killed while creating it: it is created again
        lost[trial_id] = reason
    return ProjectFiles(state if problem is None else None, problem, trials, lost, committed)


def being_created(
    trial_id: str, status: str, has_metrics: bool, start_order: Sequence[str], committed: int | None
) -> bool:
    """Whether a trial's creation was cut short (module docstring): it is created again.

    Args:
        trial_id: The trial's id.
        status: Its status in its file.
        has_metrics: Whether it reported any metric.
        start_order: The trial ids oracle.json committed, in creation order.
        committed: len(start_order), or None when oracle.json was rebuilt.
    """
    return (
        _is_number(trial_id, committed)
        and trial_id not in start_order
        and status == RUNNING
        and not has_metrics
    )


def _is_number(trial_id: str, number: int | None) -> bool:
    """Whether a trial id ("007") is trial number `number` (7)."""
    return number is not None and int(trial_id) == number
