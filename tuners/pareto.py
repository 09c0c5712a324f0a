"""Pareto ranking, crowding distance, constrained domination and hypervolume.

The numerics behind NSGA-II selection (Deb et al., 2002), on top of `moocore`
(the C library that pymoo delegates non-dominated sorting and hypervolume to).
This module adds what moocore lacks: objective directions, missing values,
constraint violations, crowding distance and a deterministic total order.

For n points with m objectives, each "min" or "max", and optional total
constraint violations v (0 = feasible):

    F        = objectives, "max" columns negated          (all minimisation)
    v[i]     = inf   if any F[i, j] is NaN or +-inf       (a missing value)
    a < b    (a constrained-dominates b):
                 v[a] = 0 and v[b] > 0                     feasible first
              or v[a] > 0 and v[b] > 0 and v[a] < v[b]     less violation first
              or v[a] = v[b] = 0 and F[a] <= F[b] everywhere and < somewhere
    rank     = index of the front in the peeling of < :
               feasible points: moocore.pareto_rank        fronts 0 .. K-1
               infeasible:      K + dense rank of v       one front per value
    crowding = per front, sum over objectives j of the normalised gap between
               the neighbouring distinct values of F[:, j]; extremes get inf
    order    = sort by (rank, -crowding, index)            NSGA-II survival

Choices this implementation makes, each tested in `tests/test_pareto.py`:

- Missing values. A NaN, or an infinity of either sign, in any objective makes
  the point infeasible with violation inf: it is worse than every feasible
  point and than every point with a finite violation, and all such points
  share the last front. An infinity "in the good direction" (-inf loss) is no
  measurement either and would make the hypervolume infinite, so it is treated
  like NaN. Ranking never raises on such values.
- Infeasible points are compared by total violation only (as in Deb's rule
  and Optuna's NSGA-II): equal violations give equal ranks, whatever the
  objectives. Violations come from `total_violation` (sum of the excesses
  over `metric <= bound` constraints; a NaN metric is an infinite violation).
- Duplicates. Identical points never dominate each other, so they share a
  rank (also through moocore). Crowding distance is a function of the *set*
  of values in each objective: for a point with value x in objective j, the
  contribution is (next larger distinct value - next smaller distinct value)
  / range_j, and inf when x is the smallest or largest value. Identical
  points therefore get identical distances, the same as if only one copy were
  present, and the result does not depend on the order of the points or on
  the objective directions. (The alternative, giving all copies but one a
  distance of 0 as pymoo does, depends on which copy comes first.) Two copies
  of a boundary point are thus both inf; the ties are broken by index, and
  removing duplicate configurations is the oracle's business.
- An objective whose range over the front is 0 contributes 0 (and no inf).
  A front of one point, of two points, or of copies of one point gets inf
  for every member. Rows with a missing value are left out of the crowding
  computation and get 0.
- The hypervolume counts only points that are feasible, have no missing
  value and are strictly better than the reference in every objective;
  others contribute nothing. moocore computes it exactly.

References:
    K. Deb, A. Pratap, S. Agarwal, T. Meyarivan. A Fast and Elitist
    Multiobjective Genetic Algorithm: NSGA-II. IEEE Transactions on
    Evolutionary Computation 6(2), 2002. doi:10.1109/4235.996017.
    M. Lopez-Ibanez et al. moocore: Core Algorithms for Multi-Objective
    Optimization. https://multi-objective.github.io/moocore/python/
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

import moocore
import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "DIRECTIONS",
    "IncrementalRanks",
    "binary_tournament",
    "Survival",
    "constrained_dominates",
    "crowding_distance",
    "fronts",
    "hypervolume",
    "non_dominated_ranks",
    "rank_and_crowd",
    "survival",
    "survival_order",
    "survival_score",
    "to_minimisation",
    "total_violation",
]

#: The accepted objective directions.
DIRECTIONS = ("min", "max")


def _as_objectives(objectives: ArrayLike, name: str = "objectives") -> np.ndarray:
    """A float64 (n, m) copy of `objectives`, with m >= 1."""
    try:
        array = np.array(objectives, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"`{name}` must be a 2-D array of numbers of shape (n_points, n_objectives); "
            f"received {name}={objectives!r}."
        ) from error
    if array.ndim != 2 or array.shape[1] < 1:
        raise ValueError(
            f"`{name}` must be a 2-D array of shape (n_points, n_objectives) with at least "
            f"one objective; received an array of shape {array.shape}. Pass one row per "
            "point (reshape a single objective with `.reshape(-1, 1)`, a single point with "
            "`.reshape(1, -1)`)."
        )
    return array


def _as_directions(directions: str | Sequence[str], n_objectives: int) -> np.ndarray:
    """A boolean mask of the "max" objectives."""
    if isinstance(directions, str):
        directions = [directions] * n_objectives
    directions = list(directions)
    if len(directions) != n_objectives:
        raise ValueError(
            f"`directions` must give one of {DIRECTIONS} per objective: expected "
            f"{n_objectives}, received {len(directions)} ({directions!r})."
        )
    for direction in directions:
        if direction not in DIRECTIONS:
            raise ValueError(
                f"`directions` must contain only 'min' or 'max'; received {directions!r}."
            )
    return np.array([direction == "max" for direction in directions], dtype=bool)


def _as_violations(violations: ArrayLike | None, n_points: int) -> np.ndarray:
    """A float64 (n,) copy of `violations` (zeros if None), NaN replaced by inf."""
    if violations is None:
        return np.zeros(n_points)
    array = np.array(violations, dtype=np.float64)
    if array.shape != (n_points,):
        raise ValueError(
            f"`violations` must hold one total violation per point, shape ({n_points},); "
            f"received shape {array.shape}."
        )
    if np.any(array < 0):
        raise ValueError(
            "`violations` must be >= 0 (0 = feasible; see `total_violation`); received "
            f"negative values {array[array < 0]!r}."
        )
    array[np.isnan(array)] = np.inf
    return array


def to_minimisation(objectives: ArrayLike, directions: str | Sequence[str]) -> np.ndarray:
    """Converts objectives to all-minimisation by negating the "max" columns.

    Args:
        objectives: Array of shape (n_points, n_objectives).
        directions: "min" or "max" per objective, or one string for all.

    Returns:
        A new float64 array of the same shape; NaN stays NaN.

    Examples:
        >>> to_minimisation([[0.9, 2.0]], ["max", "min"]).tolist()
        [[-0.9, 2.0]]
    """
    array = _as_objectives(objectives)
    maximise = _as_directions(directions, array.shape[1])
    array[:, maximise] = -array[:, maximise]
    return array


def total_violation(values: ArrayLike, bounds: ArrayLike) -> np.ndarray:
    """Total violation of constraints of the form `metric <= bound`, per point.

    violation = sum over constraints of max(0, value - bound); a NaN value
    (an unmeasured metric) is an infinite violation. 0 means feasible.

    Args:
        values: Metric values, shape (n_points, n_constraints), or (n_points,)
            for a single constraint.
        bounds: Upper bound per constraint, shape (n_constraints,), or a
            scalar for a single constraint. Must not be NaN.

    Returns:
        A float64 array of shape (n_points,), >= 0.

    Examples:
        >>> total_violation([[4e6], [6e6], [float("nan")]], [5e6]).tolist()
        [0.0, 1000000.0, inf]
    """
    array = np.array(values, dtype=np.float64)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise ValueError(
            "`values` must have shape (n_points, n_constraints) or (n_points,); received "
            f"shape {array.shape}."
        )
    limits = np.atleast_1d(np.asarray(bounds, dtype=np.float64))
    if limits.shape != (array.shape[1],):
        raise ValueError(
            f"`bounds` must give one bound per constraint, shape ({array.shape[1]},); "
            f"received shape {limits.shape}."
        )
    if np.any(np.isnan(limits)):
        raise ValueError(f"`bounds` must not be NaN; received bounds={limits!r}.")
    with np.errstate(invalid="ignore"):  # inf - inf when value and bound are both inf
        excess = np.maximum(array - limits, 0.0)
    excess[np.isnan(array)] = np.inf
    excess[np.isnan(excess)] = 0.0  # value = bound = +inf: not above the bound
    return excess.sum(axis=1)


def _prepare(
    objectives: ArrayLike,
    directions: str | Sequence[str],
    violations: ArrayLike | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Minimisation objectives and effective violations (inf for missing values)."""
    minimised = to_minimisation(objectives, directions)
    effective = _as_violations(violations, minimised.shape[0])
    complete = np.ones(minimised.shape[0], dtype=bool)
    for column in minimised.T:  # per objective: faster than reducing along the rows
        complete &= np.isfinite(column)
    effective[~complete] = np.inf
    return minimised, effective


