"""FlatNAS's objectives and constraints, computed from a trial's raw figures.

What a FlatNAS search ranks on (the paper's definition; plain NumPy, so a
finished search re-ranks without TensorFlow or KerasTuner):

    mode "flatnas":
        err        = 100 - 100 * val_accuracy            (top-1 error, %)
        alpha_norm = mean(err) / mean(R) over the trials that have both
                     (1 while fewer than population_size have, or if mean R = 0)
        objective 1 = alpha * err + alpha_norm * (1 - alpha) * R     (min)
        objective 2 = params                                          (min)
        alpha = 1 is accuracy-only search.
    mode "pareto": val_accuracy (max), robustness (min), params (min).
    Both, as constraints `metric <= bound`:
        params         <= max_params
        chance_p_value <= chance_significance

`FlatNASOracle` ranks a running search with these functions and
`SearchResult` re-ranks a finished one with them, so both always agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from flatnas_tf.checks import check_choice, check_number
from flatnas_tf.figures import CHANCE_METRIC

__all__ = [
    "MODES",
    "alpha_norm",
    "check_mode_and_alpha",
    "robust_error",
    "constraints",
    "mode_objectives",
    "objective_values",
    "raw_figures",
]

MODES = ("flatnas", "pareto")

#: (name, direction) of the objectives of each mode.
_MODE_OBJECTIVES = {
    "flatnas": (("flatnas_objective", "min"), ("params", "min")),
    "pareto": (("val_accuracy", "max"), ("robustness", "min"), ("params", "min")),
}

#: The raw figures objective 1 of mode "flatnas" is computed from.
_FLATNAS_FIGURES = ("val_accuracy", "robustness", "params")


def check_mode_and_alpha(mode: str, alpha: float) -> float:
    """Checks a mode and an alpha.

    Args:
        mode: One of `MODES`.
        alpha: The error/flatness trade-off, in [0, 1].

    Returns:
        `alpha` as a float.

    Raises:
        ValueError: An unknown mode, or alpha outside [0, 1].
    """
    check_choice(mode, "mode", MODES)
    return check_number(alpha, "alpha", 0, 1)


def mode_objectives(mode: str) -> list[tuple[str, str]]:
    """(name, direction) of each objective of a mode.

    Example:
    >>> mode_objectives("flatnas")
    [('flatnas_objective', 'min'), ('params', 'min')]
    """
    check_mode_and_alpha(mode, 0.0)
    return list(_MODE_OBJECTIVES[mode])


def raw_figures(mode: str) -> list[str]:
    """The raw figures a mode's objectives are computed from.

    Example:
    >>> raw_figures("flatnas")
    ['val_accuracy', 'robustness', 'params']
    """
    if mode == "flatnas":
        return list(_FLATNAS_FIGURES)
    return [name for name, _ in mode_objectives(mode)]


def alpha_norm(accuracy: np.ndarray, robustness: np.ndarray, population_size: int) -> float:
    """mean(err) / mean(R) over the trials that have both; 1 until a generation has.

    Args:
        accuracy: Validation accuracy per trial, NaN where not measured.
        robustness: R per trial (percentage points), NaN where not measured.
        population_size: Trials that must have both before the ratio is used.

    Returns:
        The scale mode "flatnas" gives R against the error.

    Example:
    >>> alpha_norm(np.array([0.75, 0.5]), np.array([10.0, 20.0]), 2)
    2.5
    """
    errors = 100.0 * (1.0 - np.asarray(accuracy, dtype=np.float64))
    robustness = np.asarray(robustness, dtype=np.float64)
    measured = np.isfinite(errors) & np.isfinite(robustness)
    if measured.sum() < population_size or robustness[measured].mean() <= 0:
        return 1.0
    return float(errors[measured].mean() / robustness[measured].mean())


def objective_values(
    read: Callable[[Sequence[str]], np.ndarray],
    mode: str,
    alpha: float,
    population_size: int,
    norm: float | None = None,
) -> np.ndarray:
    """The objective matrix of a list of trials (module docstring).

    Args:
        read: Metric names -> their (n_trials, len(names)) matrix of raw
            values, NaN where missing (e.g. `NSGA2Oracle.metric_values` of
            the trials).
        mode: "flatnas" or "pareto".
        alpha: The error/flatness trade-off of mode "flatnas".
        population_size: Trials per generation (see `alpha_norm`).
        norm: The scale of R in objective 1; None: `alpha_norm` of the trials
            read (a surrogate passes the archive's, as its candidates are
            not trials).

    Returns:
        A float64 array (n_trials, number of objectives of the mode).

    Example:
    >>> figures = {"val_accuracy": [0.75], "robustness": [4.0], "params": [1e4]}
    >>> read = lambda names: np.array([figures[n] for n in names]).T
    >>> objective_values(read, "flatnas", 0.5, 5).tolist()  # alpha_norm 1: one trial
    [[14.5, 10000.0]]
    """
    if mode == "pareto":
        return np.asarray(read([name for name, _ in _MODE_OBJECTIVES[mode]]), dtype=np.float64)
    accuracy, robustness, params = np.asarray(read(_FLATNAS_FIGURES), dtype=np.float64).T
    if norm is None:
        norm = alpha_norm(accuracy, robustness, population_size)
    return np.stack([robust_error(accuracy, robustness, alpha, norm), params], axis=1)


def robust_error(
    accuracy: np.ndarray, robustness: np.ndarray, alpha: float, norm: float
) -> np.ndarray:
    """Objective 1 of mode "flatnas": alpha * err + norm * (1 - alpha) * R.

    Args:
        accuracy: Validation accuracy per trial (a fraction).
        robustness: R per trial (percentage points).
        alpha: The error/flatness trade-off, in [0, 1].
        norm: The scale of R against the error (`alpha_norm`).

    Returns:
        Objective 1 per trial (minimised), float64.

    Example:
    >>> robust_error(np.array([0.75]), np.array([4.0]), 0.5, 2.0).tolist()
    [16.5]
    """
    errors = 100.0 * (1.0 - np.asarray(accuracy, dtype=np.float64))
    return alpha * errors + norm * (1.0 - alpha) * np.asarray(robustness, dtype=np.float64)


def constraints(max_params: float | None, chance_significance: float | None) -> dict[str, float]:
    """The constraints `metric <= bound` of a FlatNAS search (None: no such constraint).

    Example:
    >>> constraints(5e6, None)
    {'params': 5000000.0}
    """
    bounds = {}
    if max_params is not None:
        bounds["params"] = float(max_params)
    if chance_significance is not None:
        bounds[CHANCE_METRIC] = float(chance_significance)
    return bounds
