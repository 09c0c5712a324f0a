"""Tests for flatnas_tf.checks: what is accepted, and the one-line messages."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from flatnas_tf.checks import check_choice, check_integer, check_number, is_number


def test_numbers_exclude_bools_and_strings():
    assert is_number(1) and is_number(0.5) and is_number(np.float32(2)) and is_number(np.int8(3))
    assert not any(is_number(v) for v in (True, np.bool_(False), "1", None, [1]))


@pytest.mark.parametrize(
    ("check", "args", "message"),
    [
        (
            check_integer,
            (0, "samples", 1),
            "`samples` must be an integer >= 1; received samples=0.",
        ),
        (
            check_integer,
            (True, "epochs", 1),
            "`epochs` must be an integer >= 1; received epochs=True",
        ),
        (check_integer, (2.0, "epochs", 1), "received epochs=2.0."),
        (check_integer, (6, "severity", 0, 5), "`severity` must be an integer in 0..5; received"),
        (check_integer, ("3", "every", 1, None, True), "`every` must be an integer >= 1 or None;"),
        (
            check_number,
            (1.5, "alpha", 0, 1),
            "`alpha` must be a number in [0, 1]; received alpha=1.5.",
        ),
        (check_number, (0, "rho", 0), "OK"),
        (check_number, (math.inf, "lr", 0), "`lr` must be a finite number >= 0; received lr=inf."),
        (check_number, (math.nan, "x"), "`x` must be a finite number; received x=nan."),
        (check_number, (False, "alpha", 0, 1), "received alpha=False."),
        (
            check_choice,
            ("linear", "schedule", ["cosine", "constant"]),
            "`schedule` must be one of ('cosine', 'constant'); received schedule='linear'.",
        ),
        (check_choice, ("sam", "sam", ("asam", "sam", "off")), "OK"),
    ],
)
def test_bad_values_get_one_line_that_names_them(check, args, message):
    if message == "OK":  # the bound itself is allowed unless it is open
        assert check(*args) == args[0]
        return
    with pytest.raises(ValueError) as error:
        check(*args)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"low_open": True, "high_open": True}, "`p` must be a number in (0, 1); received p=1.0."),
        ({"low_open": True}, "`p` must be a number in (0, 1]; received p=0.0."),
        ({"high_open": True, "optional": True}, "`p` must be a number in [0, 1) or None;"),
    ],
)
def test_open_bounds_are_written_as_intervals(kwargs, message):
    value = 0.0 if kwargs.get("low_open") and not kwargs.get("high_open") else 1.0
    with pytest.raises(ValueError, match=re.escape(message)):
        check_number(value, "p", 0, 1, **kwargs)
    with pytest.raises(ValueError, match=re.escape("`m` must be a finite number > 0 or None;")):
        check_number(-1, "m", 0, low_open=True, optional=True)


def test_good_values_come_back_as_plain_python_numbers():
    assert check_integer(np.int64(4), "n", 1) == 4 and type(check_integer(np.int64(4), "n")) is int
    assert check_integer(None, "n", optional=True) is None
    assert check_integer(5, "severity", 0, 5) == 5
    assert check_number(np.float32(0.25), "a", 0, 1) == 0.25
    assert type(check_number(1, "a")) is float
    assert check_number(None, "a", optional=True) is None
    assert check_number(0.0, "warmup", 0, 1, high_open=True) == 0.0
