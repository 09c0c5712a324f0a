"""The surrogate's predictors and adaptive switching (flatnas_tf.tuners.predictors)."""

import doctest

import keras_tuner
import numpy as np
import pytest

from flatnas_tf.tuners import predictors
from flatnas_tf.tuners.predictors import POOL, AdaptivePredictor


def _space():
    hp = keras_tuner.HyperParameters()
    for i in range(4):
        hp.Int(f"x{i}", 0, 9)
    hp.Choice("act", ["relu", "gelu"])
    return hp


def _configurations(n, seed=0):
    rng = np.random.default_rng(seed)
    acts = rng.choice(["relu", "gelu"], size=n)
    return [{**{f"x{i}": int(rng.integers(0, 10)) for i in range(4)}, "act": str(a)} for a in acts]


def _smooth(configurations):
    """A target every member should rank: a smooth function of the ordered columns."""
    return [
        c["x0"] + 0.5 * c["x1"] ** 1.5 - 0.3 * c["x2"] + (c["act"] == "gelu")
        for c in configurations
    ]


def test_every_member_learns_a_smooth_target_and_switching_trusts_it():
    train, test = _configurations(60, seed=0), _configurations(40, seed=1)
    for name in POOL:
        predictor = AdaptivePredictor(_space(), pool=[name], folds=5).fit(train, _smooth(train))
        held_out = predictors.kendall_tau(predictor.predict(test), np.array(_smooth(test)))
        assert held_out > 0.6, name
    both = AdaptivePredictor(_space(), folds=5).fit(train, _smooth(train))
    assert both.selection.trustworthy and both.selection.tau > 0.6
    assert set(both.selection.members) == set(POOL) and both.selection.folds == 5


def test_a_target_of_pure_noise_is_not_trusted():
    train = _configurations(60)
    noise = np.random.default_rng(3).normal(size=60)
    selection = AdaptivePredictor(_space(), folds=5).fit(train, noise).selection
    assert not selection.trustworthy
    assert all(abs(score.mean) < 0.25 for score in selection.members.values())


class _Oracle:
    """A member that knows the target (x0 of the configuration)."""

    def __init__(self, seed):
        pass

    def fit(self, x, y):
        return self

    def predict(self, x):
        return x[:, 0]


class _Guess:
    """A member that predicts noise."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def fit(self, x, y):
        return self

    def predict(self, x):
        return self.rng.normal(size=len(x))


def test_switching_chooses_the_member_that_ranks_held_out_points_best(monkeypatch):
    monkeypatch.setitem(predictors._MEMBERS, "guess", _Guess)
    monkeypatch.setitem(predictors._MEMBERS, "oracle", _Oracle)
    train = _configurations(30)
    target = [c["x0"] for c in train]
    selection = (
        AdaptivePredictor(_space(), pool=["guess", "oracle"], folds=10).fit(train, target).selection
    )
    assert selection.winner == "oracle" and selection.folds == 10 and selection.points == 30
    oracle = selection.members["oracle"]
    assert oracle.taus == (1.0,) * 10 or min(oracle.taus) > 0.8  # ties in x0 lower tau-b a little
    assert oracle.score == pytest.approx(oracle.mean - oracle.sd)
    assert selection.members["guess"].score < oracle.score
    # Reversed pool order: the same winner (switching is by score, not by order).
    again = AdaptivePredictor(_space(), pool=["oracle", "guess"]).fit(train, target)
    assert again.selection.winner == "oracle"


def test_fewer_points_than_folds_keep_two_points_per_fold():
    train = _configurations(6)
    selection = AdaptivePredictor(_space(), folds=10).fit(train, _smooth(train)).selection
    assert selection.folds == 3 and all(len(s.taus) == 3 for s in selection.members.values())


def test_repeated_configurations_and_few_points_still_fit():
    # Four points in a 6-column space (too few for the RBF's linear tail) and a repeat with
    # another value, as two training seeds of one candidate give.
    train = _configurations(3) + _configurations(1)
    target = [0.9, 0.8, 0.7, 0.95]
    for name in POOL:
        predictor = AdaptivePredictor(_space(), pool=[name], folds=2).fit(train, target)
        assert np.all(np.isfinite(predictor.predict(_configurations(5, seed=9))))


def test_predictions_are_in_the_target_units_and_reproducible():
    train = _configurations(40)
    target = np.array(_smooth(train))
    first = AdaptivePredictor(_space(), seed=4).fit(train, target)
    second = AdaptivePredictor(_space(), seed=4).fit(train, target)
    test = _configurations(10, seed=2)
    np.testing.assert_array_equal(first.predict(test), second.predict(test))
    assert first.selection == second.selection
    scaled = AdaptivePredictor(_space(), pool=[first.selection.winner], seed=4)
    scaled.fit(train, 1000 * target + 5)
    alone = AdaptivePredictor(_space(), pool=[first.selection.winner], seed=4).fit(train, target)
    np.testing.assert_allclose(scaled.predict(test), 1000 * alone.predict(test) + 5, rtol=1e-6)


def test_a_member_fitted_alone_predicts_as_its_fit_after_switching():
    train, test = _configurations(40), _configurations(10, seed=2)
    target = np.array(_smooth(train))
    switched = AdaptivePredictor(_space(), seed=4).fit(train, target)
    alone = AdaptivePredictor(_space(), seed=4).fit_member(train, target, switched.selection.winner)
    assert alone.selection is None  # nothing was cross-validated
    np.testing.assert_allclose(alone.predict(test), switched.predict(test), rtol=1e-9)
    with pytest.raises(ValueError, match="`member` must be one of"):
        AdaptivePredictor(_space(), pool=["rbf"]).fit_member(train, target, "gp")
    with pytest.raises(ValueError, match="at least 4 finite"):
        AdaptivePredictor(_space()).fit_member(train[:3], target[:3], "rbf")


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: AdaptivePredictor(_space(), pool=["svm"]), "`pool` must name some of"),
        (lambda: AdaptivePredictor(_space(), pool=[]), "`pool` must name some of"),
        (lambda: AdaptivePredictor(_space(), folds=1), "`folds` must be an integer >= 2"),
        (lambda: AdaptivePredictor(_space()).fit(_configurations(3), [1, 2, 3]), "at least 4"),
        (lambda: AdaptivePredictor(_space()).fit(_configurations(5), [1, 2, 3, 4, np.nan]),
         "1 of them not finite"),
        (lambda: AdaptivePredictor(_space()).fit(_configurations(5), [1, 2]),
         "5 configurations but 2 target values"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_with_what_to_do(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_predict_before_fit_says_so():
    with pytest.raises(RuntimeError, match="Call `fit` before `predict`"):
        AdaptivePredictor(_space()).predict(_configurations(1))


def test_the_docstring_examples_hold():
    assert doctest.testmod(predictors).failed == 0
