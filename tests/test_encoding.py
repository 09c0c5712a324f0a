"""Encoding configurations of a KerasTuner space as rows (flatnas_tf.tuners.encoding)."""

import keras_tuner
import numpy as np
import pytest

from flatnas_tf import FlatNASHyperModel
from flatnas_tf.tuners.encoding import ABSENT, SpaceEncoding


def _space():
    hp = keras_tuner.HyperParameters()
    hp.Int("depth", 1, 3)
    hp.Choice("width", [0.5, 0.25, 1.0])  # numeric: ordered by value
    hp.Choice("act", ["relu", "gelu", "swish"])
    hp.Boolean("bn")
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    hp.Float("drop", 0.0, 0.5, step=0.25)
    hp.Fixed("classes", 10)
    with hp.conditional_scope("depth", [2, 3]):
        hp.Choice("kernel", [3, 5])
    return hp


def test_each_kind_of_hyperparameter_gets_its_columns():
    encoding = SpaceEncoding(_space())
    assert encoding.columns == [
        "depth", "width", "act='relu'", "act='gelu'", "act='swish'", "bn=False", "bn=True",
        "lr", "drop", "kernel",
    ]  # fmt: skip
    values = {"depth": 3, "width": 0.5, "act": "swish", "bn": True, "lr": 1e-2, "drop": 0.25,
              "classes": 10, "kernel": 5}  # fmt: skip
    (row,) = encoding.encode([values])
    np.testing.assert_allclose(
        row,
        # depth 3 of 1..3; 0.5 is the middle of (0.25, 0.5, 1.0); one-hots; lr 1e-2 is 2/3 of
        # the way from 1e-4 to 1e-1 on a log scale; drop 0.25 of (0, 0.25, 0.5); kernel 5 of (3, 5)
        [1.0, 0.5, 0, 0, 1, 0, 1, 2 / 3, 0.5, 1.0],
        atol=1e-9,
    )
    assert encoding.width == len(encoding.columns) == 10


def test_an_inactive_or_missing_hyperparameter_is_absent_whatever_its_stale_value():
    encoding = SpaceEncoding(_space())
    base = {"depth": 1, "width": 1.0, "act": "relu", "bn": False, "lr": 1e-4, "drop": 0.0}
    rows = encoding.encode([{**base, "kernel": 3}, {**base, "kernel": 5}, base])
    assert rows[0, -1] == rows[1, -1] == rows[2, -1] == ABSENT  # depth 1: no kernel
    np.testing.assert_array_equal(rows[0], rows[1])
    active = encoding.encode([{**base, "depth": 2, "kernel": 3}])
    assert active[0, -1] == 0.0 and active[0, 0] == 0.5
    without_act = {k: v for k, v in base.items() if k != "act"}
    assert encoding.encode([without_act])[0, 2:5].tolist() == [0, 0, 0]  # a one-hot block: zeros


@pytest.mark.parametrize(
    "values, message",
    [
        ({"depth": 2, "colour": "red"}, "names ['colour'], which the space does not declare"),
        ({"depth": 2, "act": "tanh"}, "'tanh' is not a value of hyperparameter 'act'"),
    ],
)
def test_configurations_outside_the_space_are_refused(values, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SpaceEncoding(_space()).encode([values])


def test_the_default_space_encodes_every_random_candidate_in_range():
    hypermodel = FlatNASHyperModel((8, 8, 1), 10, width_multipliers=(0.25, 0.5))
    encoding = SpaceEncoding(hypermodel.random_hyperparameters(seed=0))
    rows = encoding.encode([hypermodel.random_hyperparameters(seed=s).values for s in range(30)])
    assert rows.shape == (30, encoding.width) and "width_mult" in encoding.columns
    assert np.all((rows == ABSENT) | ((rows >= 0) & (rows <= 1)))
    assert (rows == ABSENT).any()  # shallow stages leave layers inactive
    assert len({tuple(r) for r in rows}) == 30  # distinct candidates, distinct rows