def constrained_dominates(
    a: ArrayLike,
    b: ArrayLike,
    directions: str | Sequence[str],
    violation_a: float = 0.0,
    violation_b: float = 0.0,
) -> bool:
    """Whether point `a` constrained-dominates point `b` (Deb's rule).

    Feasible beats infeasible; of two infeasible points the one with the
    smaller total violation wins; two feasible points are compared by Pareto
    domination. A point with a missing (NaN or infinite) objective counts as
    infinitely violating.

    Args:
        a: Objective values of the first point, shape (n_objectives,).
        b: Objective values of the second point, shape (n_objectives,).
        directions: "min" or "max" per objective, or one string for all.
        violation_a: Total constraint violation of `a` (0 = feasible).
        violation_b: Total constraint violation of `b`.

    Returns:
        True if `a` dominates `b`. Never True for identical points.

    Examples:
        >>> constrained_dominates([0.9, 1.0], [0.8, 1.0], ["max", "min"])
        True
        >>> constrained_dominates([0.9, 1.0], [0.8, 1.0], ["max", "min"], violation_a=2.0)
        False
    """
    points = np.stack([np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)])
    minimised, violation = _prepare(points, directions, [violation_a, violation_b])
    if violation[0] > 0 or violation[1] > 0:
        return bool(violation[0] < violation[1])
    return bool(np.all(minimised[0] <= minimised[1]) and np.any(minimised[0] < minimised[1]))


