"""Predicting a figure of a configuration from trained ones: the surrogate of a search.

FlatNAS's code (CNAS, after NSGANetV2) refits an accuracy predictor on the
archive of trained candidates at every iteration and chooses it by "adaptive
switching". `AdaptivePredictor` is that predictor over any KerasTuner space:

    encoding     configurations -> rows (`flatnas_tf.tuners.encoding`)
    pool         "rbf"    scipy's RBFInterpolator: cubic kernel, linear tail
                          (NSGANetV2's RBF), smoothing 1e-8 so repeated
                          configurations are allowed; fitted in the affine
                          span of the rows, so that few rows or collinear
                          one-hot columns still fit a linear tail
                 "gp"     scikit-learn's GaussianProcessRegressor: constant x
                          Matern 5/2 (one length scale) + white noise, its
                          hyperparameters fitted by maximum likelihood once,
                          on at most 100 of the points (seeded), then
                          conditioned on all of them; the folds keep that
                          kernel (the likelihood is O(n^3) per step: fitted
                          on 300 points in every fold, 2.7 s a fit)
                 "trees"  scikit-learn's RandomForestRegressor, 100 trees
                          (NSGANetV2's ensemble of CARTs), a third of the
                          columns tried per split (Breiman's regression
                          default): as good here, and 1.8x faster than all
                 "mlp"    scikit-learn's MLPRegressor, one hidden layer of 64,
                          L-BFGS, L2 1e-3
                 every member learns the target standardised (mean 0, s.d. 1)
    switching    k-fold cross-validation (k = `folds`, at most n // 2 so that
                 every held-out fold has two points to rank; folds seeded):
                 per member and fold, Kendall's tau-b between the predicted
                 and the held-out values (0 when either is constant: no
                 ranking); score = mean - s.d. of the k taus; the best score
                 wins (the first in pool order on a tie), its fit on every
                 point predicting

The target is one figure (validation accuracy, R, ...): predicting the raw
figures rather than an objective lets a search re-rank under any alpha
without refitting. The cross-validated taus are kept (`selection`), and
`Selection.trustworthy` says whether the winner ranks well enough to trust.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from scipy import stats

from flatnas_tf.checks import check_choice, check_integer
from flatnas_tf.tuners.encoding import SpaceEncoding

#: The members of the pool, in the order ties are broken.
POOL = ("rbf", "gp", "trees", "mlp")
#: Cross-validated tau (mean - s.d.) below which a predictor is not trusted.
POOR_TAU = 0.3
#: The GP learns its kernel's hyperparameters on at most this many points.
KERNEL_POINTS = 100


class Regressor(Protocol):
    """What a pool member is: fitted on rows and a standardised target, then predicts."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> Regressor: ...

    def predict(self, x: np.ndarray) -> np.ndarray: ...


class _RBF:
    """Cubic RBF interpolation with a linear tail, in the affine span of the rows.

    The linear tail needs the rows to span their columns (more distinct rows
    than columns, no collinear one-hot blocks); the rows are therefore
    expressed in an orthonormal basis of the span they do have (pairwise
    distances between them unchanged), where the tail always fits.
    """

    def __init__(self, seed: int):
        del seed  # deterministic
        self._centre = self._basis = self._interpolator = None
        self._constant = 0.0

    def fit(self, x: np.ndarray, y: np.ndarray) -> _RBF:
        from scipy.interpolate import RBFInterpolator

        self._centre = x.mean(axis=0)
        _, singular, directions = np.linalg.svd(x - self._centre, full_matrices=False)
        keep = singular > 1e-9 * max(float(singular.max(initial=0.0)), 1.0)
        self._basis = directions[keep].T
        self._constant = float(np.mean(y))
        if self._basis.shape[1]:
            z = (x - self._centre) @ self._basis
            self._interpolator = RBFInterpolator(z, y, kernel="cubic", degree=1, smoothing=1e-8)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self._interpolator is None:  # every row the same: the mean
            return np.full(len(x), self._constant)
        return self._interpolator((x - self._centre) @ self._basis)


