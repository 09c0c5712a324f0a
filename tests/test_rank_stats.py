import itertools
import math

import numpy as np
import pytest
import rank_stats


def _columns(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x, 0.6 * x + rng.normal(size=n)


# Deliberately naive references, independent of scipy (which rank_stats wraps).


def _average_ranks(values):
    """1 + the number of smaller values + half the number of other equal values."""
    return [1 + sum(v < u for v in values) + (sum(v == u for v in values) - 1) / 2 for u in values]


def _pearson(a, b):
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    covariance = sum((p - mean_a) * (q - mean_b) for p, q in zip(a, b, strict=True))
    variance_a = sum((p - mean_a) ** 2 for p in a)
    variance_b = sum((q - mean_b) ** 2 for q in b)
    return covariance / math.sqrt(variance_a * variance_b)


def _naive_spearman(x, y):
    return _pearson(_average_ranks(list(x)), _average_ranks(list(y)))


def _naive_kendall_tau_b(x, y):
    """(concordant - discordant) / sqrt((n0 - ties in x) (n0 - ties in y)), over all pairs."""
    concordant = discordant = ties_x = ties_y = pairs = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        pairs += 1
        dx, dy = x[i] - x[j], y[i] - y[j]
        ties_x += dx == 0
        ties_y += dy == 0
        if dx * dy > 0:
            concordant += 1
        elif dx * dy < 0:
            discordant += 1
    return (concordant - discordant) / math.sqrt((pairs - ties_x) * (pairs - ties_y))


def test_naive_references_give_textbook_values():
    assert _average_ranks([10, 20, 20, 30]) == [1, 2.5, 2.5, 4]
    # x = 1, 2, 2, 3 against y = 1, 3, 2, 2: pairs (C, D, tied in x, tied in y) = (3, 1, 1, 1).
    assert _naive_kendall_tau_b([1, 2, 2, 3], [1, 3, 2, 2]) == pytest.approx(2 / 5)


def test_spearman_and_kendall_match_naive_computations_with_ties():
    x, y = _columns(40)
    x, y = np.round(x, 1), np.round(y, 1)  # ties in both columns
    assert len(np.unique(x)) < len(x) and len(np.unique(y)) < len(y)
    assert rank_stats.spearman(x, y) == pytest.approx(_naive_spearman(x, y), abs=1e-12)
    assert rank_stats.kendall(x, y) == pytest.approx(_naive_kendall_tau_b(x, y), abs=1e-12)
    assert rank_stats.spearman(x, -y) == pytest.approx(-_naive_spearman(x, y), abs=1e-12)
    assert rank_stats.kendall(x, -y) == pytest.approx(-_naive_kendall_tau_b(x, y), abs=1e-12)


@pytest.mark.parametrize("statistic", [rank_stats.spearman, rank_stats.kendall])
def test_undefined_correlations_are_nan(statistic):
    assert math.isnan(statistic(np.array([1.0, 2.0]), np.array([3.0, 1.0])))
    assert math.isnan(statistic(np.ones(10), np.arange(10.0)))


def test_partial_correlation_removes_a_common_cause():
    rng = np.random.default_rng(1)
    z = rng.normal(size=300)
    x = z + 0.3 * rng.normal(size=300)
    y = z + 0.3 * rng.normal(size=300)
    assert rank_stats.spearman(x, y) > 0.8
    assert abs(rank_stats.partial_spearman(x, y, z)) < 0.15


def test_partial_correlation_keeps_a_direct_link():
    x, y = _columns(300, seed=2)
    z = np.random.default_rng(3).normal(size=300)  # unrelated control
    raw, partial = rank_stats.spearman(x, y), rank_stats.partial_spearman(x, y, z)
    assert raw > 0.4
    assert partial == pytest.approx(raw, abs=0.05)


def test_bootstrap_interval_brackets_the_value_and_narrows_with_more_data():
    small = rank_stats.bootstrap(rank_stats.spearman, _columns(15), resamples=500)
    large = rank_stats.bootstrap(rank_stats.spearman, _columns(400), resamples=500)
    for c in (small, large):
        assert c.low <= c.value <= c.high
    assert large.high - large.low < 0.5 * (small.high - small.low)
    assert large.low > 0  # a real correlation of about 0.5 is detected
    assert small.n == 15 and large.n == 400
    again = rank_stats.bootstrap(rank_stats.spearman, _columns(15), resamples=500)
    assert again == small  # seeded


def test_bootstrap_of_an_undefined_statistic_is_nan_and_prints_na():
    c = rank_stats.bootstrap(rank_stats.spearman, [[1.0, 2.0], [2.0, 1.0]])
    assert math.isnan(c.value) and math.isnan(c.low) and c.n == 2
    assert str(c) == "n/a"


def test_bootstrap_rejects_columns_of_different_lengths():
    with pytest.raises(ValueError, match="equal lengths"):
        rank_stats.bootstrap(rank_stats.spearman, [[1.0, 2.0, 3.0], [1.0, 2.0]])


def test_partial_correlation_with_the_control_equal_to_x_is_nan():
    x, y = _columns(50)
    assert math.isnan(rank_stats.partial_spearman(x, y, x))


def test_partial_correlation_matches_the_closed_form_on_ranks():
    rng = np.random.default_rng(4)
    z = rng.normal(size=60)
    x = np.round(z + rng.normal(size=60), 1)  # ties included
    y = 0.5 * z + rng.normal(size=60)
    r_xy, r_xz, r_yz = (rank_stats.spearman(a, b) for a, b in ((x, y), (x, z), (y, z)))
    expected = (r_xy - r_xz * r_yz) / np.sqrt((1 - r_xz**2) * (1 - r_yz**2))
    assert rank_stats.partial_spearman(x, y, z) == pytest.approx(expected, abs=1e-12)


def test_a_value_without_an_interval_prints_so():
    assert str(rank_stats.Correlation(0.4, math.nan, math.nan, 5)) == "+0.40 [no interval]"