def _ranks(minimised: np.ndarray, violations: np.ndarray) -> np.ndarray:
    ranks = np.empty(minimised.shape[0], dtype=np.int64)
    feasible = violations == 0
    n_feasible_fronts = 0
    if feasible.any():
        feasible_ranks = np.asarray(moocore.pareto_rank(minimised[feasible]), dtype=np.int64)
        ranks[feasible] = feasible_ranks
        n_feasible_fronts = int(feasible_ranks.max()) + 1
    if not feasible.all():
        _, dense = np.unique(violations[~feasible], return_inverse=True)
        ranks[~feasible] = n_feasible_fronts + dense.reshape(-1)
    return ranks


def non_dominated_ranks(
    objectives: ArrayLike,
    directions: str | Sequence[str],
    violations: ArrayLike | None = None,
) -> np.ndarray:
    """Constrained non-dominated sorting: the front index of every point.

    Args:
        objectives: Array of shape (n_points, n_objectives). NaN or infinite
            entries mark a point as missing (worse than every other point).
        directions: "min" or "max" per objective, or one string for all.
        violations: Optional total constraint violation per point, shape
            (n_points,), >= 0 (see `total_violation`); NaN means inf. None:
            every point with complete objectives is feasible.

    Returns:
        An int64 array of shape (n_points,): 0 for the first (best) front,
        consecutive integers after it. Identical points share a rank.

    Examples:
        >>> non_dominated_ranks([[1, 3], [2, 2], [2, 3], [float("nan"), 0]], "min").tolist()
        [0, 0, 1, 2]
    """
    minimised, effective = _prepare(objectives, directions, violations)
    return _ranks(minimised, effective)


def _split(ranks: np.ndarray) -> list[np.ndarray]:
    if ranks.size == 0:
        return []
    order = np.argsort(ranks, kind="stable")
    return np.split(order, np.cumsum(np.bincount(ranks))[:-1])


def fronts(
    objectives: ArrayLike,
    directions: str | Sequence[str],
    violations: ArrayLike | None = None,
) -> list[np.ndarray]:
    """Indices of the points in each constrained non-dominated front, best first.

    Args:
        objectives: Array of shape (n_points, n_objectives); see
            `non_dominated_ranks` for missing values.
        directions: "min" or "max" per objective, or one string for all.
        violations: Optional total constraint violation per point.

    Returns:
        A list of int64 index arrays, one per front in rank order, each in
        increasing index order; together they partition range(n_points).

    Examples:
        >>> [f.tolist() for f in fronts([[1, 3], [2, 2], [2, 3]], ["min", "min"])]
        [[0, 1], [2]]
    """
    return _split(non_dominated_ranks(objectives, directions, violations))


