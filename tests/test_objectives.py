"""FlatNAS's objectives and constraints from raw figures (the oracle's and the reader's)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flatnas_tf.tuners import objectives

# (val_accuracy, robustness, params) per trial; NaN where a trial was not trained.
FIGURES = np.array(
    [[0.9, 10.0, 100.0], [0.6, 30.0, 50.0], [math.nan, math.nan, 9e9], [0.8, 20.0, 70.0]]
)
NAMES = ("val_accuracy", "robustness", "params")


def _read(names):
    return FIGURES[:, [NAMES.index(name) for name in names]]


def test_flatnas_objective_by_hand():
    measured = [0, 1, 3]
    norm = (100 * (1 - FIGURES[measured, 0])).mean() / FIGURES[measured, 1].mean()
    values = objectives.objective_values(_read, "flatnas", 0.25, population_size=3)
    assert values.shape == (4, 2)
    expected = 0.25 * 100 * (1 - FIGURES[:, 0]) + norm * 0.75 * FIGURES[:, 1]
    np.testing.assert_allclose(values[:, 0], expected)
    np.testing.assert_array_equal(values[:, 1], FIGURES[:, 2])
    assert math.isnan(values[2, 0])  # not trained: no objective
    # Fewer measured trials than a population: R is not rescaled.
    first = objectives.objective_values(_read, "flatnas", 0.25, population_size=4)
    np.testing.assert_allclose(first[:, 0], 0.25 * 100 * (1 - FIGURES[:, 0]) + 0.75 * FIGURES[:, 1])
    # alpha 1: the error alone.
    only = objectives.objective_values(_read, "flatnas", 1.0, population_size=3)
    np.testing.assert_allclose(only[:, 0], 100 * (1 - FIGURES[:, 0]))


def test_pareto_mode_reads_the_raw_figures():
    values = objectives.objective_values(_read, "pareto", 0.5, population_size=3)
    np.testing.assert_array_equal(values, FIGURES)
    assert objectives.mode_objectives("pareto") == [
        ("val_accuracy", "max"),
        ("robustness", "min"),
        ("params", "min"),
    ]


def test_alpha_norm_is_one_without_a_generation_or_without_flatness():
    assert objectives.alpha_norm(FIGURES[:, 0], FIGURES[:, 1], 4) == 1.0
    assert objectives.alpha_norm(FIGURES[:, 0], np.zeros(4), 1) == 1.0
    assert objectives.alpha_norm(np.array([0.75, 0.5]), np.array([10.0, 20.0]), 2) == 2.5


def test_constraints_and_checks():
    assert objectives.constraints(5e6, 0.01) == {"params": 5e6, "chance_p_value": 0.01}
    assert objectives.constraints(None, None) == {}
    assert objectives.check_mode_and_alpha("pareto", 1) == 1.0
    with pytest.raises(ValueError, match="`mode` must be one of"):
        objectives.mode_objectives("accuracy")
    with pytest.raises(ValueError, match="alpha"):
        objectives.check_mode_and_alpha("flatnas", 1.5)
