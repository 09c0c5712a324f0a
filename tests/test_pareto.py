"""Tests for flatnas_tf.tuners.pareto against brute-force definitions.

The reference implementations here are deliberately naive: O(n^2) pairwise
constrained domination with front peeling, crowding distance from the
definition point by point, and hypervolume by exact inclusion-exclusion in
rational arithmetic or by counting unit cells of an integer grid.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flatnas_tf.tuners import pareto
from flatnas_tf.tuners.pareto import (
    constrained_dominates,
    crowding_distance,
    fronts,
    hypervolume,
    non_dominated_ranks,
    rank_and_crowd,
    survival,
    survival_order,
    survival_score,
    to_minimisation,
    total_violation,
)

NAN, INF = math.nan, math.inf
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- brute force


def brute_minimise(points, directions):
    points = np.array(points, dtype=float)
    if isinstance(directions, str):
        directions = [directions] * points.shape[1]
    for j, direction in enumerate(directions):
        if direction == "max":
            points[:, j] = [-value for value in points[:, j]]
    return points


def brute_violations(minimised, violations):
    n = minimised.shape[0]
    out = []
    for i in range(n):
        v = 0.0 if violations is None else float(violations[i])
        if math.isnan(v) or not all(math.isfinite(x) for x in minimised[i]):
            v = INF
        out.append(v)
    return out


def brute_dominates(a, b, va, vb):
    """Deb's constrained domination, straight from the definition."""
    if va == 0 and vb > 0:
        return True
    if va > 0 and vb == 0:
        return False
    if va > 0 and vb > 0:
        return va < vb
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def brute_ranks(points, directions, violations=None):
    """Front peeling with O(n^2) pairwise comparisons per front."""
    minimised = brute_minimise(points, directions)
    v = brute_violations(minimised, violations)
    remaining = set(range(minimised.shape[0]))
    ranks = [-1] * minimised.shape[0]
    rank = 0
    while remaining:
        front = [
            i
            for i in remaining
            if not any(brute_dominates(minimised[k], minimised[i], v[k], v[i]) for k in remaining)
        ]
        assert front, "constrained domination must be acyclic"
        for i in front:
            ranks[i] = rank
        remaining -= set(front)
        rank += 1
    return np.array(ranks)


def brute_crowding(points):
    """Crowding distance by its definition on distinct values, point by point."""
    points = np.array(points, dtype=float)
    n = points.shape[0]
    out = [0.0] * n
    complete = [i for i in range(n) if all(math.isfinite(x) for x in points[i])]
    if not complete:
        return np.array(out)
    if all(np.array_equal(points[i], points[complete[0]]) for i in complete):
        for i in complete:
            out[i] = INF
        return np.array(out)
    for i in complete:
        distance = 0.0
        for j in range(points.shape[1]):
            column = [points[k, j] for k in complete]
            low, high = min(column), max(column)
            if high == low:
                continue
            x = points[i, j]
            below = [value for value in column if value < x]
            above = [value for value in column if value > x]
            if not below or not above:
                distance = INF
            else:
                distance += (min(above) - max(below)) / (high - low)
        out[i] = distance
    return np.array(out)


def textbook_crowding(points):
    """Deb et al. (2002), Fig. 5 ("crowding-distance-assignment"), as printed."""
    points = np.asarray(points, dtype=float)
    n, m = points.shape
    distance = np.zeros(n)
    for j in range(m):
        order = np.argsort(points[:, j], kind="stable")
        distance[order[0]] = distance[order[-1]] = INF
        span = points[order[-1], j] - points[order[0], j]
        for k in range(1, n - 1):
            distance[order[k]] += (points[order[k + 1], j] - points[order[k - 1], j]) / span
    return distance


def exact_hypervolume(points, directions, reference):
    """Inclusion-exclusion over all subsets, in exact rational arithmetic."""
    minimised = brute_minimise(points, directions)
    ref = brute_minimise([reference], directions)[0]
    boxes = [
        [Fraction(x) for x in p]
        for p in minimised
        if all(math.isfinite(x) for x in p) and all(x < r for x, r in zip(p, ref, strict=True))
    ]
    ref = [Fraction(r) for r in ref]
    total = Fraction(0)
    for size in range(1, len(boxes) + 1):
        for subset in itertools.combinations(boxes, size):
            volume = Fraction(1)
            for j, r in enumerate(ref):
                volume *= r - max(box[j] for box in subset)
            total += volume if size % 2 else -volume
    return total


