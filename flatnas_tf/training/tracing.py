"""What compiling a training step costs, and what it leaves behind.

A trial of a from-scratch search trains a new architecture, so it pays for
tracing and instantiating its training step once; on a CPU and a small data
set that fixed cost is a large part of the trial. Three things make it smaller
or stop it from accumulating over a search:

1. One trace instead of two. Keras creates the optimizer's variables and the
   compiled loss and metrics inside the first trace of the train function
   when no distribution strategy is set; a `tf.function` that creates
   variables is traced a second time. `build_training_state` creates them
   beforehand from the data's shapes (Keras' own symbolic build, which it
   runs itself only under a strategy), so the step is traced once.
2. Grappler. TensorFlow's graph optimiser runs when a function is first
   called. On a CPU, for the small many-node graphs of a search's candidates,
   it costs seconds per trial and made SAM steps slower, not faster (measured
   in `benchmarks/trial_overhead.py`). `graph_optimizer` switches it off or on
   for a block of code and restores the previous setting after.
3. Gradient registry leftovers. Each trace of a step that calls
   `tf.distribute`'s all-reduce (Keras' optimizers do) registers a
   `CustomGradient-<n>` entry in TensorFlow's process-wide gradient registry
   that is never removed; it holds the traced graph alive, so memory grows by
   the size of a candidate's graph with every trial. `release_custom_gradients`
   removes the entries registered inside a block once the block's functions
   are no longer traced (running a traced function never reads them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf

from flatnas_tf import compat

__all__ = ["build_training_state", "graph_optimizer", "release_custom_gradients"]

_CUSTOM_GRADIENT_PREFIX = "CustomGradient-"


def _symbolic_batch(data, batch_size: int | None):
    """Shapes and dtypes of one batch of `data`, without reading any data."""
    if isinstance(data, tf.data.Dataset):
        return data.element_spec
    arrays = data if isinstance(data, (tuple, list)) else (data,)
    return tuple(
        None
        if array is None
        else tf.TensorSpec(
            (batch_size,) + np.shape(array)[1:], tf.as_dtype(np.asarray(array).dtype)
        )
        for array in arrays
    )


def build_training_state(model: keras.Model, data, batch_size: int | None = None) -> bool:
    """Creates a compiled model's optimizer, loss and metric state before `fit`.

    After this, the first `fit` traces the train step once instead of twice.
    Nothing is computed and no data is read: only the shapes of `data` are
    used.

    Args:
        model: A compiled Keras model (built or not).
        data: The training data as `fit` receives it: a tf.data.Dataset of
            batches, or an array / tuple of arrays (x, y).
        batch_size: Batch size when `data` is arrays (None: unknown).

    Returns:
        True if the state was built here; False when there was nothing to do
        (not compiled, already built) or the model cannot be built symbolically
        (then `fit` builds it, tracing twice).

    Example:
    ```python
    build_training_state(model, train_ds)
    model.fit(train_ds, epochs=3)        # one trace of the train step
    ```
    """
    if not getattr(model, "compiled", False):
        return False
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        return False
    try:
        with model.distribute_strategy.scope():
            return compat.symbolic_build(model, _symbolic_batch(data, batch_size))
    except (ValueError, TypeError, RuntimeError):
        return False


@contextlib.contextmanager
def graph_optimizer(enabled: bool) -> Iterator[None]:
    """Switches Grappler (TensorFlow's graph optimiser) on or off within a block.

    Functions first called inside the block are instantiated with the
    setting; the previous setting is restored on exit. Call a function only
    inside blocks with the same setting, or it is instantiated again.

    Args:
        enabled: False disables Grappler's meta-optimizer.

    Example:
    ```python
    with graph_optimizer(False):
        model.fit(train_ds, epochs=3)
    ```
    """
    previous = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer")
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": not enabled})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": bool(previous)})


def _custom_gradient_names() -> set[str]:
    registry = compat.custom_gradient_registry()
    return {name for name in registry if name.startswith(_CUSTOM_GRADIENT_PREFIX)}


@contextlib.contextmanager
def release_custom_gradients() -> Iterator[None]:
    """Removes the custom-gradient registrations made by tracing within a block.

    Use it around a unit of work whose traced functions are not traced again
    afterwards (a trial: its model is discarded). Functions traced inside the
    block keep working; a later trace registers fresh entries.

    Example:
    ```python
    with release_custom_gradients():
        model.fit(train_ds, epochs=3)
    ```
    """
    before = _custom_gradient_names()
    try:
        yield
    finally:
        registry = compat.custom_gradient_registry()
        for name in _custom_gradient_names() - before:
            registry.pop(name, None)
