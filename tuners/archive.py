"""The completed trials of a search, kept in creation order with their metrics cached.

Every ranking of `NSGA2Oracle` reads the same thing: the completed trials in
creation order, and the last reported value of a few metrics of each. Reading
them afresh walks every trial in Python at every ranking, so a search's
bookkeeping would grow with its archive. This module keeps that list
incrementally instead:

    add(trial, number)    insert at its place in creation order (binary search),
                          and read the cached columns of that one trial
    remove(trial_id)      a trial that left COMPLETED (e.g. marked INVALID)
    refresh(trial_id)     a trial that reported again: re-read its row
    values(names)         the (n, len(names)) matrix of last values: the
                          cached columns, a column read once when first asked
    trials                an immutable tuple, the same object until a change,
                          so a caller can tell the archive's own list apart
    version               a counter of the changes, to cache what depends on them

A metric's "last value" is `last_value`: the mean over executions at the
highest reported step, NaN when it was never reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from keras_tuner.engine.trial import Trial

__all__ = ["CompletedTrials", "last_value"]


def last_value(trial: Trial, name: str) -> float:
    """The mean over executions of the last reported value of a metric, or NaN.

    Args:
        trial: A KerasTuner trial.
        name: A metric name.

    Returns:
        The value at the highest step the metric was reported at, NaN if it
        never was.

    Example:
    >>> last_value(trial, "val_accuracy")  # doctest: +SKIP
    0.91
    """
    history = trial.metrics.metrics.get(name)
    if history is None:
        return math.nan
    # MetricHistory keeps {step: MetricObservation}; reading the last step directly
    # is 5x faster than get_history(), which sorts and copies on every call.
    observations = getattr(history, "_observations", None)
    if isinstance(observations, dict):
        last = observations[max(observations)] if observations else None
    else:
        listed = history.get_history()
        last = listed[-1] if listed else None
    if last is None or not last.value:
        return math.nan
    return math.fsum(last.value) / len(last.value)


class CompletedTrials:
    """Completed trials in creation order, with cached metric columns.

    Example:
    >>> archive = CompletedTrials()
    >>> archive.add(trial, number=0)  # doctest: +SKIP
    >>> archive.values(("val_accuracy", "params"))  # doctest: +SKIP
    array([[9.1e-01, 1.2e+05]])
    """

    def __init__(self, trials: Iterable[tuple[Trial, int]] = ()):
        """Creates the archive.

        Args:
            trials: Initial (trial, creation number) pairs, in any order.
        """
        pairs = sorted(trials, key=lambda pair: pair[1])
        self._trials: list[Trial] = [trial for trial, _ in pairs]
        self._numbers = np.array([number for _, number in pairs], dtype=np.int64)
        self._number_of = {trial.trial_id: number for trial, number in pairs}
        self._columns: dict[str, np.ndarray] = {}
        self._tuple: tuple[Trial, ...] | None = None
        self.version = 0  # counts the changes (add, remove, refresh)

    def __len__(self) -> int:
        return len(self._trials)

    def __contains__(self, trial_id: str) -> bool:
        return self._row(trial_id) is not None

    @property
    def trials(self) -> tuple[Trial, ...]:
        """The trials in creation order (the same tuple until the archive changes)."""
        if self._tuple is None:
            self._tuple = tuple(self._trials)
        return self._tuple

    @property
    def numbers(self) -> np.ndarray:
        """The trials' creation numbers, increasing (int64, read-only view)."""
        view = self._numbers.view()
        view.flags.writeable = False
        return view

    def add(self, trial: Trial, number: int) -> None:
        """Inserts a completed trial at its place in creation order.

        Args:
            trial: The trial (not yet in the archive).
            number: Its position in the oracle's creation order.
        """
        row = int(np.searchsorted(self._numbers, number))
        if trial.trial_id in self._number_of or (
            row < len(self._trials) and self._numbers[row] == number
        ):
            raise ValueError(f"Trial {trial.trial_id} (number {number}) is already archived.")
        self._trials.insert(row, trial)
        self._numbers = np.insert(self._numbers, row, number)
        self._number_of[trial.trial_id] = number
        for name, column in self._columns.items():
            self._columns[name] = np.insert(column, row, last_value(trial, name))
        self._tuple = None
        self.version += 1

    def remove(self, trial_id: str) -> None:
        """Removes a trial (nothing happens if it is not in the archive)."""
        row = self._row(trial_id)
        if row is None:
            return
        del self._trials[row]
        self._numbers = np.delete(self._numbers, row)
        del self._number_of[trial_id]
        for name, column in self._columns.items():
            self._columns[name] = np.delete(column, row)
        self._tuple = None
        self.version += 1

    def refresh(self, trial_id: str) -> None:
        """Re-reads the cached metrics of a trial that reported again."""
        row = self._row(trial_id)
        if row is None:
            return
        for name, column in self._columns.items():
            column[row] = last_value(self._trials[row], name)  # `values` hands out copies
        self.version += 1

    def rows(self, trial_ids: Sequence[str]) -> list[int] | None:
        """The rows of these trials, or None if one of them is not in the archive."""
        rows = [self._row(trial_id) for trial_id in trial_ids]
        return None if None in rows else rows

    def values(self, names: Sequence[str]) -> np.ndarray:
        """The last value of each metric for each trial.

        Args:
            names: Metric names.

        Returns:
            A new float64 array of shape (len(self), len(names)), NaN where a
            trial never reported the metric.
        """
        for name in names:
            if name not in self._columns:
                self._columns[name] = np.array(
                    [last_value(trial, name) for trial in self._trials], dtype=np.float64
                )
        if not names:
            return np.zeros((len(self._trials), 0))
        return np.stack([self._columns[name] for name in names], axis=1)

    def _row(self, trial_id: str) -> int | None:
        number = self._number_of.get(trial_id)
        return None if number is None else int(np.searchsorted(self._numbers, number))
