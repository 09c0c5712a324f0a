"""Walking a KerasTuner search space: configurations, sampling, crossover, mutation.

A configuration is the dict of *active* values of a space (a
`HyperParameters.space` list, a conditional hyperparameter after its parent,
as `RandomSearch` walks it). Every operator below builds its result by one
walk of the space in order (`resolve`): each active hyperparameter gets the
value the operator picks, or a random one when it picks `MISSING`; inactive
ones are dropped. So after crossover and mutation a hyperparameter that
becomes active takes a parent's value when a parent had one, else a random
value.

- `random_configuration`: every value drawn from its own distribution
  (`sample`, as `random_sample`).
- `uniform_crossover`: each value active in both parents from either with
  probability 1/2; one active in a single parent is inherited.
- `mutate`: each active value mutated with a probability (default 1 / the
  number of active tunable hyperparameters) by `mutate_value`:
    unordered values (string or `ordered=False` Choice, Boolean): redrawn
        among the other values;
    ordered values (Int, Float, numeric Choice, sorted by value) with at most
        `NEIGHBOUR_MAX_VALUES` values (NAS choices such as depth {2, 3, 4}):
        a step to a neighbouring value half of the time, else a redraw from
        the hyperparameter's own distribution; on finer grids a one-step move
        changes almost nothing (measured on ZDT/DTLZ with 101-value grids, it
        cost hypervolume against Optuna's redraw), so they are always redrawn;
    a Float without `step`: half of the time a Gaussian step of scale
        `CONTINUOUS_STEP` in its cumulative probability (1/10 of its range in
        its sampling scale), reflected into [0, 1); else a redraw.
- `configurations`: every configuration of a finite space, in order (none
  when a continuous Float is in it).

Randomness comes only from the `random.Random` passed in, in a fixed order of
calls, so a seeded caller gets the same configurations every run.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from keras_tuner.engine import hyperparameters as hp_types

from flatnas_tf import compat

__all__ = [
    "CONTINUOUS_STEP",
    "MISSING",
    "NEIGHBOUR_MAX_VALUES",
    "Domain",
    "configurations",
    "copy_configuration",
    "domain",
    "is_active",
    "mutate",
    "mutate_value",
    "random_configuration",
    "resolve",
    "sample",
    "uniform_crossover",
]

#: Scale of a neighbouring step for a Float without `step`, in probability.
CONTINUOUS_STEP = 0.1
#: Ordered domains up to this size mutate by neighbour steps half of the time.
NEIGHBOUR_MAX_VALUES = 10
#: The largest probability below 1 (prob_to_value expects [0, 1)).
_BELOW_ONE = math.nextafter(1.0, 0.0)


class _Missing:
    """Marks "no value to inherit" in a resolution walk."""

    def __repr__(self) -> str:
        return "MISSING"


#: What a `resolve` pick returns for "draw a random value".
MISSING = _Missing()

#: A space: KerasTuner's `HyperParameters.space`, parents before their conditionals.
Space = Sequence[hp_types.HyperParameter]


def is_active(hp: hp_types.HyperParameter, values: Mapping[str, Any]) -> bool:
    """Whether all of `hp`'s conditions hold for the (active) `values`."""
    return all(condition.is_active(values) for condition in hp.conditions)


@dataclasses.dataclass(frozen=True)
class Domain:
    """The values of one hyperparameter: a finite indexed grid or a continuum."""

    size: int | None  # None for a continuous Float
    ordered: bool
    value_at: Callable[[int], Any]
    index_of: Callable[[Any], int | None]


def _list_domain(values: Sequence[Any], ordered: bool) -> Domain:
    values = list(values)

    def index_of(value: Any) -> int | None:
        try:
            return values.index(value)
        except ValueError:
            return None

    return Domain(len(values), ordered, values.__getitem__, index_of)


