"""Configurations of a KerasTuner space as rows of numbers, for a predictor to learn from.

A surrogate (`flatnas_tf.tuners.predictors`) needs each configuration as a
fixed-length vector. `SpaceEncoding` gives every tunable hyperparameter of a
space its columns, in the space's order, from the domain that mutation and
enumeration use (`flatnas_tf.tuners.space.domain`):

    ordered, finite     one column: index / (size - 1), in [0, 1]
      (Int, numeric Choice, Float with a step: depth {2, 3, 4} -> 0, 0.5, 1)
    continuous Float    one column: its cumulative probability in [0, 1]
                        (KerasTuner's `value_to_prob`, so a log-sampled
                        Float is encoded on a log scale)
    unordered           one column per value, one-hot
      (string Choice, `ordered=False` Choice, Boolean)
    absent              -1 in an ordered column (a whole range below the
                        lowest value), zeros in a one-hot block; a
                        hyperparameter is absent when its conditions do not
                        hold for the configuration (an inactive layer of a
                        shallower stage) or the configuration has no value
    single-valued       no column (Fixed, or a grid of one value)

So two configurations that differ only in an inactive hyperparameter's stale
value encode the same, and a distance between rows counts each ordered step
as a fraction of its range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import keras_tuner
import numpy as np

from flatnas_tf.tuners import space as space_walk

#: The value of an ordered column whose hyperparameter is absent.
ABSENT = -1.0


@dataclasses.dataclass(frozen=True)
class _Block:
    """The columns of one hyperparameter."""

    hp: Any
    domain: space_walk.Domain
    one_hot: bool

    @property
    def width(self) -> int:
        return self.domain.size if self.one_hot else 1

    def names(self) -> list[str]:
        if not self.one_hot:
            return [self.hp.name]
        return [f"{self.hp.name}={self.domain.value_at(i)!r}" for i in range(self.domain.size)]

    def encode(self, value: Any, row: np.ndarray) -> None:
        """Writes `value`'s columns into `row` (a view of this block's columns)."""
        if self.domain.size is None:  # continuous Float
            row[0] = float(self.hp.value_to_prob(value))
            return
        index = self.domain.index_of(value)
        if index is None:
            raise ValueError(
                f"{value!r} is not a value of hyperparameter {self.hp.name!r} "
                f"({self.hp!r}); pass configurations of this space."
            )
        if self.one_hot:
            row[index] = 1.0
        else:
            row[0] = index / (self.domain.size - 1)


class SpaceEncoding:
    """Rows of numbers for configurations of one space (see the module docstring).

    Args:
        hyperparameters: The space: a `keras_tuner.HyperParameters` (e.g.
            `oracle.get_space()`) or its `.space` list, parents before their
            conditional hyperparameters.

    Example:
    ```python
    hp = keras_tuner.HyperParameters()
    hp.Int("depth", 2, 4)
    hp.Choice("act", ["relu", "gelu"])
    encoding = SpaceEncoding(hp)
    encoding.columns                       # ['depth', "act='relu'", "act='gelu'"]
    encoding.encode([{"depth": 3, "act": "gelu"}]).tolist()   # [[0.5, 0.0, 1.0]]
    ```
    """

    def __init__(self, hyperparameters: keras_tuner.HyperParameters | Sequence[Any]):
        declared = getattr(hyperparameters, "space", hyperparameters)
        self._all_names = {hp.name for hp in declared}
        blocks = []
        for hp in declared:
            domain = space_walk.domain(hp)
            if domain.size == 1:
                continue
            blocks.append(_Block(hp, domain, one_hot=not domain.ordered))
        self._blocks = tuple(blocks)

    @property
    def columns(self) -> list[str]:
        """The name of each column ("name" or, one-hot, "name=value")."""
        return [name for block in self._blocks for name in block.names()]

    @property
    def width(self) -> int:
        """The number of columns."""
        return sum(block.width for block in self._blocks)

    def encode(self, configurations: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The rows of `configurations`.

        Args:
            configurations: Hyperparameter values per configuration (e.g.
                `TrialRecord.values` or `trial.hyperparameters.values`).

        Returns:
            A float64 array (len(configurations), width).

        Raises:
            ValueError: A name that is not a hyperparameter of the space, or a
                value that is not one of its hyperparameter's values.
        """
        rows = np.zeros((len(configurations), self.width))
        for i, values in enumerate(configurations):
            unknown = sorted(set(values) - self._all_names)
            if unknown:
                raise ValueError(
                    f"Configuration {i} names {unknown}, which the space does not declare "
                    f"(it declares {sorted(self._all_names)})."
                )
            start = 0
            for block in self._blocks:
                cells = rows[i, start : start + block.width]
                if block.hp.name in values and space_walk.is_active(block.hp, values):
                    block.encode(values[block.hp.name], cells)
                elif not block.one_hot:
                    cells[0] = ABSENT
                start += block.width
        return rows