class _GP:
    """A Gaussian process whose kernel is learnt on at most `KERNEL_POINTS` points.

    The kernel's hyperparameters are fitted by maximum likelihood on a seeded
    subsample (the likelihood costs O(n^3) per step: 2.7 s at 300 points),
    then the process is conditioned on every point with that kernel.
    """

    def __init__(self, seed: int, kernel=None):
        self.seed, self._kernel, self._model = seed, kernel, None

    def fit(self, x: np.ndarray, y: np.ndarray) -> _GP:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        kernel = self._kernel
        if kernel is None:
            start = ConstantKernel() * Matern(nu=2.5) + WhiteKernel(noise_level=0.1)
            rows = np.arange(len(y))
            if len(y) > KERNEL_POINTS:
                rows = np.random.default_rng(self.seed).choice(rows, KERNEL_POINTS, replace=False)
            learnt = GaussianProcessRegressor(start, random_state=self.seed)
            kernel = learnt.fit(x[rows], y[rows]).kernel_
        self._kernel = kernel
        self._model = GaussianProcessRegressor(kernel, optimizer=None, random_state=self.seed)
        self._model.fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._model.predict(x)

    def in_fold(self) -> _GP:
        """An unfitted GP keeping this one's learnt kernel (for cross-validation folds)."""
        return _GP(self.seed, kernel=self._kernel)


def _trees(seed: int):
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=100, max_features=1 / 3, random_state=seed)


def _mlp(seed: int):
    from sklearn.neural_network import MLPRegressor

    return MLPRegressor(
        hidden_layer_sizes=(64,), solver="lbfgs", alpha=1e-3, max_iter=500, random_state=seed
    )


_MEMBERS = {"rbf": _RBF, "gp": _GP, "trees": _trees, "mlp": _mlp}


def make_member(name: str, seed: int = 0) -> Regressor:
    """A new, unfitted pool member.

    Args:
        name: One of `POOL`.
        seed: Seed of its randomness (trees, MLP initialisation).

    Returns:
        An object with `fit(x, y)` and `predict(x)`.
    """
    if name not in _MEMBERS:
        raise ValueError(f"Unknown predictor {name!r}; choose from {list(POOL)}.")
    return _MEMBERS[name](seed)