def _step_domain(hp: hp_types.Int | hp_types.Float) -> Domain:
    """KerasTuner's own grid of a numeric hyperparameter with a `step`."""
    size = compat.grid_size(hp)  # the grid `random_sample` draws from
    low, high, step = hp.min_value, hp.max_value, hp.step

    def value_at(index: int) -> Any:
        return hp.prob_to_value((index + 0.5) / size)  # the centre of bucket `index`

    def index_of(value: Any) -> int | None:
        try:
            if hp.sampling == "linear":
                position = (value - low) / step
            elif hp.sampling == "log":
                position = math.log(value / low) / math.log(step)
            else:  # reverse_log
                position = math.log((high + low - value) / low) / math.log(step)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        return min(max(round(position), 0), size - 1)

    return Domain(size, True, value_at, index_of)


def domain(hp: hp_types.HyperParameter) -> Domain:
    """The values of a hyperparameter, as mutation and enumeration see them.

    Raises:
        ValueError: A hyperparameter type other than Int, Float, Choice,
            Boolean and Fixed.
    """
    if isinstance(hp, hp_types.Fixed):
        return _list_domain([hp.value], False)
    if isinstance(hp, hp_types.Boolean):
        return _list_domain([False, True], False)
    if isinstance(hp, hp_types.Choice):
        if hp.ordered:
            return _list_domain(sorted(hp.values), True)
        return _list_domain(hp.values, False)
    if isinstance(hp, (hp_types.Int, hp_types.Float)) and hp.step is not None:
        return _step_domain(hp)
    if isinstance(hp, hp_types.Int):  # no step: every integer of the range

        def index_of(value: Any) -> int | None:
            return value - hp.min_value if hp.min_value <= value <= hp.max_value else None

        size = hp.max_value - hp.min_value + 1
        return Domain(size, True, lambda index: hp.min_value + index, index_of)
    if isinstance(hp, hp_types.Float):
        return Domain(None, True, lambda index: None, lambda value: None)
    raise ValueError(
        f"NSGA2Oracle supports Int, Float, Choice, Boolean and Fixed hyperparameters; "
        f"received {hp!r}."
    )


def sample(hp: hp_types.HyperParameter, rng: random.Random) -> Any:
    """A draw from the hyperparameter's own distribution (as `random_sample`)."""
    return hp.prob_to_value(rng.random())


def mutate_value(hp: hp_types.HyperParameter, value: Any, rng: random.Random) -> Any:
    """A mutated value of `hp` (see the module docstring for the rules)."""
    values = domain(hp)
    if values.size == 1:
        return value
    if values.size is None:  # continuous Float
        if rng.random() < 0.5:
            try:
                prob = hp.value_to_prob(value) + rng.gauss(0.0, CONTINUOUS_STEP)
            except (TypeError, ValueError, ZeroDivisionError):
                return sample(hp, rng)
            prob = abs(prob)
            prob = 2.0 - prob if prob > 1.0 else prob
            return hp.prob_to_value(min(max(prob, 0.0), _BELOW_ONE))
        return sample(hp, rng)
    index = values.index_of(value)
    if index is None:  # not a value of this hyperparameter (the space changed)
        return sample(hp, rng)
    if values.ordered:
        if values.size <= NEIGHBOUR_MAX_VALUES and rng.random() < 0.5:
            if index == 0:
                return values.value_at(1)
            if index == values.size - 1:
                return values.value_at(values.size - 2)
            return values.value_at(index + rng.choice((-1, 1)))
        candidate = value
        for _ in range(8):
            candidate = sample(hp, rng)
            if candidate != value:
                break
        return candidate
    other = rng.randrange(values.size - 1)
    return values.value_at(other + 1 if other >= index else other)