def crowding_distance(objectives: ArrayLike) -> np.ndarray:
    """Deb's crowding distance of the points of one front.

    For each objective j with range r_j > 0 over the front, a point with value
    x gets (smallest value above x - largest value below x) / r_j, or inf if x
    is the front's smallest or largest value in j; the distance is the sum over
    objectives. Working on distinct values gives identical points identical
    distances (those of a single copy) and makes the result independent of the
    order of the points and of the objective directions (negating a column
    changes nothing), so no `directions` argument is needed.

    Args:
        objectives: Array of shape (n_points, n_objectives), one front.

    Returns:
        A float64 array of shape (n_points,), >= 0. All inf when the complete
        rows are at most two distinct points. Rows with a NaN or infinite
        entry are left out of the computation and get 0.

    Examples:
        >>> crowding_distance([[0, 4], [1, 2], [4, 0]]).tolist()
        [inf, 2.0, inf]
    """
    array = _as_objectives(objectives)
    complete = np.isfinite(array).all(axis=1)
    points = array[complete]
    distance = np.zeros(points.shape[0])
    if points.shape[0] > 0 and np.all(points == points[0]):
        distance[:] = np.inf  # one point, or copies of it
    else:
        for column in points.T:
            values, position = np.unique(column, return_inverse=True)
            if values.size < 2:
                continue  # range 0: this objective does not separate the points
            with np.errstate(over="ignore"):
                overflows = not np.isfinite(values[-1] - values[0])
            if overflows:
                values = values / 2  # a range above the float maximum; ratios are kept
            gaps = np.full(values.size, np.inf)
            gaps[1:-1] = (values[2:] - values[:-2]) / (values[-1] - values[0])
            distance += gaps[position.reshape(-1)]
    result = np.zeros(array.shape[0])
    result[complete] = distance
    return result


