"""Is a classifier's accuracy clearly above chance? A one-sided exact binomial test.

A network that answers one class for every input has R = 0: perturbing its
weights cannot change a constant answer, so by flatness alone a collapsed
network looks ideal. A search must not rank such a network at all. The test:

    n        = number of validation examples, k = correctly classified
    p0       = majority-class rate of the validation labels
               (the accuracy of the best constant answer)
    p_value  = P(X >= k) for X ~ Binomial(n, p0)
    above chance  <=>  p_value <= significance       (default 0.001)

With 180 validation images and p0 = 0.11 (digits) this asks for at least 35
correct (19 %); with 1,000 CIFAR-10 images and p0 = 0.1, at least 131 (13 %).
The tail is summed exactly in log space (no SciPy).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from flatnas_tf.checks import check_integer, check_number

__all__ = ["DEFAULT_SIGNIFICANCE", "binomial_tail", "chance_p_value", "label_counts"]

#: Significance below which accuracy counts as clearly above chance.
DEFAULT_SIGNIFICANCE = 1e-3


def binomial_tail(successes: int, trials: int, probability: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, probability), exactly.

    Args:
        successes: k, in [0, trials].
        trials: n >= 0.
        probability: p in [0, 1].

    Returns:
        The upper tail probability, in [0, 1].

    Example:
    >>> round(binomial_tail(2, 2, 0.5), 4)
    0.25
    """
    successes = check_integer(successes, "successes", 0, check_integer(trials, "trials"))
    probability = check_number(probability, "probability", 0, 1)
    if successes == 0:
        return 1.0
    if probability == 0.0:
        return 0.0
    if probability == 1.0:
        return 1.0
    log_p, log_q = math.log(probability), math.log1p(-probability)
    terms = np.array(
        [
            math.lgamma(trials + 1)
            - math.lgamma(i + 1)
            - math.lgamma(trials - i + 1)
            + i * log_p
            + (trials - i) * log_q
            for i in range(successes, trials + 1)
        ]
    )
    peak = terms.max()
    return float(min(1.0, math.exp(peak) * np.exp(terms - peak).sum()))


def chance_p_value(accuracy: float, examples: int, majority_rate: float) -> float:
    """p-value of "accuracy is no better than always answering the majority class".

    Args:
        accuracy: Measured accuracy, a fraction.
        examples: Number of examples it was measured on.
        majority_rate: Frequency of the most common label among them.

    Returns:
        The one-sided exact binomial p-value (small = clearly above chance).

    Example:
    >>> chance_p_value(0.95, 180, 0.11) < 1e-3
    True
    """
    check_integer(examples, "examples", 1)
    if not math.isfinite(accuracy):
        return 1.0
    correct = min(examples, max(0, round(accuracy * examples)))
    return binomial_tail(correct, examples, majority_rate)


def label_counts(data) -> np.ndarray:
    """How many examples of each class a labelled dataset holds.

    Args:
        data: A tf.data.Dataset of `(x, y)` or `(x, y, w)` batches, or a tuple
            of arrays `(x, y)`. Labels may be integers or one-hot rows.

    Returns:
        An integer array, one count per class index (up to the largest seen).
    """
    if isinstance(data, tf.data.Dataset):
        labels = [np.asarray(batch[1]) for batch in data.as_numpy_iterator()]
    elif isinstance(data, (tuple, list)) and len(data) >= 2:
        labels = [np.asarray(data[1])]
    else:
        raise TypeError(
            "`data` must be a tf.data.Dataset of (x, y) batches or a tuple (x, y); received "
            f"{type(data).__name__}."
        )
    classes = []
    for batch in labels:
        if batch.ndim >= 2 and batch.shape[-1] > 1:  # one-hot or probabilities
            batch = batch.argmax(axis=-1)
        classes.append(np.round(batch.reshape(-1)).astype(np.int64))
    flat = np.concatenate(classes) if classes else np.zeros(0, np.int64)
    if flat.size == 0:
        raise ValueError("`data` holds no labelled example.")
    return np.bincount(flat)