def grid_hypervolume(points, directions, reference):
    """Counts the unit cells of an integer grid dominated by some point."""
    minimised = brute_minimise(points, directions)
    ref = brute_minimise([reference], directions)[0]
    m = minimised.shape[1]
    low = int(min(minimised.min(initial=0), ref.min())) - 1
    axes = [np.arange(low, int(r)) for r in ref]
    cells = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, m)
    covered = np.zeros(len(cells), dtype=bool)
    for p in minimised:
        covered |= np.all(p <= cells, axis=1)
    return int(covered.sum())


# ------------------------------------------------------------------ strategies

TIE_VALUES = st.sampled_from([0.0, 1.0, 2.0, 3.0])
MISSING = st.sampled_from([NAN, INF, -INF])


@st.composite
def problems(draw, max_points=20, max_objectives=4, missing=True, constrained=True):
    """Random and adversarial inputs: ties, duplicate rows, NaN/inf, violations."""
    m = draw(st.integers(1, max_objectives))
    n = draw(st.integers(0, max_points))
    values = TIE_VALUES | st.floats(-10, 10, allow_nan=False, width=32)
    if missing:
        values = values | TIE_VALUES | MISSING
    points = draw(hnp.arrays(np.float64, (n, m), elements=values))
    if n and draw(st.booleans()):  # append copies of existing rows
        copies = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=5))
        points = np.concatenate([points, points[copies]])
    directions = draw(st.lists(st.sampled_from(pareto.DIRECTIONS), min_size=m, max_size=m))
    violations = None
    if constrained and draw(st.booleans()):
        violation_values = st.sampled_from([0.0, 0.0, 0.0, 0.5, 1.0, 1.0, NAN, INF])
        violations = draw(hnp.arrays(np.float64, (len(points),), elements=violation_values))
    return points, directions, violations


@st.composite
def finite_fronts(draw, max_points=12, max_objectives=4):
    """Objective sets on a coarse dyadic grid, so scaling by 2^k is exact."""
    m = draw(st.integers(1, max_objectives))
    n = draw(st.integers(0, max_points))
    elements = st.integers(-8, 8).map(lambda k: k / 4)
    return draw(hnp.arrays(np.float64, (n, m), elements=elements))


# ------------------------------------------------------------ directions, API


def test_public_names():
    assert set(pareto.__all__) >= {
        "to_minimisation",
        "total_violation",
        "constrained_dominates",
        "non_dominated_ranks",
        "fronts",
        "crowding_distance",
        "rank_and_crowd",
        "survival_order",
        "hypervolume",
    }
    for name in pareto.__all__:
        assert hasattr(pareto, name)


def test_to_minimisation_negates_max_columns_and_copies():
    x = np.array([[0.9, 2.0, 3.0], [0.5, -1.0, NAN]])
    out = to_minimisation(x, ["max", "min", "max"])
    np.testing.assert_array_equal(out, [[-0.9, 2.0, -3.0], [-0.5, -1.0, NAN]])
    assert out.dtype == np.float64
    assert x[0, 0] == 0.9  # input untouched
    np.testing.assert_array_equal(to_minimisation([[1, 2]], "max"), [[-1.0, -2.0]])


@pytest.mark.parametrize(
    ("objectives", "directions", "violations", "match"),
    [
        ([[1.0, 2.0]], ["min"], None, "one of"),
        ([[1.0, 2.0]], ["min", "minimize"], None, "'min' or 'max'"),
        ([1.0, 2.0], "min", None, "2-D"),
        (np.zeros((2, 0)), "min", None, "at least"),
        ([[1.0], [2.0]], "min", [0.0], "one total violation per point"),
        ([[1.0], [2.0]], "min", [0.0, -1.0], ">= 0"),
        ([["a"], ["b"]], "min", None, "objectives"),
    ],
)
def test_invalid_arguments_raise_clear_errors(objectives, directions, violations, match):
    with pytest.raises(ValueError, match=match):
        non_dominated_ranks(objectives, directions, violations)