def resolve(space: Space, pick: Callable[[hp_types.HyperParameter], Any], rng) -> dict[str, Any]:
    """Walks the space in order: active hyperparameters get `pick(hp)` (or random).

    Args:
        space: The hyperparameters, parents before their conditionals.
        pick: The value of an active hyperparameter, or `MISSING` for a
            random one.
        rng: The random stream.

    Returns:
        The configuration: name -> value of every active hyperparameter.
    """
    values: dict[str, Any] = {}
    for hp in space:
        if hp.name in values or not is_active(hp, values):
            continue
        value = pick(hp)
        values[hp.name] = sample(hp, rng) if value is MISSING else value
    return values


def random_configuration(space: Space, rng: random.Random) -> dict[str, Any]:
    """A configuration with every value drawn from its own distribution.

    Example:
    >>> import keras_tuner
    >>> hp = keras_tuner.HyperParameters()
    >>> _ = hp.Choice("depth", [2, 3, 4])
    >>> random_configuration(hp.space, random.Random(0))
    {'depth': 4}
    """
    return resolve(space, lambda hp: MISSING, rng)


def uniform_crossover(
    space: Space, values1: Mapping[str, Any], values2: Mapping[str, Any], rng: random.Random
) -> dict[str, Any]:
    """Uniform crossover over the values active in both parents, then re-resolution.

    Args:
        space: The hyperparameters.
        values1: The first parent's configuration.
        values2: The second parent's configuration.
        rng: The random stream.

    Returns:
        The child's configuration.
    """

    def pick(hp: hp_types.HyperParameter) -> Any:
        in1, in2 = hp.name in values1, hp.name in values2
        if in1 and in2:
            return values1[hp.name] if rng.random() < 0.5 else values2[hp.name]
        if in1:
            return values1[hp.name]
        return values2[hp.name] if in2 else MISSING

    return resolve(space, pick, rng)


def copy_configuration(space: Space, values: Mapping[str, Any], rng: random.Random) -> dict:
    """A parent's configuration re-resolved in the space (a child without crossover)."""
    return resolve(space, lambda hp: values.get(hp.name, MISSING), rng)


def mutate(
    space: Space,
    child: Mapping[str, Any],
    values1: Mapping[str, Any],
    values2: Mapping[str, Any],
    probability: float | None,
    rng: random.Random,
) -> dict[str, Any]:
    """Mutates each active value of `child` with `probability`, then re-resolves.

    Args:
        space: The hyperparameters.
        child: The configuration to mutate.
        values1: The first parent's configuration (values for hyperparameters
            that mutation makes active).
        values2: The second parent's configuration.
        probability: Per active hyperparameter, in [0, 1]; None: 1 / the
            number of active tunable hyperparameters of `child`.
        rng: The random stream.

    Returns:
        The mutated configuration.
    """
    if probability is None:
        tunable = sum(1 for hp in space if hp.name in child and domain(hp).size != 1)
        probability = 1.0 / tunable if tunable else 0.0

    def pick(hp: hp_types.HyperParameter) -> Any:
        for source in (child, values1, values2):
            if hp.name in source:
                value = source[hp.name]
                break
        else:
            value = sample(hp, rng)
        return mutate_value(hp, value, rng) if rng.random() < probability else value

    return resolve(space, pick, rng)


def configurations(space: Space) -> Iterator[dict[str, Any]]:
    """Every configuration of a finite space, in order (none if a continuous Float is in it).

    Example:
    >>> import keras_tuner
    >>> hp = keras_tuner.HyperParameters()
    >>> _ = hp.Boolean("bias")
    >>> list(configurations(hp.space))
    [{'bias': False}, {'bias': True}]
    """
    space = list(space)
    if any(domain(hp).size is None for hp in space):
        return iter(())
    return _walk(space, 0, {})


def _walk(space: list, start: int, values: dict) -> Iterator[dict]:
    if start == len(space):
        yield dict(values)
        return
    hp = space[start]
    if hp.name in values or not is_active(hp, values):
        yield from _walk(space, start + 1, values)
        return
    hp_domain = domain(hp)
    for index in range(hp_domain.size):
        values[hp.name] = hp_domain.value_at(index)
        yield from _walk(space, start + 1, values)
    del values[hp.name]
