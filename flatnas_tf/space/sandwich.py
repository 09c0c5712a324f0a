"""Training a supernet with the sandwich rule, resumable after every epoch.

One step on a batch (x, y), with n random sub-networks (BigNAS / OFA):

    sub-networks: largest (every choice at its max, largest resolution),
                  smallest (every choice at its min, smallest resolution),
                  n uniform draws (each choice independently, resolution too)
    for each sub-network s, largest first:
        select s                      (assigns the architecture vectors in the graph)
        L_s = CE_smoothed(y, f_s(x))
              with distillation d > 0, for s != largest (in-place distillation):
              (1 - d) * L_s + d * CE(softmax(f_largest(x)), f_s(x))
        g  += grad L_s / (n + 2)      (accumulated; OFA sums, which is the same
                                       at (n + 2) times the learning rate)
    one SGD step with g (momentum, decoupled weight decay)

The learning rate warms up linearly and decays as a cosine over all epochs
(`WarmupCosine`). Plain SGD, as OFA trains its supernet: SAM/ASAM are the
candidates' fine-tuning step (FlatNAS applies ASAM when fine-tuning inherited
weights), not the supernet's. BatchNorm moving statistics are updated by every
pass and describe no sub-network in particular: a candidate's statistics are
recomputed before it is measured (`recalibrate_batch_norm`). Progress: the
loss and accuracy of the largest sub-network and the loss of the smallest.

Forward and backward passes are one nested `tf.function` per resolution, so
a step traces each resolution's graph once whatever n is.

Run directory (`train_supernet(directory=...)`), written after every epoch:

    supernet.json                 the space, width, settings, epochs done,
                                  per-epoch history, and the two file names:
    supernet-eNNNN.weights.h5     the supernet's weights (what a search loads)
    training-eNNNN.weights.h5     the same plus the optimizer and random
                                  generator states (what a resume loads)

Each file is written atomically, the weight files before `supernet.json`,
which is the commit point: a crash at any moment leaves the last finished
epoch readable, and files of older epochs are removed only after it names
the new ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from flatnas_tf import compat
from flatnas_tf.checks import check_integer, check_number
from flatnas_tf.defaults import (
    DISTILLATION,
    LABEL_SMOOTHING,
    LEARNING_RATE,
    MOMENTUM,
    RANDOM_SUBNETS,
    SUPERNET_EPOCHS,
    SUPERNET_WARMUP,
    WEIGHT_DECAY,
)
from flatnas_tf.persistence.storage import atomic_path, write_json
from flatnas_tf.space.hypermodel import FlatNASHyperModel, TrainingSettings
from flatnas_tf.space.supernet import Supernet, space_config
from flatnas_tf.training.config import RANGES
from flatnas_tf.training.regime import WarmupCosine, steps_per_epoch
from flatnas_tf.training.tracing import (
    build_training_state,
    graph_optimizer,
    release_custom_gradients,
)

__all__ = [
    "STATE_FILE",
    "SandwichModel",
    "SupernetSettings",
    "SupernetStateError",
    "load_supernet",
    "read_supernet_state",
    "train_supernet",
]

STATE_FILE = "supernet.json"
_FORMAT = 1


class SupernetStateError(ValueError):
    """A supernet directory that cannot be used as asked (missing, other space, other settings)."""


@dataclasses.dataclass(frozen=True)
class SupernetSettings:
    """How a supernet is trained (module docstring).

    Attributes:
        epochs: Passes over the training data.
        learning_rate: Peak SGD learning rate.
        momentum: SGD momentum.
        weight_decay: Decoupled weight decay.
        label_smoothing: Label smoothing of the cross-entropy.
        random_subnets: Random sub-networks per step, besides the largest and
            the smallest.
        distillation: Weight d of in-place distillation from the largest
            sub-network, in [0, 1] (0: labels only).
        warmup: Fraction of the steps spent warming up, in [0, 1).
        seed: Seed of the weights' initialisation and of the sub-network draws.
    """

    epochs: int = SUPERNET_EPOCHS
    learning_rate: float = LEARNING_RATE
    momentum: float = MOMENTUM
    weight_decay: float = WEIGHT_DECAY
    label_smoothing: float = LABEL_SMOOTHING
    random_subnets: int = RANDOM_SUBNETS
    distillation: float = DISTILLATION
    warmup: float = SUPERNET_WARMUP
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "random_subnets", "seed"):
            value = check_integer(getattr(self, name), name, 1 if name == "epochs" else 0)
            object.__setattr__(self, name, value)
        shared = ("learning_rate", "momentum", "weight_decay", "label_smoothing", "warmup")
        ranges = {**{name: RANGES[name] for name in shared}, "distillation": {"low": 0, "high": 1}}
        for name, bounds in ranges.items():
            object.__setattr__(self, name, check_number(getattr(self, name), name, **bounds))


class SandwichModel(keras.Model):
    """A supernet under sandwich-rule training: `fit` trains every sub-network at once.

    Args:
        supernet: The supernet to train (its weights are this model's).
        random_subnets: Random sub-networks per step.
        distillation: In-place distillation weight, in [0, 1].
        seed: Seed of the sub-network draws.
        **kwargs: Passed to `keras.Model`.

    Example:
    ```python
    model = SandwichModel(supernet)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=SparseCrossentropyWithSmoothing(0.1), metrics=["accuracy"])
    model.fit(train_ds, epochs=20)
    ```
    """

    def __init__(
        self,
        supernet: Supernet,
        random_subnets: int = RANDOM_SUBNETS,
        distillation: float = DISTILLATION,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.supernet = supernet
        self.random_subnets = int(random_subnets)
        self.distillation = float(distillation)
        self.draws = keras.random.SeedGenerator(seed, name="draws")
        self.smallest_loss = keras.metrics.Mean(name="smallest_loss")
        self._extremes = [
            (supernet.state(supernet.sub_network(supernet.extreme_hyperparameters(pick))), res)
            for pick, res in (
                (max, supernet.largest_resolution),
                (min, supernet.smallest_resolution),
            )
        ]

    def call(self, inputs, training=None):
        return self.supernet(inputs, training=training)

    def _loss_and_gradients(self, x, y, sample_weight, teacher, resolution):
        with tf.GradientTape() as tape:
            logits = self.supernet.forward(x, training=True, resolution=resolution)
            loss = self.compute_loss(
                x=x, y=y, y_pred=logits, sample_weight=sample_weight, training=True
            )
            if teacher is not None:
                soft = -ops.mean(ops.sum(teacher * ops.log_softmax(logits), axis=-1))
                loss = (1.0 - self.distillation) * loss + self.distillation * soft
        gradients = tape.gradient(loss, self.supernet.trainable_variables)
        return logits, loss, gradients

    def _pass(self, x, y, sample_weight, teacher, resolution):
        if tf.executing_eagerly():
            return self._loss_and_gradients(x, y, sample_weight, teacher, resolution)
        functions = self.__dict__.setdefault("_traced_passes", {})
        key = (resolution, teacher is None)
        if key not in functions:  # one trace per resolution (and with/without teacher)
            functions[key] = tf.function(
                lambda x, y, w, t, r=resolution: self._loss_and_gradients(x, y, w, t, r)
            )
        return functions[key](x, y, sample_weight, teacher)

    def _random_pass(self, x, y, sample_weight, teacher):
        resolutions = self.supernet.resolutions
        if len(resolutions) == 1:
            return self._pass(x, y, sample_weight, teacher, resolutions[0])
        index = keras.random.randint((), 0, len(resolutions), seed=self.draws)
        branches = [lambda r=r: self._pass(x, y, sample_weight, teacher, r) for r in resolutions]
        return tf.switch_case(index, branches)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        variables = self.supernet.trainable_variables
        passes = 2 + self.random_subnets
        total = [tf.zeros_like(v) for v in variables]
        teacher = None
        largest = smallest = None
        for index in range(passes):
            if index < 2:
                state, resolution = self._extremes[index]
                self.supernet.assign_state(state)
                logits, loss, gradients = self._pass(x, y, sample_weight, teacher, resolution)
            else:
                self.supernet.assign_state(self.supernet.random_state(self.draws))
                logits, loss, gradients = self._random_pass(x, y, sample_weight, teacher)
            total = [t + g / passes for t, g in zip(total, gradients, strict=True)]
            if index == 0:
                largest = (logits, loss)
                if self.distillation > 0:
                    teacher = tf.stop_gradient(ops.softmax(logits))
            elif index == 1:
                smallest = loss
        self.optimizer.apply(total, variables)
        logits, loss = largest
        batch_size = tf.shape(tf.nest.flatten(x)[0])[0]
        compat.loss_tracker(self).update_state(loss, sample_weight=batch_size)
        self.smallest_loss.update_state(smallest, sample_weight=batch_size)
        return self.compute_metrics(x, y, logits, sample_weight=sample_weight)


def _compiled(supernet: Supernet, settings: SupernetSettings) -> SandwichModel:
    model = SandwichModel(
        supernet,
        random_subnets=settings.random_subnets,
        distillation=settings.distillation,
        seed=settings.seed,
        name="sandwich",
    )
    # The candidates' compilation (FusedSGD, smoothed cross-entropy, accuracy);
    # the sandwich step is plain SGD, so SAM's settings play no part.
    compilation = TrainingSettings(
        learning_rate=settings.learning_rate,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
        label_smoothing=settings.label_smoothing,
        sam=False,
    )
    return compilation.compile(model)


def read_supernet_state(directory: str | Path) -> dict[str, Any]:
    """The state of a trained supernet's run directory (`supernet.json`), checked.

    Args:
        directory: A directory `train_supernet` wrote.

    Returns:
        The state: space, width, settings, data description, epochs done,
        history and the weight files.

    Raises:
        SupernetStateError: No finished epoch there, or an unreadable state.
    """
    path = Path(directory)
    state = _read_state(path)
    if state is None or not state.get("epochs_done"):
        raise SupernetStateError(
            f"{path} holds no trained supernet ({STATE_FILE} with a finished epoch); "
            "train one first (`flatnas-tf supernet` or train_supernet)."
        )
    return state


def _read_state(directory: Path) -> dict[str, Any] | None:
    path = directory / STATE_FILE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SupernetStateError(f"{path} is not readable JSON ({error}).") from None
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise SupernetStateError(f"{path} is not a flatnas-tf supernet state (format {_FORMAT}).")
    return state


class _EpochCheckpoint(keras.callbacks.Callback):
    """Writes the weights, the training state and supernet.json after every epoch."""

    def __init__(self, directory: Path, state: dict[str, Any]):
        super().__init__()
        self.directory = directory
        self.state = state
        self._started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._started
        tag = f"e{epoch + 1:04d}"
        files = {
            "weights": f"supernet-{tag}.weights.h5",
            "checkpoint": f"training-{tag}.weights.h5",
        }
        sandwich: SandwichModel = self.model
        for key, owner in (("weights", sandwich.supernet), ("checkpoint", sandwich)):
            with atomic_path(self.directory / files[key], suffix=".weights.h5") as temporary:
                owner.save_weights(temporary)
        old = [self.state.get(key) for key in files]
        entry = {"epoch": epoch + 1, "seconds": round(seconds, 2)}
        entry.update({k: float(v) for k, v in (logs or {}).items()})
        self.state.update(files, epochs_done=epoch + 1, generators=_generator_states(sandwich))
        self.state["history"] = [*self.state.get("history", []), entry]
        write_json(self.directory / STATE_FILE, self.state)
        for name in old:
            if name and name not in files.values():
                with contextlib.suppress(OSError):
                    (self.directory / name).unlink()


def _generator_variables(model: keras.Model) -> list[keras.Variable]:
    # Random-generator states (sub-network draws, dropout), in model order (their
    # names are numbered per process): Keras does not save them with the
    # weights, and a resumed run needs them to continue the same run.
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def _generator_states(model: keras.Model) -> list[list[int]]:
    return [np.asarray(v).tolist() for v in _generator_variables(model)]


def train_supernet(
    supernet: Supernet,
    data: tf.data.Dataset,
    settings: SupernetSettings | None = None,
    directory: str | Path | None = None,
    verbose: int | str = "auto",
    callbacks: list[keras.callbacks.Callback] | None = None,
    data_description: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Trains `supernet` with the sandwich rule; resumes a run found in `directory`.

    Args:
        supernet: A supernet (freshly built, or the one a previous call trained).
        data: Training batches `(x, y)`, pixels in [0, 255]: the search's
            training split only.
        settings: Training settings; default `SupernetSettings()`.
        directory: Run directory. After every epoch the state is written
            there (module docstring); if it already holds a run of the same
            space, width and settings, training continues after its last
            finished epoch (a finished run returns at once).
        verbose: Keras' `fit` verbosity.
        callbacks: More Keras callbacks for `fit` (they run after the
            epoch's state is written).
        data_description: What the training data is (e.g. data set, split
            fraction and seed), saved as "data" in the state, so a search can
            check that its validation images were not trained on; a resume
            with another description is refused.

    Returns:
        The run's state: settings, epochs done, per-epoch history (loss and
        accuracy of the largest sub-network, loss of the smallest, seconds).

    Raises:
        SupernetStateError: `directory` holds a run of another space, width,
            settings or data, an unreadable state, or files of something else.

    Example:
    ```python
    supernet = Supernet(FlatNASHyperModel((32, 32, 3), 10), width=0.5)
    state = train_supernet(supernet, train_ds, SupernetSettings(epochs=20), "runs/supernet")
    ```
    """
    settings = settings or SupernetSettings()
    state = {
        "format": _FORMAT,
        "space": space_config(supernet.space),
        "width": supernet.width,
        "settings": dataclasses.asdict(settings),
        "data": data_description,
        "epochs_done": 0,
        "history": [],
    }
    model = _compiled(supernet, settings)
    path = None
    if directory is not None:
        path = Path(directory)
        if path.exists() and not path.is_dir():
            raise SupernetStateError(f"{path} is a file; pass a directory for the supernet.")
        saved = _read_state(path) if path.is_dir() else None
        if saved is None and path.is_dir() and any(path.iterdir()):
            raise SupernetStateError(
                f"{path} holds other files and no {STATE_FILE}; choose a new or empty "
                "directory for the supernet (nothing in it is touched)."
            )
        path.mkdir(parents=True, exist_ok=True)
        if saved is not None:
            for key in ("space", "width", "settings", "data"):
                if saved.get(key) != state[key]:
                    raise SupernetStateError(
                        f"{path} holds a supernet with other {key} ({saved.get(key)}); "
                        f"this run has {state[key]}. Use another directory, or the same {key}."
                    )
            state = saved
    done = state["epochs_done"]
    steps = steps_per_epoch(data) or int(data.reduce(0, lambda n, _: n + 1))
    with graph_optimizer(bool(tf.config.list_logical_devices("GPU"))), release_custom_gradients():
        build_training_state(model, data)
        if done:
            model.load_weights(path / state["checkpoint"])
            generators = _generator_variables(model)
            for variable, value in zip(generators, state.get("generators", []), strict=True):
                variable.assign(np.asarray(value, variable.dtype))
            model.optimizer.learning_rate = settings.learning_rate  # the schedule's peak
        if done >= settings.epochs:
            return state
        schedule = WarmupCosine(steps * settings.epochs, settings.warmup, initial_step=done * steps)
        extra = [_EpochCheckpoint(path, state)] if path is not None else []
        history = model.fit(
            data,
            epochs=settings.epochs,
            initial_epoch=done,
            shuffle=False,  # a dataset shuffles itself
            verbose=verbose,
            callbacks=[*extra, schedule, *(callbacks or [])],  # the epoch is saved first
        )
    if path is None:
        state["epochs_done"] = settings.epochs
        state["history"] = [
            {"epoch": done + i + 1, **{k: float(v[i]) for k, v in history.history.items()}}
            for i in range(len(history.epoch))
        ]
    return state


def load_supernet(
    directory: str | Path, hypermodel: FlatNASHyperModel | None = None
) -> tuple[Supernet, dict[str, Any]]:
    """The trained supernet saved in a run directory.

    Args:
        directory: A directory `train_supernet` wrote.
        hypermodel: The search's space, to check against the supernet's and
            to take candidates' training settings from (SAM, rho, ...);
            default: the saved space with default `TrainingSettings`.

    Returns:
        (supernet with the last finished epoch's weights, the run's state).

    Raises:
        SupernetStateError: No finished epoch in `directory`, or a space that
            differs from `hypermodel`'s.

    Example:
    ```python
    supernet, state = load_supernet("runs/supernet")
    ```
    """
    path = Path(directory)
    state = read_supernet_state(path)
    space = dict(state["space"])
    training = TrainingSettings()
    if hypermodel is not None:
        theirs = space_config(hypermodel)
        for key in ("input_shape", "num_classes", "resolutions", "depths", "kernels", "expands"):
            if theirs[key] != space[key]:
                raise SupernetStateError(
                    f"The supernet in {path} was trained for {key}={space[key]}; the search's "
                    f"space has {key}={theirs[key]}. Train a supernet for this space."
                )
        training = hypermodel.training
    supernet = Supernet(FlatNASHyperModel(**space, training=training), width=state["width"])
    supernet.load_weights(path / state["weights"])
    return supernet, state
