"""Rank correlations with bootstrap intervals, and the partial rank correlation.

For paired observations (x_i, y_i), i = 1..n:

    Spearman rho   Pearson correlation of the ranks (average ranks for ties)
    Kendall tau-b  concordant minus discordant pairs over the tie-corrected
                   number of pairs (scipy.stats.kendalltau)
    partial rho    Spearman rho of x and y controlling for z: rank all three,
                   regress rank(x) and rank(y) on rank(z) by least squares, and
                   take the Pearson correlation of the two residuals
    bootstrap CI   percentile interval: resample the n triples with replacement
                   `resamples` times (seeded), recompute the statistic, take the
                   (1 - level) / 2 and (1 + level) / 2 quantiles of the finite
                   values (a resample whose ranks are constant gives NaN and is
                   left out)

With fewer than 3 observations, or a constant variable, every figure is NaN:
there is no correlation to estimate.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

MIN_OBSERVATIONS = 3


def _usable(*columns: np.ndarray) -> bool:
    return len(columns[0]) >= MIN_OBSERVATIONS and all(np.ptp(c) > 0 for c in columns)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (NaN when undefined)."""
    if not _usable(x, y):
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def kendall(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (NaN when undefined)."""
    if not _usable(x, y):
        return math.nan
    return float(stats.kendalltau(x, y).statistic)


def partial_spearman(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Spearman correlation of x and y with the (linear, rank-scale) effect of z removed."""
    if not _usable(x, y, z) or len(x) < MIN_OBSERVATIONS + 1:
        return math.nan
    rx, ry, rz = (stats.rankdata(c) for c in (x, y, z))
    design = np.column_stack([np.ones_like(rz), rz])

    def residual(r: np.ndarray) -> np.ndarray:
        coefficients, *_ = np.linalg.lstsq(design, r, rcond=None)
        return r - design @ coefficients

    ex, ey = residual(rx), residual(ry)
    if np.ptp(ex) <= 1e-12 or np.ptp(ey) <= 1e-12:
        return math.nan
    return float(np.corrcoef(ex, ey)[0, 1])


@dataclasses.dataclass(frozen=True)
class Correlation:
    """One statistic with its bootstrap interval.

    Attributes:
        value: The statistic on all observations.
        low: Lower end of the bootstrap interval.
        high: Upper end of the bootstrap interval.
        n: Number of observations.
    """

    value: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        if math.isnan(self.value):
            return "n/a"
        if math.isnan(self.low):
            return f"{self.value:+.2f} [no interval]"
        return f"{self.value:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def bootstrap(
    statistic: Callable[..., float],
    columns: Sequence[Sequence[float]],
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Correlation:
    """A statistic of paired columns with its percentile bootstrap interval.

    Args:
        statistic: Function of the columns (as arrays) returning a float.
        columns: Equal-length columns of observations (resampled together).
        resamples: Number of bootstrap resamples.
        level: Coverage of the interval.
        seed: Seed of the resampling.

    Returns:
        A `Correlation` (NaN throughout when the statistic is undefined).

    Example:
    >>> c = bootstrap(spearman, [[1, 2, 3, 4, 5], [2, 1, 4, 3, 5]], resamples=200)
    >>> round(c.value, 2), c.n
    (0.8, 5)
    """
    arrays = [np.asarray(c, dtype=np.float64) for c in columns]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"Columns must have equal lengths; received {[len(a) for a in arrays]}.")
    value = statistic(*arrays)
    if math.isnan(value):
        return Correlation(math.nan, math.nan, math.nan, n)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    values = np.array([statistic(*(a[d] for a in arrays)) for d in draws])
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return Correlation(value, math.nan, math.nan, n)
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return Correlation(value, float(low), float(high), n)
