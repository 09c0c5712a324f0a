"""A ranking of trials: NSGA-II's order of a set of trials, as a snapshot.

    F, v    = objectives (n, m) and total constraint violations (n,) of the trials
    ranks   = constrained non-dominated rank per trial        (pareto.survival)
    order   = survival order: front 0 first, by crowding distance within a front
    score   = rank + position in its front / front size       (lower is better)
    front   = the feasible trials of rank 0, in survival order

`NSGA2Oracle.rank` builds one from its archive (ranks kept up to date
incrementally); `rank_trials` builds one from scratch for any trials, which is
what `SearchResult` re-ranks a finished search with (no KerasTuner needed).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from flatnas_tf.tuners import pareto

__all__ = ["Ranking", "rank_trials"]


@dataclasses.dataclass(frozen=True)
class Ranking:
    """Completed trials as an oracle ranks them: a snapshot that changes nothing.

    Row i of every array is `trials[i]`.

    Attributes:
        trials: The ranked trials, in the order given (creation order for
            `NSGA2Oracle.rank()`): KerasTuner `Trial`s, or `TrialRecord`s for
            a `SearchResult`; anything with a `trial_id`.
        objectives: `objective_values(trials)`, float64 (n, n_objectives).
        violations: Total constraint violation per trial (0 = within every
            constraint), float64 (n,).
        ranks: Constrained non-dominated rank per trial (0 = first front).
        order: Rows, best first (NSGA-II's survival order): all of them, or
            the first `count` asked for.
        scores: rank + position in its front / front size per row (what
            `trial.score` is set to); NaN beyond the fronts `order` reaches.

    Example:
    >>> ranking = oracle.rank()  # doctest: +SKIP
    >>> ranking.best(3), ranking.score_of(ranking.front()[0].trial_id)  # doctest: +SKIP
    """

    trials: Sequence[Any]
    objectives: np.ndarray
    violations: np.ndarray
    ranks: np.ndarray
    order: np.ndarray
    scores: np.ndarray

    @property
    def feasible(self) -> np.ndarray:
        """Per row: within every constraint, and every objective finite."""
        return (self.violations == 0) & np.isfinite(self.objectives).all(axis=1)

    def best(self, count: int | None = None) -> list[Any]:
        """The first `count` trials of the survival order (all ordered ones by default)."""
        return [self.trials[row] for row in self.order[:count]]

    def front(self) -> list[Any]:
        """The feasible trials of the first front, in survival order."""
        return [self.trials[row] for row in self._front_rows()]

    def score_of(self, trial_id: str) -> float:
        """The score of a ranked trial (NaN beyond the fronts ordered)."""
        return float(self.scores[self._rows[trial_id]])

    def _front_rows(self) -> list[int]:
        rows = np.flatnonzero((self.ranks == 0) & self.feasible)
        return rows[np.argsort(self.scores[rows], kind="stable")].tolist()

    @functools.cached_property
    def _rows(self) -> dict[str, int]:
        return {trial.trial_id: row for row, trial in enumerate(self.trials)}


def rank_trials(
    trials: Sequence[Any],
    objectives: np.ndarray,
    violations: np.ndarray,
    directions: Sequence[str],
    count: int | None = None,
) -> Ranking:
    """Ranks trials from their objective values and violations (`pareto.survival`).

    Args:
        trials: The trials (anything with a `trial_id`), row i of the arrays.
        objectives: Float (n, m) objective values, NaN where missing.
        violations: Total constraint violation per trial (0 = feasible).
        directions: "min" or "max" per objective.
        count: Order only the first `count` trials (None: all).

    Returns:
        A `Ranking` of the trials.

    Example:
    >>> ranking = rank_trials(trials, F, v, ["max", "min"])  # doctest: +SKIP
    """
    objectives = np.asarray(objectives, dtype=np.float64)
    violations = np.asarray(violations, dtype=np.float64)
    survival = pareto.survival(objectives, directions, violations, count)
    return Ranking(
        list(trials), objectives, violations, survival.ranks, survival.order, survival.scores
    )
