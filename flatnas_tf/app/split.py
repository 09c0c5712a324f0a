"""`DataSplit`: which data set a run uses and how it is split, as one typed, TensorFlow-free value.

A run's training, validation and test images follow from four settings: the
data set spec, its TFDS directory, the fraction held out for validation and
the split's seed (`flatnas_tf.load_dataset`). run.json, an export's
manifest.json, a corrupted set's description and a supernet's state record
them under these names (`to_settings`), and every command that measures a
model on "the same test images" compares or reloads them from there
(`from_settings`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flatnas_tf.checks import check_number
from flatnas_tf.defaults import VALIDATION_FRACTION

__all__ = ["DataSplit"]


@dataclasses.dataclass(frozen=True)
class DataSplit:
    """A data set and its split.

    Attributes:
        data: "digits", "npz:PATH", "folder:PATH" or a TFDS name.
        seed: Seed of the split.
        validation_fraction: Fraction of the training images held out, in (0, 1).
        data_dir: TFDS data directory (None: TFDS's default).

    Example:
    >>> DataSplit("digits", seed=3).to_settings()["validation_fraction"]
    0.1
    """

    data: str = "digits"
    seed: int = 0
    validation_fraction: float = VALIDATION_FRACTION
    data_dir: str | None = None

    #: What identifies the images of each split (`data_dir` only says where they are).
    IDENTIFYING = ("data", "seed", "validation_fraction")

    def __post_init__(self) -> None:
        if not isinstance(self.data, str) or not self.data:
            raise ValueError(f"`data` must be a data set spec; received {self.data!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"`seed` must be an integer; received {self.seed!r}.")
        fraction = check_number(
            self.validation_fraction, "validation_fraction", 0, 1, low_open=True, high_open=True
        )
        object.__setattr__(self, "validation_fraction", fraction)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **overrides: Any) -> DataSplit:
        """The split that run.json or a manifest records; `overrides` not None win.

        Missing keys take the defaults (settings written before a key existed).
        """
        values = {
            "data": settings.get("data", cls.data),
            "seed": settings.get("seed", cls.seed),
            "validation_fraction": settings.get("validation_fraction", VALIDATION_FRACTION),
            "data_dir": settings.get("data_dir"),
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    def to_settings(self) -> dict[str, Any]:
        """The four settings under the names run.json and manifests use."""
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The settings that fix which images are in which split (not where they are read)."""
        return {key: getattr(self, key) for key in self.IDENTIFYING}

    def load(self):
        """The data set, split (`flatnas_tf.load_dataset`; imports TensorFlow).

        Raises:
            ValueError: The spec names no data set this version reads.
        """
        from flatnas_tf.data import load_dataset

        return load_dataset(self.data, self.data_dir, self.validation_fraction, seed=self.seed)
