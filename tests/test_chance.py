"""Tests of the chance test against SciPy's binomial law and the documented thresholds."""

import math

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from flatnas_tf.robustness.chance import (
    DEFAULT_SIGNIFICANCE,
    binomial_tail,
    chance_p_value,
    label_counts,
)


@st.composite
def binomial_cases(draw):
    trials = draw(st.integers(0, 2000))
    successes = draw(st.integers(0, trials))
    probability = draw(st.one_of(st.sampled_from([0.0, 1.0, 0.5, 0.1, 0.11]), st.floats(0.0, 1.0)))
    return successes, trials, probability


@settings(max_examples=300, deadline=None)
@given(binomial_cases())
def test_binomial_tail_equals_scipy_survival_function(case):
    successes, trials, probability = case
    expected = stats.binom.sf(successes - 1, trials, probability)  # P(X >= k) = P(X > k - 1)
    tail = binomial_tail(successes, trials, probability)
    # Relative accuracy where the tail is representable; absolute below 1e-300.
    assert tail == pytest.approx(expected, rel=1e-9, abs=1e-300)


def _threshold(examples: int, majority_rate: float) -> int:
    """The fewest correct answers that the test calls clearly above chance."""
    return next(
        k
        for k in range(examples + 1)
        if chance_p_value(k / examples, examples, majority_rate) <= DEFAULT_SIGNIFICANCE
    )


@pytest.mark.parametrize(
    "examples, majority_rate, correct",
    [
        (180, 0.11, 35),  # digits' validation split (README, chance.py)
        (1000, 0.1, 131),  # 1,000 CIFAR-10 validation images
    ],
)
def test_documented_thresholds(examples, majority_rate, correct):
    assert _threshold(examples, majority_rate) == correct
    # The same thresholds from SciPy: the smallest k with P(X >= k) <= 0.001.
    assert stats.binom.sf(correct - 1, examples, majority_rate) <= DEFAULT_SIGNIFICANCE
    assert stats.binom.sf(correct - 2, examples, majority_rate) > DEFAULT_SIGNIFICANCE


def test_p_value_rounds_accuracy_to_a_count_of_examples():
    # 0.1944 * 180 = 34.99: rounded to 35 correct, not truncated to 34.
    assert chance_p_value(35 / 180 - 1e-6, 180, 0.11) == binomial_tail(35, 180, 0.11)
    assert chance_p_value(1.2, 10, 0.5) == binomial_tail(10, 10, 0.5)  # clipped to n
    assert chance_p_value(math.nan, 10, 0.5) == 1.0  # a failed measurement is not significant


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="successes"):
        binomial_tail(5, 4, 0.5)
    with pytest.raises(ValueError, match="probability"):
        binomial_tail(1, 4, 1.5)
    with pytest.raises(ValueError, match="examples"):
        chance_p_value(0.5, 0, 0.1)


def test_label_counts_of_sparse_and_one_hot_labels():
    y = np.array([0, 2, 2, 1, 2])
    np.testing.assert_array_equal(label_counts((np.zeros((5, 1)), y)), [1, 1, 3])
    one_hot = tf.data.Dataset.from_tensor_slices((np.zeros((5, 1)), np.eye(3)[y])).batch(2)
    np.testing.assert_array_equal(label_counts(one_hot), [1, 1, 3])
    with pytest.raises(TypeError, match="tf.data.Dataset"):
        label_counts(y)
    with pytest.raises(ValueError, match="no labelled example"):
        label_counts((np.zeros((0, 1)), np.zeros(0)))