# ------------------------------------------------------------ total violation


def test_total_violation_hand_cases():
    values = np.array([[4e6, 0.1], [6e6, 0.1], [6e6, 0.5], [NAN, 0.0], [5e6, 0.2], [INF, 0.0]])
    out = total_violation(values, [5e6, 0.2])
    np.testing.assert_array_equal(out, [0.0, 1e6, 1e6 + 0.3, INF, 0.0, INF])
    np.testing.assert_array_equal(total_violation([1.0, 3.0], 2.0), [0.0, 1.0])
    np.testing.assert_array_equal(total_violation([[INF]], [INF]), [0.0])


@FAST
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(0, 8), st.integers(1, 3)),
        elements=st.floats(-5, 5, width=32) | st.just(NAN),
    ),
    st.data(),
)
def test_total_violation_matches_definition(values, data):
    bounds = data.draw(
        hnp.arrays(np.float64, (values.shape[1],), elements=st.floats(-5, 5, width=32))
    )
    expected = [
        INF
        if any(math.isnan(x) for x in row)
        else sum(max(0.0, x - b) for x, b in zip(row, bounds, strict=True))
        for row in values
    ]
    np.testing.assert_allclose(total_violation(values, bounds), expected, rtol=1e-12)


def test_total_violation_rejects_bad_bounds():
    with pytest.raises(ValueError, match="one bound per constraint"):
        total_violation([[1.0, 2.0]], [1.0])
    with pytest.raises(ValueError, match="must not be NaN"):
        total_violation([[1.0]], [NAN])


# ------------------------------------------------------------------ ranking


@FAST
@given(problems())
def test_ranks_match_brute_force_peeling(problem):
    points, directions, violations = problem
    ranks = non_dominated_ranks(points, directions, violations)
    assert ranks.dtype == np.int64
    np.testing.assert_array_equal(ranks, brute_ranks(points, directions, violations))


@FAST
@given(problems())
def test_fronts_partition_points_in_rank_order(problem):
    points, directions, violations = problem
    ranks = brute_ranks(points, directions, violations)
    result = fronts(points, directions, violations)
    assert len(result) == (ranks.max() + 1 if len(ranks) else 0)
    for k, front in enumerate(result):
        assert len(front) > 0
        np.testing.assert_array_equal(front, np.flatnonzero(ranks == k))
    assert sorted(np.concatenate(result).tolist() if result else []) == list(range(len(points)))