def kendall_tau(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Kendall's tau-b of two sequences; 0 when either is constant (no ranking).

    Example:
    >>> round(kendall_tau(np.array([1.0, 2.0, 3.0]), np.array([10.0, 30.0, 20.0])), 3)
    0.333
    """
    if np.ptp(predicted) == 0 or np.ptp(actual) == 0:
        return 0.0
    return float(stats.kendalltau(predicted, actual).statistic)


@dataclasses.dataclass(frozen=True)
class MemberScore:
    """One pool member's cross-validation: Kendall tau per fold and its summary.

    Attributes:
        taus: Tau on each held-out fold.
        mean: Mean of `taus`.
        sd: Standard deviation of `taus` (ddof 0, as CNAS).
        score: mean - sd, what switching ranks by.
    """

    taus: tuple[float, ...]
    mean: float
    sd: float
    score: float


@dataclasses.dataclass(frozen=True)
class Selection:
    """What adaptive switching measured and chose.

    Attributes:
        winner: The chosen member's name.
        members: Each member's `MemberScore`, in pool order.
        folds: The number of folds.
        points: The number of training points.
    """

    winner: str
    members: dict[str, MemberScore]
    folds: int
    points: int

    @property
    def tau(self) -> float:
        """The winner's mean cross-validated tau."""
        return self.members[self.winner].mean

    @property
    def score(self) -> float:
        """The winner's score: mean - s.d. of its cross-validated taus."""
        return self.members[self.winner].score

    @property
    def trustworthy(self) -> bool:
        """Whether the winner's score reaches `POOR_TAU`."""
        return self.score >= POOR_TAU


def _standardised(y: np.ndarray) -> tuple[np.ndarray, float, float]:
    mean, sd = float(np.mean(y)), float(np.std(y))
    sd = sd if sd > 0 else 1.0
    return (y - mean) / sd, mean, sd


def _fit(name: str, x: np.ndarray, y: np.ndarray, seed: int, full=None) -> Regressor:
    """Member `name` fitted on (x, y).

    In a cross-validation fold, `full` is the member's fit on every point; a
    member that keeps something of it (`in_fold`: the GP its kernel) starts
    from that.
    """
    in_fold = getattr(full, "in_fold", None)
    model = in_fold() if in_fold is not None else make_member(name, seed)
    with warnings.catch_warnings():  # an MLP or GP that stops early still predicts
        warnings.filterwarnings("ignore", module="sklearn")
        return model.fit(x, y)


class AdaptivePredictor:
    """A figure of a configuration predicted by the best of a pool (module docstring).

    Args:
        hyperparameters: The space (`keras_tuner.HyperParameters` or its
            `.space` list) the configurations come from.
        pool: Names of the members to choose from, of `POOL`.
        folds: Cross-validation folds (at most n // 2 are used).
        seed: Seed of the folds and of the members' randomness.

    Example:
    ```python
    predictor = AdaptivePredictor(oracle.get_space())
    predictor.fit([t.values for t in trials], [t.figures["val_accuracy"] for t in trials])
    predictor.selection.winner, predictor.selection.tau
    predictor.predict([candidate_values])
    ```
    """

    def __init__(
        self,
        hyperparameters: Any,
        pool: Sequence[str] = POOL,
        folds: int = 10,
        seed: int = 0,
    ):
        pool = tuple(pool)
        unknown = [name for name in pool if name not in _MEMBERS]
        if unknown or not pool:
            raise ValueError(f"`pool` must name some of {list(POOL)}; received {list(pool)}.")
        folds = check_integer(folds, "folds", 2)
        self.encoding = SpaceEncoding(hyperparameters)
        self.pool, self.folds, self.seed = pool, folds, int(seed)
        self.selection: Selection | None = None
        self._model: Regressor | None = None
        self._scale = (0.0, 1.0)

    def fit(self, configurations: Sequence[Mapping[str, Any]], y: Sequence[float]):
        """Cross-validates every member, keeps the winner refitted on all points.

        Args:
            configurations: Hyperparameter values of the trained candidates.
            y: The figure of each, finite.

        Returns:
            self, with `selection` set.

        Raises:
            ValueError: Fewer than 4 points, lengths that differ, a non-finite
                target, or a configuration outside the space.
        """
        x, target, mean, sd = self._training_rows(configurations, y)
        folds = min(self.folds, len(y) // 2)
        order = np.random.default_rng(self.seed).permutation(len(y))
        parts = np.array_split(order, folds)
        members, fitted = {}, {}
        for name in self.pool:
            fitted[name] = _fit(name, x, target, self.seed)  # the winner's model, if it wins
            taus = []
            for held_out in parts:
                kept = np.setdiff1d(order, held_out)
                model = _fit(name, x[kept], target[kept], self.seed, full=fitted[name])
                taus.append(kendall_tau(model.predict(x[held_out]), target[held_out]))
            mean_tau, sd_tau = float(np.mean(taus)), float(np.std(taus))
            members[name] = MemberScore(tuple(taus), mean_tau, sd_tau, mean_tau - sd_tau)
        winner = max(self.pool, key=lambda n: (members[n].score, -self.pool.index(n)))
        self._model = fitted[winner]
        self._scale = (mean, sd)
        self.selection = Selection(winner, members, folds, len(target))
        return self

    def _training_rows(self, configurations, y) -> tuple[np.ndarray, np.ndarray, float, float]:
        """The encoded rows and the standardised target (with its mean and s.d.), checked."""
        y = np.asarray(y, dtype=np.float64)
        if len(configurations) != len(y):
            raise ValueError(
                f"{len(configurations)} configurations but {len(y)} target values; "
                "pass one value per configuration."
            )
        if len(y) < 4 or not np.all(np.isfinite(y)):
            raise ValueError(
                f"`fit` needs at least 4 finite target values; received {len(y)} values, "
                f"{int(np.sum(~np.isfinite(y)))} of them not finite."
            )
        target, mean, sd = _standardised(y)
        return self.encoding.encode(configurations), target, mean, sd

    def fit_member(
        self, configurations: Sequence[Mapping[str, Any]], y: Sequence[float], member: str
    ) -> AdaptivePredictor:
        """Fits `member` alone on every point: no cross-validation, `selection` stays None.

        What a search does between two switchings (`SurrogateSettings.reselect_growth`):
        the member an earlier switching chose, refitted on the grown archive.

        Args:
            configurations: Hyperparameter values of the trained candidates.
            y: The figure of each, finite.
            member: A name of the pool.

        Returns:
            self, ready to predict.

        Raises:
            ValueError: `member` is not in the pool, or what `fit` refuses.
        """
        check_choice(member, "member", self.pool)
        x, target, mean, sd = self._training_rows(configurations, y)
        self._model = _fit(member, x, target, self.seed)
        self._scale = (mean, sd)
        self.selection = None
        return self

    def predict(self, configurations: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The predicted figure of each configuration.

        Args:
            configurations: Hyperparameter values of this space.

        Returns:
            A float64 array, one value per configuration, in the target's units.

        Raises:
            RuntimeError: Called before `fit`.
        """
        if self._model is None:
            raise RuntimeError("Call `fit` before `predict`.")
        mean, sd = self._scale
        predicted = self._model.predict(self.encoding.encode(configurations))
        return np.asarray(predicted, dtype=np.float64).reshape(-1) * sd + mean
