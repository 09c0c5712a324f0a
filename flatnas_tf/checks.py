"""Argument checks of the public API: one rule, one error message.

A count is an integer; a figure is a finite number; neither is a bool, though
Python's True is the int 1 (`samples=True` is a mistake, not one sample).
NumPy scalars count as numbers. A failed check raises `ValueError` with one
line that names the argument, says what it must be and repeats what it got:

    `samples` must be an integer >= 1; received samples=0.
    `alpha` must be a number in [0, 1]; received alpha=1.5.
    `max_params` must be a finite number > 0 or None; received max_params=-1.
    `schedule` must be one of ('cosine', 'constant'); received schedule='step'.

Each check returns the value as a plain int or float (None when allowed), or
the choice.
Numbers are told by Python's `numbers` ABCs, which NumPy's scalar types
register with, so this module needs no NumPy (the CLI checks its options
before anything heavy is imported).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

__all__ = ["check_choice", "check_integer", "check_number", "is_number"]


def is_number(value: Any) -> bool:
    """Whether `value` is an int or float (NumPy's included), and not a bool.

    Example:
    >>> import numpy as np
    >>> is_number(0.5), is_number(np.int64(3)), is_number(True), is_number("1")
    (True, True, False, False)
    """
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """`value`, if it is one of `choices`.

    Args:
        value: The argument.
        name: Its name, for the message.
        choices: The values allowed.

    Returns:
        The value.

    Raises:
        ValueError: Otherwise.

    Example:
    >>> check_choice("cosine", "schedule", ("cosine", "constant"))
    'cosine'
    >>> check_choice("step", "schedule", ("cosine", "constant"))
    Traceback (most recent call last):
    ...
    ValueError: `schedule` must be one of ('cosine', 'constant'); received schedule='step'.
    """
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}; received {name}={value!r}.")
    return value


def check_integer(
    value: Any,
    name: str,
    minimum: int = 0,
    maximum: int | None = None,
    optional: bool = False,
) -> int | None:
    """`value` as an int, if it is an integer in [`minimum`, `maximum`].

    Args:
        value: The argument.
        name: Its name, for the message.
        minimum: The smallest value allowed.
        maximum: The largest value allowed (None: no limit).
        optional: Whether None is allowed (and returned).

    Returns:
        The value as an int (None if it is None and `optional`).

    Raises:
        ValueError: Otherwise.

    Example:
    >>> check_integer(3, "epochs", 1)
    3
    """
    if optional and value is None:
        return None
    integer = is_number(value) and isinstance(value, numbers.Integral)
    if not integer or value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        allowed = f"an integer {bounds}" + (" or None" if optional else "")
        raise ValueError(f"`{name}` must be {allowed}; received {name}={value!r}.")
    return int(value)


def check_number(
    value: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> float | None:
    """`value` as a float, if it is a finite number within the bounds given.

    Args:
        value: The argument.
        name: Its name, for the message.
        low: Lower bound (None: none).
        high: Upper bound (None: none).
        low_open: Whether `low` itself is excluded.
        high_open: Whether `high` itself is excluded.
        optional: Whether None is allowed (and returned).

    Returns:
        The value as a float (None if it is None and `optional`).

    Raises:
        ValueError: Otherwise.

    Example:
    >>> check_number(0.5, "alpha", 0, 1)
    0.5
    >>> check_number(0.0, "rho", 0, low_open=True)
    Traceback (most recent call last):
    ...
    ValueError: `rho` must be a finite number > 0; received rho=0.0.
    """
    if optional and value is None:
        return None
    inside = is_number(value) and math.isfinite(value)
    if inside and low is not None:
        inside = value > low if low_open else value >= low
    if inside and high is not None:
        inside = value < high if high_open else value <= high
    if not inside:
        if low is not None and high is not None:
            left, right = "(["[not low_open], ")]"[not high_open]
            allowed = f"a number in {left}{low:g}, {high:g}{right}"
        elif low is not None:
            allowed = f"a finite number {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            allowed = f"a finite number {'<' if high_open else '<='} {high:g}"
        else:
            allowed = "a finite number"
        allowed += " or None" if optional else ""
        raise ValueError(f"`{name}` must be {allowed}; received {name}={value!r}.")
    return float(value)