def test_duplicates_share_a_rank_and_do_not_dominate_each_other():
    x = [[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [2.0, 2.0], [3.0, 3.0]]
    np.testing.assert_array_equal(non_dominated_ranks(x, "min"), [0, 0, 0, 1, 1, 2])
    assert not constrained_dominates(x[0], x[1], "min")
    assert not constrained_dominates(x[1], x[0], "min")


def test_single_point_empty_input_and_all_equal():
    np.testing.assert_array_equal(non_dominated_ranks([[3.0, 4.0]], "min"), [0])
    empty = non_dominated_ranks(np.zeros((0, 3)), "min")
    assert empty.shape == (0,)
    assert fronts(np.zeros((0, 2)), "max") == []
    assert survival_order(np.zeros((0, 2)), "max").shape == (0,)
    same = np.full((5, 3), 7.0)
    np.testing.assert_array_equal(non_dominated_ranks(same, ["min", "max", "min"]), [0] * 5)
    ranks, crowding = rank_and_crowd(same, "min")
    assert np.all(np.isinf(crowding))
    np.testing.assert_array_equal(survival_order(same, "min"), np.arange(5))


def test_mixed_directions_hand_case():
    # accuracy (max), flatness R (min), parameters (min)
    x = [[0.90, 2.0, 1e6], [0.85, 1.0, 1e6], [0.80, 2.0, 2e6], [0.90, 2.0, 2e6]]
    np.testing.assert_array_equal(non_dominated_ranks(x, ["max", "min", "min"]), [0, 0, 2, 1])
    # flipping every direction changes the fronts: [0.80, 2.0, 2e6] now dominates all
    np.testing.assert_array_equal(non_dominated_ranks(x, ["min", "max", "max"]), [2, 1, 0, 1])


def test_missing_values_are_infeasible_and_never_crash():
    x = [
        [0.9, 1.0],  # 0 feasible
        [NAN, 0.0],  # 1 NaN
        [0.95, INF],  # 2 +inf in a "min" objective (the bad side)
        [-INF, 0.5],  # 3 -inf in a "max" objective (the bad side)
        [0.5, -INF],  # 4 -inf in a "min" objective: no measurement either
        [0.1, 9.0],  # 5 feasible, dominated
    ]
    ranks = non_dominated_ranks(x, ["max", "min"])
    np.testing.assert_array_equal(ranks, [0, 2, 2, 2, 2, 1])
    # A missing value is worse than any finite violation.
    ranks = non_dominated_ranks(x, ["max", "min"], violations=[0, 0, 0, 0, 0, 1e9])
    np.testing.assert_array_equal(ranks, [0, 2, 2, 2, 2, 1])
    ranks, crowding = rank_and_crowd(x, ["max", "min"])
    np.testing.assert_array_equal(crowding[[1, 2, 3, 4]], 0.0)
    assert survival_order(x, ["max", "min"]).tolist() == [0, 5, 1, 2, 3, 4]


def test_infeasible_points_are_ranked_by_violation_only():
    x = [[0.0, 0.0], [5.0, 5.0], [1.0, 1.0], [9.0, 9.0], [0.0, 9.0], [3.0, 3.0]]
    v = [2.0, 0.0, 0.5, 0.5, NAN, 2.0]
    # feasible [5,5] first; then 0.5 (tied, although [1,1] dominates [9,9]); then 2.0; then NaN
    np.testing.assert_array_equal(non_dominated_ranks(x, "min", v), [2, 0, 1, 1, 3, 2])
    # with no feasible point, the smallest violation is front 0
    np.testing.assert_array_equal(non_dominated_ranks(x[2:4], "min", v[2:4]), [0, 0])
    assert constrained_dominates([9.0, 9.0], [0.0, 0.0], "min", 0.0, 2.0)
    assert constrained_dominates([9.0, 9.0], [0.0, 0.0], "min", 1.0, 2.0)
    assert not constrained_dominates([0.0, 0.0], [9.0, 9.0], "min", 2.0, 2.0)
    assert constrained_dominates([9.0, 9.0], [0.0, 0.0], "min", 0.0, NAN)  # NaN violation = inf
    assert not constrained_dominates([0.0, 0.0], [9.0, 9.0], "min", NAN, INF)


@FAST
@given(problems(max_points=2, constrained=False), st.data())
def test_constrained_dominates_matches_definition(problem, data):
    points, directions, _ = problem
    if len(points) < 2:
        return
    violation_values = st.sampled_from([0.0, 0.5, 1.0, NAN, INF])
    va, vb = data.draw(violation_values), data.draw(violation_values)
    a, b = points[0], points[1]
    minimised = brute_minimise(points[:2], directions)
    ea, eb = brute_violations(minimised, [va, vb])
    expected = brute_dominates(minimised[0], minimised[1], ea, eb)
    assert constrained_dominates(a, b, directions, va, vb) is expected
    # domination is asymmetric and irreflexive
    assert not (expected and constrained_dominates(b, a, directions, vb, va))
    assert not constrained_dominates(a, a, directions, va, va)


# --------------------------------------------------------- crowding distance


def test_crowding_hand_case():
    # Normalised by ranges 4 and 4: middle point gets (4-0)/4 + (4-0)/4.
    np.testing.assert_array_equal(crowding_distance([[0, 4], [1, 2], [4, 0]]), [INF, 2.0, INF])
    x = [[0.0, 10.0], [1.0, 6.0], [3.0, 5.0], [6.0, 0.0]]
    expected = [INF, (3 - 0) / 6 + (10 - 5) / 10, (6 - 1) / 6 + (6 - 0) / 10, INF]
    np.testing.assert_allclose(crowding_distance(x), expected, rtol=1e-15)


@FAST
@given(problems(max_points=12, constrained=False))
def test_crowding_matches_definition(problem):
    points, _, _ = problem
    np.testing.assert_allclose(crowding_distance(points), brute_crowding(points), rtol=1e-12)


@FAST
@given(
    st.lists(st.floats(-100, 100, width=32), min_size=3, max_size=15, unique=True),
    st.lists(st.floats(-100, 100, width=32), min_size=3, max_size=15, unique=True),
)
def test_crowding_equals_textbook_on_two_objective_fronts(xs, ys):
    n = min(len(xs), len(ys))
    front = np.column_stack(
        [sorted(xs[:n]), sorted(ys[:n], reverse=True)]
    )  # mutually non-dominated
    assert np.all(non_dominated_ranks(front, "min") == 0)
    np.testing.assert_allclose(crowding_distance(front), textbook_crowding(front), rtol=1e-12)


@FAST
@given(finite_fronts(), st.randoms(use_true_random=False))
def test_crowding_invariants(points, random):
    n, m = points.shape
    distance = crowding_distance(points)
    assert distance.shape == (n,)
    assert np.all(distance >= 0)
    # extremes of every objective with a nonzero range are inf
    for j in range(m):
        column = points[:, j]
        if n and column.max() > column.min():
            assert np.all(np.isinf(distance[(column == column.min()) | (column == column.max())]))
    # identical points get identical distances, equal to those without the copies
    _, first, inverse = np.unique(points, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    np.testing.assert_array_equal(distance, distance[first][inverse])
    if n:
        np.testing.assert_array_equal(crowding_distance(points[first])[inverse], distance)
    # permutation invariance
    permutation = list(range(n))
    random.shuffle(permutation)
    np.testing.assert_array_equal(crowding_distance(points[permutation]), distance[permutation])
    # invariance to direction (negation) and to exact positive affine rescaling per objective
    signs = np.array([random.choice([-1.0, 1.0]) for _ in range(m)])
    scales = np.array([random.choice([0.25, 0.5, 2.0, 4.0]) for _ in range(m)])
    shifts = np.array([random.randint(-3, 3) for _ in range(m)], dtype=float)
    np.testing.assert_array_equal(crowding_distance(points * signs * scales + shifts), distance)


def test_crowding_small_fronts_and_zero_range():
    assert crowding_distance(np.zeros((0, 3))).shape == (0,)
    np.testing.assert_array_equal(crowding_distance([[1.0, 2.0]]), [INF])
    np.testing.assert_array_equal(crowding_distance([[1.0, 2.0], [2.0, 1.0]]), [INF, INF])
    np.testing.assert_array_equal(crowding_distance([[1.0, 2.0], [1.0, 2.0]]), [INF, INF])
    # the second objective has range 0 and contributes nothing
    np.testing.assert_array_equal(crowding_distance([[0, 5], [1, 5], [4, 5]]), [INF, 1.0, INF])
    # duplicates of an interior point share its distance; duplicates of a boundary stay inf
    x = [[0, 4], [1, 2], [1, 2], [4, 0], [4, 0]]
    np.testing.assert_array_equal(crowding_distance(x), [INF, 2.0, 2.0, INF, INF])


def test_crowding_survives_ranges_above_the_float_maximum():
    big = np.finfo(np.float64).max
    distance = crowding_distance([[-big], [0.0], [big]])
    np.testing.assert_allclose(distance, [INF, 1.0, INF], rtol=1e-12)


def test_crowding_rows_with_missing_values_get_zero():
    x = [[0, 4], [NAN, 1], [1, 2], [4, 0], [2, INF]]
    np.testing.assert_array_equal(crowding_distance(x), [INF, 0.0, 2.0, INF, 0.0])
    np.testing.assert_array_equal(crowding_distance([[NAN, 1.0]]), [0.0])


# -------------------------------------------------------- total order (NSGA-II)


@FAST
@given(problems())
def test_rank_and_crowd_and_survival_order(problem):
    points, directions, violations = problem
    n = len(points)
    ranks, crowding = rank_and_crowd(points, directions, violations)
    expected_ranks = brute_ranks(points, directions, violations)
    np.testing.assert_array_equal(ranks, expected_ranks)
    minimised = brute_minimise(points, directions)
    for k in range(expected_ranks.max() + 1 if n else 0):
        members = np.flatnonzero(expected_ranks == k)
        expected = brute_crowding(minimised[members])
        np.testing.assert_allclose(crowding[members], expected, rtol=1e-12)
    order = survival_order(points, directions, violations)
    assert sorted(order.tolist()) == list(range(n))
    keys = [(ranks[i], -crowding[i], i) for i in order]
    assert all(a < b for a, b in itertools.pairwise(keys))  # a strict total order
    # Scores: rank + position / front size, sorting them gives the order; a
    # prefix (`count`) and a single point's score agree with the full result.
    result = survival(points, directions, violations)
    sizes = np.bincount(ranks) if n else []
    position = {i: list(order[ranks[order] == ranks[i]]).index(i) for i in range(n)}
    expected_scores = [ranks[i] + position[i] / sizes[ranks[i]] for i in range(n)]
    np.testing.assert_allclose(result.scores, expected_scores, rtol=1e-12)
    assert np.argsort(result.scores, kind="stable").tolist() == order.tolist()
    for count in {0, 1, n // 2, n}:
        assert survival_order(points, directions, violations, count).tolist() == list(order[:count])
    for i in range(n):
        assert survival_score(points, directions, violations, i) == result.scores[i]


@FAST
@given(problems(max_points=16), st.randoms(use_true_random=False))
def test_incremental_ranks_equal_a_full_sort_whatever_the_arrival_order(problem, random):
    points, directions, violations = problem
    n = len(points)
    arrival = list(range(n))
    random.shuffle(arrival)  # completions out of creation order, as in async searches
    ranks = pareto.IncrementalRanks(directions)
    keys = np.arange(n) * 2 + 1  # any increasing integers
    present = np.zeros(n, dtype=bool)
    for index in arrival:
        present[index] = True
        rows = np.flatnonzero(present)
        subset = None if violations is None else violations[rows]
        expected = brute_ranks(points[rows], directions, subset)
        np.testing.assert_array_equal(ranks.update(keys[rows], points[rows], subset), expected)
        reference = survival(points[rows], directions, subset, count=2)
        got = ranks.survival(count=2)
        np.testing.assert_array_equal(got.order, reference.order)
        np.testing.assert_array_equal(got.scores, reference.scores)
        last = int(np.searchsorted(rows, index))
        assert ranks.score(last) == survival_score(points[rows], directions, subset, last)
    assert ranks.rebuilds == min(n, 1)  # only the first update sorts from scratch
    assert ranks.insertions == max(n - 1, 0)


def test_incremental_ranks_start_again_when_a_point_changes_or_leaves():
    ranks = pareto.IncrementalRanks(["min", "max"])
    points = np.array([[1.0, 3.0], [0.0, 4.0], [2.0, 5.0], [3.0, 3.0]])
    assert ranks.update([0, 1, 2], points[:3]).tolist() == [1, 0, 0]
    assert ranks.update([0, 1, 2, 3], points).tolist() == [1, 0, 0, 2]
    assert (ranks.rebuilds, ranks.insertions) == (1, 1)
    changed = points.copy()
    changed[1] = [2.0, 0.0]  # e.g. objectives normalised over the archive
    assert (
        ranks.update([0, 1, 2, 3], changed).tolist()
        == brute_ranks(changed, ["min", "max"], None).tolist()
    )
    assert ranks.rebuilds == 2
    assert ranks.update([0, 2, 3], changed[[0, 2, 3]]).tolist() == [0, 0, 1]  # one left
    assert ranks.rebuilds == 3
    assert ranks.update([0, 2, 3], changed[[0, 2, 3]], [0.0, 0.0, 2.0]).tolist() == [0, 0, 1]
    assert ranks.rebuilds == 4  # a violation changed
    with pytest.raises(ValueError, match="increasing order"):
        ranks.update([2, 1], points[:2])
    with pytest.raises(ValueError, match="one distinct integer per point"):
        ranks.update([0, 1, 2], points[:2])


def test_survival_order_hand_case():
    x = [[2, 3], [0, 4], [1, 2], [4, 0], [0, 4]]
    # front 0: [0,4] twice (inf), [4,0] (inf), [1,2] (2.0); front 1: [2,3]
    assert survival_order(x, "min").tolist() == [1, 3, 4, 2, 0]
    assert survival_order(x, "min", violations=[0, 0, 0, 1.0, 0]).tolist() == [1, 2, 4, 0, 3]


# --------------------------------------------------------------- hypervolume


@pytest.mark.parametrize(
    ("points", "directions", "reference", "expected"),
    [
        ([[1, 3], [2, 2], [3, 1]], "min", [4, 4], 3 * 1 + 2 * 1 + 1 * 1),
        ([[3, 1], [2, 2], [1, 3]], "max", [0, 0], 6.0),
        ([[5, 5], [4, 6], [2, 7], [7, 4]], "min", [10, 10], 38.0),
        ([[0.9, 2.0], [0.5, 1.0]], ["max", "min"], [0.0, 4.0], 0.9 * 2 + 0.5 * 3 - 0.5 * 2),
        ([[1, 1], [1, 1], [1, 1]], "min", [2, 2], 1.0),  # duplicates add nothing
        ([[1, 1], [2, 1.5]], "min", [2, 2], 1.0),  # touches the reference: nothing
        ([[2, 0]], "min", [2, 2], 0.0),
        ([[3, 0]], "min", [2, 2], 0.0),  # beyond the reference
        ([[1, 1], [NAN, 0], [0, INF]], "min", [2, 2], 1.0),  # missing values ignored
        ([[0, 1, 1], [1, 0, 1]], "min", [2, 2, 2], 2 + 2 - 1),
        ([[3.0], [1.0]], "min", [4.0], 3.0),
        ([], "min", [1.0, 1.0], 0.0),
    ],
)
def test_hypervolume_hand_cases(points, directions, reference, expected):
    points = np.asarray(points, dtype=float).reshape(-1, len(reference))
    assert hypervolume(points, directions, reference) == pytest.approx(expected, rel=1e-12)


def test_hypervolume_ignores_infeasible_points():
    x = [[1.0, 1.0], [0.0, 0.0]]
    assert hypervolume(x, "min", [2, 2]) == 4.0
    assert hypervolume(x, "min", [2, 2], violations=[0.0, 0.5]) == 1.0
    assert hypervolume(x, "min", [2, 2], violations=[1.0, NAN]) == 0.0


@FAST
@given(problems(max_points=7, constrained=False), st.data())
def test_hypervolume_matches_inclusion_exclusion(problem, data):
    points, directions, _ = problem
    m = points.shape[1]
    reference = data.draw(
        hnp.arrays(np.float64, (m,), elements=st.floats(-10, 10, width=32) | TIE_VALUES)
    )
    expected = exact_hypervolume(points, directions, reference)
    # The exact value is rational; moocore sums a few float products, so
    # relative error ~ 1e-15 per term: 1e-9 leaves a wide margin.
    assert hypervolume(points, directions, reference) == pytest.approx(
        float(expected), rel=1e-9, abs=1e-12
    )


@FAST
@given(
    st.integers(2, 3).flatmap(
        lambda m: st.tuples(
            hnp.arrays(
                np.float64, st.tuples(st.integers(0, 10), st.just(m)), elements=st.integers(0, 5)
            ),
            hnp.arrays(np.float64, (m,), elements=st.integers(0, 6)),
            st.lists(st.sampled_from(pareto.DIRECTIONS), min_size=m, max_size=m),
        )
    )
)
def test_hypervolume_matches_integer_grid_count(case):
    points, reference, directions = case
    # Integer coordinates: the dominated region is a union of unit cells, so
    # counting them is exact and the comparison needs no tolerance.
    assert hypervolume(points, directions, reference) == grid_hypervolume(
        points, directions, reference
    )


def test_hypervolume_rejects_bad_reference():
    with pytest.raises(ValueError, match="reference"):
        hypervolume([[1.0, 2.0]], "min", [3.0])
    with pytest.raises(ValueError, match="finite"):
        hypervolume([[1.0, 2.0]], "min", [3.0, NAN])
    with pytest.raises(ValueError, match="reference"):
        hypervolume([[1.0, 2.0]], "min", ["a", "b"])
