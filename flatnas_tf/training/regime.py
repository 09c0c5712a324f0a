"""The training regime of a from-scratch candidate: schedule, statistics, graph costs.

FlatNAS's published settings (SGD at a constant 0.1, ASAM rho 2.0, 6 epochs)
fine-tune candidates that inherit pretrained weights. From random weights, a
few dozen steps at a constant 0.1 leave a network mid-flight: its BatchNorm
moving statistics lag behind its weights, and inference-mode validation
accuracy swings by tens of points between two seeds of the same network. A
figure a search ranks by has to describe the architecture, so a trial here
trains to the end of its budget and measures the weights it ends with:

    T      = epochs * steps_per_epoch,  W = round(warmup * T)
    lr(t)  = base_lr * (t + 1) / W                               t < W
           = base_lr * (1 + cos(pi * (t - W) / (T - W))) / 2      W <= t < T
             (schedule "constant": base_lr throughout, the published regime)
    fit(train, epochs)                   the model's own step (SAM, ASAM or SGD)
    recalibrate BatchNorm statistics on training batches          (`batchnorm.py`)
    measure: validation accuracy, loss and R, once                (`flatness.py`)

The regime never touches the step itself (SAM, ASAM or plain SGD, the
optimizer's momentum and weight decay): the accuracy-only baseline gets the
same schedule and recalibration as a SAM search. A model compiled with a
learning-rate schedule of its own keeps it.

The schedule is a callback that sets the optimizer's learning-rate variable
before each step, not a `LearningRateSchedule`: Keras evaluates a schedule
once per variable inside the step (its weight decay reads the rate for each
variable), which put a copy of the schedule's graph beside every weight and
added about 7 s of tracing to a default candidate's first step.

Graph costs (`tracing.py`): the optimizer and compiled metrics are built
before `fit` (one trace of the step, not two), Grappler is off on machines
without a GPU, and custom-gradient registrations are released after a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator

import keras
import tensorflow as tf

from flatnas_tf import compat
from flatnas_tf.checks import check_choice, check_integer, check_number
from flatnas_tf.defaults import SCHEDULES, WARMUP
from flatnas_tf.training.batchnorm import recalibrate_batch_norm
from flatnas_tf.training.config import RANGES
from flatnas_tf.training.tracing import (
    build_training_state,
    graph_optimizer,
    release_custom_gradients,
)

__all__ = [
    "SCHEDULES",
    "TrainingDivergedError",
    "TrainingRegime",
    "WarmupCosine",
    "steps_per_epoch",
]


def steps_per_epoch(data, batch_size: int | None = None) -> int | None:
    """Batches in one pass over `data` as `fit` would see it, if known without reading it.

    Args:
        data: A tf.data.Dataset of batches, or an array / tuple of arrays.
        batch_size: Batch size `fit` uses for arrays (Keras' default 32 if None).

    Returns:
        The number of steps per epoch, or None when the dataset's cardinality
        is unknown or infinite.
    """
    if isinstance(data, tf.data.Dataset):
        cardinality = int(data.cardinality())
        return cardinality if cardinality > 0 else None
    first = data[0] if isinstance(data, (tuple, list)) else data
    return max(1, math.ceil(len(first) / (batch_size or 32)))


def _count_batches(data: tf.data.Dataset) -> int:
    count = int(data.reduce(tf.constant(0, tf.int64), lambda total, _: total + 1))
    if count < 1:
        raise ValueError("The training data is empty; pass a dataset with at least one batch.")
    return count


class WarmupCosine(keras.callbacks.Callback):
    """Linear warm-up, then cosine decay of the optimizer's learning rate, step by step.

    The peak is the optimizer's learning rate when training begins, and it is
    restored when training ends. See the module docstring for the formula.

    Args:
        total_steps: Steps of the whole training (epochs x steps per epoch).
        warmup: Fraction of the steps spent warming up, in [0, 1).
        initial_step: The step the first batch of `fit` is (a training
            resumed after `initial_step` steps continues the schedule).

    Example:
    ```python
    model.fit(train_ds, epochs=10, callbacks=[WarmupCosine(10 * len(train_ds), 0.1)])
    ```
    """

    def __init__(self, total_steps: int, warmup: float = WARMUP, initial_step: int = 0):
        super().__init__()
        total_steps = check_integer(total_steps, "total_steps", 1)
        warmup = check_number(warmup, "warmup", **RANGES["warmup"])
        initial_step = check_integer(initial_step, "initial_step", 0)
        self.total_steps = total_steps
        self.warmup_steps = round(warmup * total_steps)
        self.initial_step = initial_step
        self._step = initial_step
        self._peak = 0.0

    def rate(self, step: int, peak: float) -> float:
        """The learning rate of step `step` (0-based) for a peak rate `peak`."""
        if step < self.warmup_steps:
            return peak * (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return peak * 0.5 * (1.0 + math.cos(math.pi * progress))

    def on_train_begin(self, logs=None):
        self._step = self.initial_step
        self._peak = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = self.rate(self._step, self._peak)
        self._step += 1

    def on_train_end(self, logs=None):
        self.model.optimizer.learning_rate = self._peak


class TrainingDivergedError(ValueError):
    """Training ended with a non-finite loss: the candidate has no figures to rank."""


@dataclasses.dataclass(frozen=True)
class TrainingRegime:
    """How a candidate is trained and prepared for measurement (module docstring).

    Attributes:
        schedule: "cosine" (linear warm-up, then cosine decay towards 0 at the
            last step) or "constant" (the optimizer's learning rate throughout,
            as in FlatNAS's fine-tuning).
        warmup: Fraction of the steps spent warming up, in [0, 1); cosine only.
        recalibrate: Recompute BatchNorm moving statistics on training batches
            after training, so inference-mode figures describe the final weights.
        recalibration_examples: Training examples used for recalibration.
        grappler: Run TensorFlow's graph optimiser; None (default) runs it
            when a GPU is visible and not on CPU-only machines (see `tracing.py`).

    Example:
    ```python
    regime = TrainingRegime()                 # warm-up 10 %, cosine, recalibration
    history = regime.fit(model, train_ds, epochs=10)
    model.evaluate(val_ds)
    ```
    """

    schedule: str = SCHEDULES[0]
    warmup: float = WARMUP
    recalibrate: bool = True
    recalibration_examples: int = 2000
    grappler: bool | None = None

    def __post_init__(self):
        check_choice(self.schedule, "schedule", SCHEDULES)
        object.__setattr__(self, "warmup", check_number(self.warmup, "warmup", **RANGES["warmup"]))
        examples = check_integer(self.recalibration_examples, "recalibration_examples", 1)
        object.__setattr__(self, "recalibration_examples", examples)

    def uses_grappler(self) -> bool:
        """Whether Grappler runs under this regime on this machine."""
        if self.grappler is not None:
            return bool(self.grappler)
        return bool(tf.config.list_logical_devices("GPU"))

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """The block one model is trained and measured in.

        Graph-optimiser setting in force, custom-gradient registrations made
        by tracing released at the end (the block's model is not traced again).

        Example:
        ```python
        with regime.scope():
            regime.fit(model, train_ds, epochs=10)
            weight_robustness(model, val_ds)
        ```
        """
        with graph_optimizer(self.uses_grappler()), release_custom_gradients():
            yield

    def prepare(
        self,
        model: keras.Model,
        data,
        epochs: int,
        steps: int | None = None,
        batch_size: int | None = None,
    ) -> list[keras.callbacks.Callback]:
        """Builds a compiled model's training state; returns the schedule's callbacks.

        Args:
            model: A compiled, untrained Keras model.
            data: The training data `fit` will receive.
            epochs: Epochs `fit` will run.
            steps: Steps per epoch, if `fit` gets `steps_per_epoch`; default:
                counted from `data` (a dataset of unknown size is counted
                once by iterating it).
            batch_size: Batch size `fit` gets for array data.

        Returns:
            Callbacks to pass to `fit`: the learning-rate schedule (none for
            "constant", or when the optimizer follows a schedule of its own).

        Raises:
            ValueError: The model is not compiled, or `epochs` < 1.
        """
        if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
            raise ValueError(
                f"Model {model.name!r} is not compiled; compile it with an optimizer first."
            )
        check_integer(epochs, "epochs", 1)
        build_training_state(model, data, batch_size)
        own_schedule = isinstance(
            compat.learning_rate_object(model.optimizer),
            keras.optimizers.schedules.LearningRateSchedule,
        )
        if self.schedule == "constant" or own_schedule:
            return []
        steps = steps or steps_per_epoch(data, batch_size) or _count_batches(data)
        return [WarmupCosine(steps * epochs, self.warmup)]

    def finish(self, model: keras.Model, data) -> int:
        """Prepares a trained model for inference-mode measurement.

        Args:
            model: The trained model.
            data: Training data, for BatchNorm recalibration.

        Returns:
            Examples BatchNorm statistics were recomputed from (0 if none).
        """
        if not self.recalibrate:
            return 0
        return recalibrate_batch_norm(model, data, max_examples=self.recalibration_examples)

    def train(
        self,
        model: keras.Model,
        data,
        epochs: int,
        *,
        fit: Callable[..., keras.callbacks.History] | None = None,
        **fit_kwargs,
    ) -> keras.callbacks.History | None:
        """Trains a compiled model as a search trial does: the project's one trainer.

        `prepare` (the schedule), `fit(data, epochs=epochs, ...)` with
        TerminateOnNaN, a diverged loss refused, then `finish` (BatchNorm
        recalibration). At 0 epochs nothing is trained: only `finish` runs
        (a model that inherited trained weights). It does not enter `scope()`:
        `fit` does; a caller that keeps tracing the same model (a supernet)
        sets the graph optimiser itself.

        Args:
            model: A compiled Keras model.
            data: Training data (a dataset, or x with `y=` in `fit_kwargs`).
            epochs: Epochs, >= 0.
            fit: What trains, called as `model.fit` is (default `model.fit`;
                a tuner passes its hypermodel's `fit`).
            **fit_kwargs: Passed to `fit` (callbacks, verbose, ...).

        Returns:
            The History of `fit`; None at 0 epochs.

        Raises:
            TrainingDivergedError: The last epoch's loss is not finite.

        Example:
        ```python
        with regime.scope():
            history = regime.train(model, train_ds, epochs=10, verbose=0)
        ```
        """
        train = (data, fit_kwargs["y"]) if fit_kwargs.get("y") is not None else data
        history = None
        if check_integer(epochs, "epochs", 0):
            schedule = self.prepare(
                model,
                train,
                epochs,
                steps=fit_kwargs.get("steps_per_epoch"),
                batch_size=fit_kwargs.get("batch_size"),
            )
            callbacks = fit_kwargs.pop("callbacks", None) or []
            callbacks = [*callbacks, keras.callbacks.TerminateOnNaN(), *schedule]
            # A dataset shuffles itself; Keras would warn that `shuffle` is ignored.
            fit_kwargs.setdefault("shuffle", not isinstance(data, tf.data.Dataset))
            history = (fit or model.fit)(data, epochs=epochs, callbacks=callbacks, **fit_kwargs)
            losses = history.history.get("loss") or [math.nan]
            if not math.isfinite(losses[-1]):
                raise TrainingDivergedError(
                    f"Training diverged (loss {losses[-1]}); a lower learning rate may help."
                )
        self.finish(model, train)
        return history

    def fit(self, model: keras.Model, data, epochs: int, **fit_kwargs) -> keras.callbacks.History:
        """`train` inside `scope()`, for at least one epoch.

        With `validation_data`, per-epoch validation sees the statistics
        before recalibration.

        Args:
            model: A compiled, untrained Keras model.
            data: Training data (a dataset, or x with `y=` in `fit_kwargs`).
            epochs: Epochs, >= 1.
            **fit_kwargs: Passed to `model.fit` (callbacks, verbose, ...).

        Returns:
            The History of `fit`.

        Raises:
            TrainingDivergedError: The last epoch's loss is not finite.
        """
        check_integer(epochs, "epochs", 1)
        with self.scope():
            return self.train(model, data, epochs, **fit_kwargs)