def rank_and_crowd(
    objectives: ArrayLike,
    directions: str | Sequence[str],
    violations: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Constrained non-dominated rank and within-front crowding distance.

    Args:
        objectives: Array of shape (n_points, n_objectives); see
            `non_dominated_ranks` for missing values.
        directions: "min" or "max" per objective, or one string for all.
        violations: Optional total constraint violation per point.

    Returns:
        (ranks, distances): int64 and float64 arrays of shape (n_points,);
        distances are `crowding_distance` of each point within its front.

    Examples:
        >>> ranks, crowding = rank_and_crowd([[0, 4], [1, 2], [4, 0], [2, 3]], "min")
        >>> ranks.tolist(), crowding.tolist()
        ([0, 0, 0, 1], [inf, 2.0, inf, inf])
    """
    minimised, effective = _prepare(objectives, directions, violations)
    ranks = _ranks(minimised, effective)
    distances = np.zeros(ranks.shape[0])
    for front in _split(ranks):
        distances[front] = crowding_distance(minimised[front])
    return ranks, distances


@dataclasses.dataclass(frozen=True)
class Survival:
    """NSGA-II's survival of a set of points: ranks, order and scores.

    Attributes:
        ranks: The constrained non-dominated rank of every point, int64 (n,).
        order: Point indices, best first: all of them, or the first `count`
            when `survival` was given one; int64.
        scores: rank + (position in its front) / (front size), float64 (n,),
            in [rank, rank + 1): sorting by score gives `order`. NaN for the
            points of fronts that `order` does not reach.
    """

    ranks: np.ndarray
    order: np.ndarray
    scores: np.ndarray


def survival(
    objectives: ArrayLike,
    directions: str | Sequence[str],
    violations: ArrayLike | None = None,
    count: int | None = None,
) -> Survival:
    """NSGA-II's total order of the points, optionally only its first `count`.

    Sorted by constrained rank, then crowding distance within the front
    (larger first), then index (smaller first), so the order is
    deterministic. NSGA-II's (mu + lambda) survival keeps the first mu; the
    same order lists "best trials" (the first front comes first). Crowding is
    computed per front, so with `count` only the fronts holding the first
    `count` points are crowded, and the result is the prefix of the full order.

    Args:
        objectives: Array of shape (n_points, n_objectives); see
            `non_dominated_ranks` for missing values.
        directions: "min" or "max" per objective, or one string for all.
        violations: Optional total constraint violation per point.
        count: How many points to order (None: all).

    Returns:
        A `Survival`: every point's rank, the order, and the scores.

    Examples:
        >>> result = survival([[2, 3], [0, 4], [1, 2], [4, 0]], "min", count=2)
        >>> result.order.tolist(), result.scores.tolist()
        ([1, 3], [nan, 0.0, 0.6666666666666666, 0.3333333333333333])
    """
    minimised, effective = _prepare(objectives, directions, violations)
    return _survival(minimised, _ranks(minimised, effective), count)


def _survival(minimised: np.ndarray, ranks: np.ndarray, count: int | None) -> Survival:
    """`survival` of prepared points whose ranks are known."""
    n_points = ranks.shape[0]
    limit = n_points if count is None else min(max(int(count), 0), n_points)
    scores = np.full(n_points, np.nan)
    # A prefix needs only its first fronts: find them one at a time, O(n) each.
    split = (
        _split(ranks)
        if limit == n_points
        else (np.flatnonzero(ranks == rank) for rank in range(n_points))
    )
    parts, start = [], 0
    for rank, front in enumerate(split):
        if start >= limit:
            break
        ordered = _ordered_front(minimised, front)
        scores[ordered] = _front_scores(rank, ordered.size)
        parts.append(ordered)
        start += ordered.size
    order = np.concatenate(parts)[:limit] if parts else np.zeros(0, dtype=np.int64)
    return Survival(ranks, order.astype(np.int64), scores)


def survival_score(
    objectives: ArrayLike,
    directions: str | Sequence[str],
    violations: ArrayLike | None,
    index: int,
) -> float:
    """The `Survival.scores` entry of one point, crowding only its own front.

    Args:
        objectives: Array of shape (n_points, n_objectives).
        directions: "min" or "max" per objective, or one string for all.
        violations: Optional total constraint violation per point.
        index: The point.

    Returns:
        rank + (position in its front) / (front size) of point `index`.

    Examples:
        >>> survival_score([[2, 3], [0, 4], [1, 2], [4, 0]], "min", None, 2)
        0.6666666666666666
    """
    minimised, effective = _prepare(objectives, directions, violations)
    return _score(minimised, _ranks(minimised, effective), index)


def _score(minimised: np.ndarray, ranks: np.ndarray, index: int) -> float:
    """`survival_score` of prepared points whose ranks are known."""
    ordered = _ordered_front(minimised, np.flatnonzero(ranks == ranks[index]))
    position = int(np.flatnonzero(ordered == index)[0])
    return float(_front_scores(int(ranks[index]), ordered.size)[position])


def _ordered_front(minimised: np.ndarray, front: np.ndarray) -> np.ndarray:
    """The points of one front (ascending indices) by crowding distance, ties by index."""
    crowding = crowding_distance(minimised[front])
    return front[np.lexsort((front, -crowding))]


def _front_scores(rank: int, size: int) -> np.ndarray:
    """Scores of a front's points in survival order: rank + position / size."""
    return rank + np.arange(size) / size


def survival_order(
    objectives: ArrayLike,
    directions: str | Sequence[str],
    violations: ArrayLike | None = None,
    count: int | None = None,
) -> np.ndarray:
    """All point indices (or the first `count`), best first, in NSGA-II's total order.

    The order of `survival` (rank, then crowding distance, then index),
    which takes the same arguments.

    Returns:
        An int64 permutation of range(n_points), or its first `count` entries.

    Examples:
        >>> survival_order([[2, 3], [0, 4], [1, 2], [4, 0]], "min").tolist()
        [1, 3, 2, 0]
    """
    return survival(objectives, directions, violations, count).order


class IncrementalRanks:
    """Constrained non-dominated ranks of a growing set of points, kept up to date.

    `update(keys, objectives, violations)` returns exactly
    `non_dominated_ranks(objectives, directions, violations)`, but when the
    points it saw last time are all still there with the same values, it only
    inserts the new ones, at O(n) vectorised work each instead of a new sort:

        rank(p)   = 0 if no feasible point dominates p, else 1 + the largest
                    rank among the points that dominate p (the length of the
                    longest chain of dominations ending at p, the same as the
                    front index of the peeling)
        D         = the feasible points p dominates; only their ranks change,
                    and by at most 1 (removing p from a chain through p
                    leaves a chain one shorter, by transitivity)
        q in D with rank(q) = rank(p)             moves down one front
        q in D with rank(q) = L > rank(p)         moves down iff a point of D
                    that moved down from front L - 1 dominates q
                    (checked front by front, stopping at the first front
                    where nothing moves)

    Infeasible points take the fronts after the feasible ones, one per
    distinct violation, as in `non_dominated_ranks`. If a point seen before
    is gone or changed (e.g. objectives normalised over the whole set), all
    points are ranked again from scratch.

    Args:
        directions: "min" or "max" per objective, or one string for all.

    Examples:
        >>> ranks = IncrementalRanks("min")
        >>> ranks.update([0, 1], [[1, 3], [3, 1]]).tolist()
        [0, 0]
        >>> ranks.update([0, 1, 2], [[1, 3], [3, 1], [0, 0]]).tolist()  # one insertion
        [1, 1, 0]
    """

    def __init__(self, directions: str | Sequence[str]):
        self.directions = directions
        self._keys = np.zeros(0, dtype=np.int64)
        self._minimised = np.zeros((0, 0))
        self._violations = np.zeros(0)
        self._ranks = np.zeros(0, dtype=np.int64)
        self.insertions = 0  # points inserted incrementally (for tests and benchmarks)
        self.rebuilds = 0  # full re-rankings

    def update(
        self,
        keys: ArrayLike,
        objectives: ArrayLike,
        violations: ArrayLike | None = None,
    ) -> np.ndarray:
        """The ranks of the current points; cheap when points were only added.

        Args:
            keys: One distinct integer per point, in increasing order (e.g.
                the trials' creation numbers); a key names the same point
                from one call to the next.
            objectives: Array of shape (n_points, n_objectives), one row per key.
            violations: Optional total constraint violation per point.

        Returns:
            `non_dominated_ranks(objectives, directions, violations)`.
        """
        minimised, effective = _prepare(objectives, self.directions, violations)
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        if keys.shape[0] != minimised.shape[0] or np.any(np.diff(keys) <= 0):
            raise ValueError(
                "`keys` must hold one distinct integer per point, in increasing order; "
                f"received {keys.shape[0]} keys for {minimised.shape[0]} points."
            )
        position = self._positions(keys)
        unchanged = (
            position is not None
            and self._minimised.shape[1:] == minimised.shape[1:]
            and np.array_equal(minimised[position], self._minimised, equal_nan=True)
            and np.array_equal(effective[position], self._violations)
        )
        feasible = effective == 0
        if unchanged:
            known = np.zeros(keys.size, dtype=bool)
            known[position] = True
            ranks = np.full(keys.size, -1, dtype=np.int64)
            ranks[position] = np.where(self._violations == 0, self._ranks, -1)  # feasible ones
            inserted = np.flatnonzero(~known)
            for index in inserted[feasible[inserted]]:
                known[index] = True
                _insert(minimised, feasible & known, ranks, index)
            self.insertions += inserted.size
        else:
            ranks = np.full(keys.size, -1, dtype=np.int64)
            if feasible.any():
                ranks[feasible] = moocore.pareto_rank(minimised[feasible])
            self.rebuilds += 1
        self._keys, self._minimised, self._violations = keys, minimised, effective
        infeasible = ~feasible
        if infeasible.any():
            _, dense = np.unique(effective[infeasible], return_inverse=True)
            ranks[infeasible] = ranks.max() + 1 + dense.reshape(-1)
        self._ranks = ranks
        return ranks.copy()

    def _positions(self, keys: np.ndarray) -> slice | np.ndarray | None:
        """Where the previous keys are among `keys` (None if one is gone)."""
        count = self._keys.size
        if keys.size >= count and np.array_equal(keys[:count], self._keys):
            return slice(0, count)  # points only appended: the usual case
        position = np.searchsorted(keys, self._keys)
        if np.any(position >= keys.size) or not np.array_equal(keys[position], self._keys):
            return None
        return position

    def survival(self, count: int | None = None) -> Survival:
        """`survival` of the points of the last `update` (see `pareto.survival`)."""
        return _survival(self._minimised, self._ranks, count)

    def score(self, index: int) -> float:
        """`survival_score` of point `index` (a row) of the last `update`."""
        return _score(self._minimised, self._ranks, index)


def _insert(minimised: np.ndarray, present: np.ndarray, ranks: np.ndarray, index: int) -> None:
    """Ranks feasible point `index` among the `present` ones; moves those it pushes down."""
    # Per point: better than p in some objective, worse in some (one objective at
    # a time: 7x faster than reducing the (n, m) comparison along its rows).
    point, columns = minimised[index], minimised.T
    better, worse = columns[0] < point[0], columns[0] > point[0]
    for column, value in zip(columns[1:], point[1:], strict=True):
        better |= column < value
        worse |= column > value
    dominators = present & better & ~worse
    rank = int(ranks[dominators].max()) + 1 if dominators.any() else 0
    ranks[index] = rank
    dominated = np.flatnonzero(present & worse & ~better)
    if dominated.size == 0:
        return
    old = ranks[dominated]  # all >= rank: p's dominators dominate them too
    moved = old == rank
    frontier, level = dominated[moved], rank
    while frontier.size:
        level += 1
        at_level = np.flatnonzero(old == level)
        if at_level.size == 0:
            break
        above = minimised[frontier][:, None, :]
        below = minimised[dominated[at_level]][None, :, :]
        pushed = (np.all(above <= below, axis=2) & np.any(above < below, axis=2)).any(axis=0)
        moved[at_level[pushed]] = True
        frontier = dominated[at_level[pushed]]
    ranks[dominated[moved]] += 1


def hypervolume(
    objectives: ArrayLike,
    directions: str | Sequence[str],
    reference: ArrayLike,
    violations: ArrayLike | None = None,
) -> float:
    """Exact hypervolume dominated by the points, bounded by a reference point.

    The volume of the union of the boxes between each point and the reference
    point, computed by moocore (exact; O(n log n) in 2-D and 3-D). Points with
    a missing value, infeasible points, and points not strictly better than
    the reference in every objective contribute nothing.

    Args:
        objectives: Array of shape (n_points, n_objectives).
        directions: "min" or "max" per objective, or one string for all.
        reference: The reference point, shape (n_objectives,), finite, in the
            objectives' own units and directions (e.g. accuracy 0 for "max").
        violations: Optional total constraint violation per point; points
            with a violation > 0 are ignored.

    Returns:
        The hypervolume, >= 0 (0.0 when no point counts).

    Examples:
        >>> hypervolume([[0.9, 2.0], [0.5, 1.0]], ["max", "min"], reference=[0.0, 4.0])
        2.3
    """
    minimised, effective = _prepare(objectives, directions, violations)
    maximise = _as_directions(directions, minimised.shape[1])
    try:
        ref = np.array(reference, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"`reference` must be a point of {minimised.shape[1]} finite numbers; received "
            f"reference={reference!r}."
        ) from error
    if ref.shape != (minimised.shape[1],) or not np.all(np.isfinite(ref)):
        raise ValueError(
            f"`reference` must be a point of {minimised.shape[1]} finite numbers, one per "
            f"objective; received reference={reference!r}."
        )
    ref[maximise] = -ref[maximise]
    counted = (effective == 0) & np.all(minimised < ref, axis=1)
    if not counted.any():
        return 0.0
    return float(moocore.hypervolume(minimised[counted], ref=ref))


def binary_tournament(
    ranks: np.ndarray, crowding: np.ndarray, rng: random.Random, exclude: int | None = None
) -> int:
    """NSGA-II's binary tournament: the better of two random pool members.

    Better: lower rank, then larger crowding distance, then a coin flip.

    Args:
        ranks: Rank of each pool member.
        crowding: Crowding distance of each pool member (within its front).
        rng: The random stream.
        exclude: A member that may not be drawn (the first parent).

    Returns:
        The index of the winner.
    """
    candidates = [i for i in range(len(ranks)) if i != exclude]
    if len(candidates) == 1:
        return candidates[0]
    a, b = rng.sample(candidates, 2)
    if ranks[a] != ranks[b]:
        return a if ranks[a] < ranks[b] else b
    if crowding[a] != crowding[b]:
        return a if crowding[a] > crowding[b] else b
    return a if rng.random() < 0.5 else b
