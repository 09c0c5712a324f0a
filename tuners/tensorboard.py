"""TensorBoard for a search: HParams with every raw figure of a trial as a metric.

With a `keras.callbacks.TensorBoard(log_dir)` among `search`'s callbacks
(`flatnas-tf search --tensorboard DIR`):

- before the first trial, `log_dir` gets the HParams experiment: every
  hyperparameter of the space (KerasTuner's conversion, domains included) and
  every figure of `flatnas_tf.figures.FIGURES` as a metric, so the HParams
  dashboard lists them as columns from the start;
- KerasTuner gives each trial its own `log_dir/<trial id>/execution0` with the
  trial's hyperparameters (its session) and Keras' training curves under
  `train/` (the validation data is measured once, after training, not per
  epoch);
- after the trial is measured, its figures (validation accuracy, R, loss gap,
  parameters, ...) are written into that directory as scalars of the same
  names, which is where HParams reads a session's metrics.

TensorBoard is an optional extra (`pip install "flatnas-tf[tensorboard]"`);
TensorFlow no longer installs it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from importlib.util import find_spec

import keras
import keras_tuner
import tensorflow as tf

from flatnas_tf.compat import hparams_of
from flatnas_tf.figures import FIGURES

#: The TensorFlow summary step figures are written at.
_STEP = 0


def boards(callbacks: Sequence[keras.callbacks.Callback]) -> list[keras.callbacks.TensorBoard]:
    """The TensorBoard callbacks among `callbacks`."""
    return [c for c in callbacks if isinstance(c, keras.callbacks.TensorBoard)]


def check_installed(callbacks: Sequence[keras.callbacks.Callback]) -> None:
    """Fails at once when a TensorBoard callback is given but tensorboard is missing.

    Raises:
        ImportError: Saying how to install it.
    """
    if boards(callbacks) and find_spec("tensorboard") is None:
        raise ImportError(
            "keras.callbacks.TensorBoard needs the tensorboard package, which is not "
            'installed: `pip install "flatnas-tf[tensorboard]"` (or tensorboard), or leave '
            "the callback out."
        )


def write_experiment(log_dir: str, space: keras_tuner.HyperParameters) -> None:
    """Declares the search's HParams experiment: its hyperparameters and figures.

    Args:
        log_dir: The TensorBoard callback's log directory (the search's root).
        space: The search space (`oracle.get_space()`).
    """
    from tensorboard.plugins.hparams import api as hparams_api

    hparams = hparams_of(space, hparams_api)
    metrics = [hparams_api.Metric(name, display_name=name) for name in FIGURES]
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        hparams_api.hparams_config(hparams=hparams, metrics=metrics)
    writer.close()


def write_figures(log_dir: str, figures: Mapping[str, float]) -> None:
    """Writes a trial's finite figures as scalars into its session directory.

    Args:
        log_dir: The trial's log directory (KerasTuner's per-trial one).
        figures: Figure name -> value, as the trial reports them.
    """
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        for name, value in figures.items():
            if name in FIGURES and math.isfinite(value):
                tf.summary.scalar(name, float(value), step=_STEP)
    writer.close()
