"""Every option of the `flatnas-tf` commands that more than one command takes, declared once.

A shared option is a decorator here (`BATCH_SIZE`, `data_options`,
`training_options`, ...); a command stacks the ones it takes. The defaults of
the training options are `TrainingConfig`'s, and their choices the library's
(`defaults.SCHEDULES`, `defaults.SAM_CHOICES`), so that a default or a choice is
written in one place. `--config FILE` fills any option from TOML.
"""

from __future__ import annotations

import math
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import click

from flatnas_tf import defaults
from flatnas_tf.app import evaluation
from flatnas_tf.app.split import DataSplit
from flatnas_tf.defaults import DEPTHS, MAX_DEPTH, MAX_WIDTH, SEVERITIES
from flatnas_tf.training.config import TrainingConfig

# Python 3.11+ ships tomllib; 3.10 uses the tomli backport it was taken from.
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: --ood's named sources; any other value is a corrupted set's directory.
OOD_CHOICES = ("none", *evaluation.OOD_CHOICES)
#: The defaults of the training options (`TrainingConfig`, the one place they are set).
TRAINING = TrainingConfig()


class FiniteFloatRange(click.FloatRange):
    """`click.FloatRange` that also refuses nan and inf (which pass every range check)."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class OODSource(click.Path):
    """--ood: one of `OOD_CHOICES`, or an existing directory: a corrupted set (read when used)."""

    def __init__(self) -> None:
        super().__init__(exists=True, file_okay=False)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(OOD_CHOICES) + "|DIR]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if value in OOD_CHOICES:
            return value
        return super().convert(value, param, ctx)


def _read_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Loads a TOML config whose keys mirror the command's options (flags win)."""
    if value is None:
        return
    try:
        data = tomllib.loads(pathlib.Path(value).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise click.BadParameter(f"cannot read {value}: {error}", ctx, param) from None
    section = data.get(ctx.info_name, data)
    if not isinstance(section, dict):
        raise click.BadParameter(f"[{ctx.info_name}] in {value} must be a table.", ctx, param)
    allowed = {p.name for p in ctx.command.params if p.name not in ("config", "help")}
    values = {key.replace("-", "_"): v for key, v in section.items() if key != ctx.info_name}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise click.BadParameter(
            f"unknown keys {', '.join(unknown)} in {value}; allowed: {', '.join(sorted(allowed))}.",
            ctx,
            param,
        )
    ctx.default_map = {**(ctx.default_map or {}), **values}


def _values(value: str | list | float, kind: type) -> list:
    """The values of a comma-separated option, or of its TOML list or number; [] if not `kind`."""
    if isinstance(value, str):
        value = value.split(",")
    elif not isinstance(value, list):
        value = [value]
    if any(isinstance(v, bool) or (kind is int and isinstance(v, float)) for v in value):
        return []  # TOML's true or 1.5 is no depth
    try:
        return [kind(v) for v in value]
    except (TypeError, ValueError):
        return []


def widths(value: str | list | float) -> list[float]:
    """--widths: comma-separated width multipliers in (0, MAX_WIDTH] (a TOML list too)."""
    parsed = _values(value, float)
    if not parsed or any(not 0 < w <= MAX_WIDTH for w in parsed):
        raise click.BadParameter(
            f"{value!r}: pass comma-separated numbers in (0, {MAX_WIDTH:g}], e.g. 0.5,0.75,1.0.",
            param_hint="--widths",
        )
    return parsed


def depths(help: str) -> Callable:  # noqa: A002 (Click's name)
    """--depths: comma-separated stage depths in 1..MAX_DEPTH (a TOML list too); None if not given.

    Not given, the command's default applies (the default space's, or a
    supernet's own for a search through it).
    """

    def parse(ctx: click.Context, param: click.Parameter, value: str | list | int | None):
        if value is None:
            return None
        parsed = _values(value, int)
        if not parsed or any(not 1 <= d <= MAX_DEPTH for d in parsed):
            raise click.BadParameter(
                f"{value!r}: pass comma-separated stage depths in 1..{MAX_DEPTH}, e.g. 1,2.",
                param_hint="--depths",
            )
        return sorted(set(parsed))

    default = ",".join(str(d) for d in DEPTHS)
    return click.option(
        "--depths",
        type=click.UNPROCESSED,  # a TOML list reaches `parse` as a list
        default=None,
        callback=parse,
        help=f"{help} [default: {default}]",
    )


def severities(value: str) -> tuple[int, ...]:
    """--severities: comma-separated severities of `SEVERITIES` (1..5)."""
    try:
        parsed = tuple(int(v) for v in value.split(","))
    except ValueError:
        parsed = ()
    if not parsed or any(v not in SEVERITIES for v in parsed):
        raise click.BadParameter(
            f"{value!r}: pass severities 1..5 separated by commas, e.g. 1,2,3,4,5.",
            param_hint="--severities",
        )
    return parsed


def stack(*options: Callable) -> Callable:
    """One decorator applying `options` in the order written (the first is the first listed)."""

    def decorate(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


CONFIG = click.option(
    "--config",
    type=click.Path(dir_okay=False),
    callback=_read_config,
    is_eager=True,
    expose_value=False,
    help="TOML file whose keys mirror these options (a table named after the command, "
    "or top-level keys); flags given on the command line override it.",
)
BATCH_SIZE = click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=defaults.BATCH_SIZE,
    help="Examples per training step.",
)
VERBOSE = click.option("--verbose", is_flag=True, help="Show Keras' progress bars.")
DATA_DIR = click.option("--data-dir", default=None, help="TFDS data directory.")
FROST_DIR = click.option(
    "--frost-dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Directory of the frost photographs (frost1.png ... frost5.jpg of Hendrycks' "
    "robustness code) for the built-in frost corruption; default $FLATNAS_FROST_DIR, "
    "else frost is skipped.",
)
DETERMINISTIC = click.option(
    "--deterministic",
    is_flag=True,
    help="TensorFlow op determinism: one seed gives one result on one machine.",
)
LEARNING_RATE_TYPE = FiniteFloatRange(min=0, min_open=True)


def seed(help: str, default: int | None = 0) -> Callable:  # noqa: A002 (Click's name)
    """--seed, an integer; what it seeds differs per command."""
    return click.option("--seed", type=int, default=default, help=help)


#: --data, --data-dir and --validation-fraction: the data set and its split.
data_options = stack(
    click.option(
        "--data",
        default=DataSplit.data,
        help="Data set: digits (bundled, offline), npz:PATH, folder:PATH or a TFDS "
        "name such as cifar10.",
    ),
    DATA_DIR,
    click.option(
        "--validation-fraction",
        type=FiniteFloatRange(0, 1, min_open=True, max_open=True),
        default=defaults.VALIDATION_FRACTION,
        help="Fraction of the training data held out for validation.",
    ),
)


def training_options(inherited: bool, learning_rate_help: str) -> Callable:
    """How a candidate trains: one option per `TrainingConfig` field.

    Args:
        inherited: Defaults of None, which mean "the search's" (`train`),
            instead of `TrainingConfig`'s (`search`).
        learning_rate_help: What --learning-rate's default is (its default
            is None either way: it depends on other options).
    """

    def default(name: str) -> Any:
        return None if inherited else getattr(TRAINING, name)

    def also(name: str) -> str:
        return f" Default: the search's, else {getattr(TRAINING, name)}." if inherited else ""

    return stack(
        click.option(
            "--learning-rate",
            type=LEARNING_RATE_TYPE,
            default=None,
            help=f"Peak SGD learning rate; {learning_rate_help}",
        ),
        click.option(
            "--momentum",
            type=FiniteFloatRange(min=0),
            default=default("momentum"),
            help="SGD momentum." + also("momentum"),
        ),
        click.option(
            "--weight-decay",
            type=FiniteFloatRange(min=0),
            default=default("weight_decay"),
            help="Decoupled weight decay of the SGD optimizer (0: none)." + also("weight_decay"),
        ),
        click.option(
            "--label-smoothing",
            type=FiniteFloatRange(0, 1, max_open=True),
            default=default("label_smoothing"),
            help="Label smoothing of the cross-entropy." + also("label_smoothing"),
        ),
        click.option(
            "--schedule",
            type=click.Choice(defaults.SCHEDULES),
            default=default("schedule"),
            help="Learning rate over a trial: linear warm-up then cosine decay to 0 (from-scratch "
            "trials), or constant (FlatNAS's fine-tuning regime)." + also("schedule"),
        ),
        click.option(
            "--warmup",
            type=FiniteFloatRange(0, 1, max_open=True),
            default=default("warmup"),
            help="Fraction of a trial's steps spent warming the learning rate up (cosine)."
            + also("warmup"),
        ),
        click.option(
            "--sam",
            type=click.Choice(defaults.SAM_CHOICES),
            default=default("sam"),
            help="Training: adaptive SAM, SAM, or off (plain SGD: the accuracy-only baseline, "
            "same schedule and measurement)." + also("sam"),
        ),
        click.option(
            "--rho",
            type=FiniteFloatRange(min=0),
            default=default("rho"),
            help="SAM/ASAM radius. ASAM 0.5 suits training from scratch (ASAM's CIFAR value); "
            "FlatNAS fine-tunes pretrained weights with 2.0. SAM: ~0.05." + also("rho"),
        ),
    )


def ood(default: str, help: str) -> Callable:  # noqa: A002 (Click's name)
    """--ood: where corrupted test images come from (`OODSource`)."""
    return click.option("--ood", type=OODSource(), default=default, help=help)


def trial(help: str) -> Callable:  # noqa: A002 (Click's name)
    """--trial ID: one trial of a search."""
    return click.option("--trial", "trial_id", default=None, help=help)
