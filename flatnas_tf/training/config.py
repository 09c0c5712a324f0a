"""`TrainingConfig`: how a candidate is trained, as one typed, TensorFlow-free value.

Every setting of a candidate's training that a user chooses lives here, once:
the optimizer (peak learning rate, momentum, decoupled weight decay), the
loss (label smoothing), the step (SAM, ASAM or plain SGD, and the radius
rho) and the schedule (cosine with a linear warm-up, or constant). The
library's TensorFlow objects are derived from it, never set up beside it:

    TrainingConfig.compile_settings()  -> TrainingSettings (space.hypermodel):
                                          optimizer, loss and step each
                                          candidate is compiled with
    TrainingConfig.regime()            -> TrainingRegime (training.regime):
                                          schedule and warm-up over its steps

run.json, an export's manifest.json and the CLI's options record the fields
under their own names (`to_settings` / `from_settings`). A record written
before momentum, weight decay and label smoothing were recorded reads them
back as the values every candidate was then trained with (`UNRECORDED`),
whatever the defaults become. Defaults and choices come from
`flatnas_tf.defaults`, checks from `flatnas_tf.checks`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from flatnas_tf.checks import check_choice, check_number
from flatnas_tf.defaults import (
    LABEL_SMOOTHING,
    LEARNING_RATE,
    MOMENTUM,
    RHO,
    SAM_CHOICES,
    SCHEDULES,
    WARMUP,
    WEIGHT_DECAY,
)

if TYPE_CHECKING:
    from flatnas_tf.space.hypermodel import TrainingSettings
    from flatnas_tf.training.regime import TrainingRegime

__all__ = ["RANGES", "UNRECORDED", "TrainingConfig", "TrainingConfigError"]

#: The range of each numeric training setting (`checks.check_number`'s bounds); the
#: supernet's settings share those of the optimizer, the loss and the warm-up.
RANGES = {
    "learning_rate": {"low": 0, "low_open": True},
    "momentum": {"low": 0},
    "weight_decay": {"low": 0},
    "label_smoothing": {"low": 0, "high": 1, "high_open": True},
    "rho": {"low": 0},
    "warmup": {"low": 0, "high": 1, "high_open": True},
}

#: Settings that run.json files and manifests did not record before they became
#: options (`--momentum`, `--weight-decay`, `--label-smoothing`), with the values
#: every candidate was trained with until then.
UNRECORDED = {"momentum": 0.9, "weight_decay": 5e-4, "label_smoothing": 0.1}


class TrainingConfigError(ValueError):
    """A training setting out of range or not among its choices."""


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How candidates are trained: the one place a training setting is chosen.

    Attributes:
        learning_rate: Peak SGD learning rate, > 0 (from random weights; a
            search through a supernet fine-tunes with
            `FINE_TUNE_LEARNING_RATE` unless told otherwise).
        momentum: SGD momentum, >= 0.
        weight_decay: Decoupled weight decay of the SGD optimizer, >= 0.
        label_smoothing: Label smoothing of the cross-entropy, in [0, 1).
        sam: "asam" (adaptive SAM), "sam", or "off" (plain SGD, the
            accuracy-only baseline).
        rho: SAM/ASAM radius, >= 0.
        schedule: "cosine" (linear warm-up, cosine decay) or "constant".
        warmup: Fraction of a trial's steps spent warming up, in [0, 1).

    Example:
    >>> config = TrainingConfig(sam="sam", rho=0.05).override(rho=None, learning_rate=0.2)
    >>> config.rho, config.learning_rate, config.momentum
    (0.05, 0.2, 0.9)
    """

    learning_rate: float = LEARNING_RATE
    momentum: float = MOMENTUM
    weight_decay: float = WEIGHT_DECAY
    label_smoothing: float = LABEL_SMOOTHING
    sam: str = SAM_CHOICES[0]
    rho: float = RHO
    schedule: str = SCHEDULES[0]
    warmup: float = WARMUP

    #: Peak learning rate of a candidate fine-tuning inherited weights
    #: (benchmarks/fine_tune_lr.py: 0.1 lost 4 points on the CIFAR subset where 0.01 gained 1).
    FINE_TUNE_LEARNING_RATE: ClassVar[float] = 0.01

    def __post_init__(self) -> None:
        for name, choices in (("sam", SAM_CHOICES), ("schedule", SCHEDULES)):
            try:
                check_choice(getattr(self, name), name, choices)
            except ValueError as error:
                raise TrainingConfigError(f"training setting {error}") from None
        for name, bounds in RANGES.items():
            try:
                value = check_number(getattr(self, name), name, **bounds)
            except ValueError as error:
                raise TrainingConfigError(f"training setting {error}") from None
            object.__setattr__(self, name, value)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The field names: the training options and their run.json keys."""
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> TrainingConfig:
        """The training a run.json or manifest records.

        A key it lacks takes the value it had before it was recorded
        (`UNRECORDED`), else its default.

        Raises:
            TrainingConfigError: A recorded value is out of range.
        """
        recorded = {**UNRECORDED, **settings}
        return cls(**{name: recorded[name] for name in cls.names() if name in recorded})

    def override(self, **values: Any) -> TrainingConfig:
        """A copy with the values that are not None (options the user gave)."""
        return dataclasses.replace(self, **{k: v for k, v in values.items() if v is not None})

    def to_settings(self) -> dict[str, Any]:
        """The run.json entries (and a manifest's "training")."""
        return dataclasses.asdict(self)

    def compile_settings(self, jit_compile: bool | str = "auto") -> TrainingSettings:
        """What the candidates are compiled with (imports TensorFlow).

        Args:
            jit_compile: Passed to `compile`.
        """
        from flatnas_tf.space.hypermodel import TrainingSettings

        return TrainingSettings(
            learning_rate=self.learning_rate,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            label_smoothing=self.label_smoothing,
            sam=self.sam != "off",
            rho=self.rho,
            adaptive=self.sam == "asam",
            jit_compile=jit_compile,
        )

    def regime(self) -> TrainingRegime:
        """How a candidate is trained over its steps (imports TensorFlow)."""
        from flatnas_tf.training.regime import TrainingRegime

        return TrainingRegime(schedule=self.schedule, warmup=self.warmup)
