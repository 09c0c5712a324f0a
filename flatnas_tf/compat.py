"""KerasTuner's and Keras' internals that flatnas-tf relies on, all in one place.

KerasTuner has no public API for several things a durable, multi-objective,
distributed search needs: the files of a project, the worker/chief roles, the
duplicate check of a configuration, the gRPC service of the chief. Keras hides
the class of functional models, the recursive walk over a model's layers, the
symbolic build of a training state, a model's loss tracker, an optimizer's
learning-rate object and the per-variable bookkeeping of its update (which
`FusedSGD` replaces with fused kernels); TensorFlow hides its registry of custom
gradients (which every trace of SAM's step grows) and the cross-replica call
that applies an optimizer's update once for all replicas. flatnas-tf therefore
uses some private members; this module is the only place that touches them, so
that a KerasTuner or Keras release that renames one breaks here, loudly
(`tests/test_compat.py` checks every name below against the installed
versions), not somewhere inside a search. The tested versions are pinned in
setup.py (keras-tuner 1.4, Keras 3).

Three kinds of reliance:

    imported    classes and modules from `keras_tuner.src` / `keras.src`
                (below, and `chief_service` for the gRPC ones, which need grpc)
    called      private methods and attributes read through the functions
                below, each saying why
    inherited   private hooks a subclass overrides or private state it keeps
                in step with KerasTuner's (`ORACLE_STATE`, `ORACLE_HOOKS`,
                `TUNER_HOOKS`): `DurableOracle` and `NSGA2Oracle` replace
                `create_trial`, `end_trial` and the trial files, and must
                leave KerasTuner's own bookkeeping as KerasTuner would
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

# Functional: the class Keras gives a `Model(inputs, outputs)` call (SAMModel
# builds that form itself, sam.py). Imported now; KerasTuner's members only
# when first used (`__getattr__` below and inside the functions): flatnas_tf.training.sam
# imports this module when Keras finishes importing (`_registration`), which
# may be half-way through KerasTuner's own import.
from keras.src.models.functional import Functional

if TYPE_CHECKING:
    import keras_tuner

#: KerasTuner classes, by the module they live in (attributes of this module,
#: imported on first use, so not in `__all__`): MetricsTracker, a fresh
#: metrics record for a trial rebuilt from its file (durable.py);
#: DefaultObjective, MultiObjective and Display, subclassed so that a search is
#: named after its first objective and every objective of a trial is printed
#: (nsga2.py, display.py).
_KERAS_TUNER_CLASSES = {
    "MetricsTracker": "keras_tuner.src.engine.metrics_tracking",
    "DefaultObjective": "keras_tuner.src.engine.objective",
    "MultiObjective": "keras_tuner.src.engine.objective",
    "Display": "keras_tuner.src.engine.oracle",
}


def __getattr__(name: str):
    if name in _KERAS_TUNER_CLASSES:
        return getattr(importlib.import_module(_KERAS_TUNER_CLASSES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHECKPOINT_FILE",
    "OPTIMIZER_HOOKS",
    "ORACLE_HOOKS",
    "ORACLE_STATE",
    "TUNER_HOOKS",
    "Functional",
    "build_config_file",
    "checkpoint_file",
    "chief_service",
    "copy_callbacks",
    "custom_gradient_registry",
    "grid_size",
    "hparams_of",
    "is_chief_oracle",
    "is_worker",
    "layers_within",
    "learning_rate_object",
    "loss_tracker",
    "merge_call",
    "oracle_file",
    "project_dir",
    "set_project_dir",
    "symbolic_build",
    "tensorboard_callback_dir",
    "tried_so_far",
    "tuner_callback",
    "tuner_file",
    "try_build",
    "uses_weight_decay",
    "values_hash",
    "variable_index",
]

#: The name KerasTuner (with Keras 3) gives a trial's weights in its directory.
CHECKPOINT_FILE = "checkpoint.weights.h5"
#: Private state of `keras_tuner.Oracle` that the durable oracle reads and writes
#: as KerasTuner's own `create_trial` / `reload` do: the trials queued to be run
#: again, how often each ran, the display, the project directory.
ORACLE_STATE = ("_retry_queue", "_run_times", "_display", "_project_dir", "_tried_so_far")
#: Private `keras_tuner.Oracle` methods overridden or called through `super()`.
ORACLE_HOOKS = (
    "_record_values",
    "_retry",
    "_save_trial",
    "_get_trial_dir",
    "_set_project_dir",
    "_compute_values_hash",
    "_get_oracle_fname",
)
#: Private `keras.optimizers.Optimizer` methods `FusedSGD` overrides.
OPTIMIZER_HOOKS = ("_apply_weight_decay",)
#: Private `keras_tuner.Tuner` methods overridden or called.
TUNER_HOOKS = (
    "_populate_initial_space",
    "_build_hypermodel",
    "_try_build",
    "_is_worker",
    "_deepcopy_callbacks",
    "_configure_tensorboard_dir",
    "_get_checkpoint_fname",
    "_get_build_config_fname",
    "_get_tuner_fname",
)


# -- the oracle -----------------------------------------------------------------------


def values_hash(oracle: keras_tuner.Oracle, values: Mapping[str, Any]) -> str:
    """KerasTuner's identity of a configuration (what its duplicate check compares)."""
    return oracle._compute_values_hash(values)


def tried_so_far(oracle: keras_tuner.Oracle) -> set[str]:
    """The hashes of the configurations KerasTuner has handed out (its saved state)."""
    return oracle._tried_so_far


def oracle_file(oracle: keras_tuner.Oracle) -> str:
    """The path of the oracle's state file, where KerasTuner's `reload` reads it."""
    return oracle._get_oracle_fname()


def project_dir(oracle: keras_tuner.Oracle) -> str:
    """The directory of the oracle's project (its trials and state file)."""
    return oracle._project_dir


def set_project_dir(oracle: keras_tuner.Oracle, directory: str, project_name: str) -> None:
    """Gives an oracle used without a tuner its project directory, as a tuner's `__init__` does."""
    oracle._set_project_dir(directory, project_name)


def grid_size(hyperparameter: Any) -> int:
    """The number of values a numeric (Int or Float) hyperparameter draws from (its grid)."""
    return int(hyperparameter._get_n_values())


# -- the tuner ------------------------------------------------------------------------


def is_worker(tuner: keras_tuner.Tuner) -> bool:
    """Whether the tuner is a worker of a distributed search (it then saves no oracle)."""
    return tuner._is_worker()


def is_chief_oracle() -> bool:
    """Whether this process serves the oracle of a distributed search."""
    from keras_tuner.src.distribute import utils

    return utils.is_chief_oracle()


def is_worker_process() -> bool:
    """Whether this process is a worker of a distributed search (KerasTuner's variables)."""
    from keras_tuner.src.distribute import utils

    return utils.has_chief_oracle() and not utils.is_chief_oracle()


def try_build(tuner: keras_tuner.Tuner, hp: keras_tuner.HyperParameters):
    """The tuner's model for `hp`, built as a trial builds it (KerasTuner's checks included)."""
    return tuner._try_build(hp)


def checkpoint_file(tuner: keras_tuner.Tuner, trial_id: str) -> str:
    """Where KerasTuner keeps (and `load_model` looks for) a trial's weights."""
    return tuner._get_checkpoint_fname(trial_id)


def build_config_file(tuner: keras_tuner.Tuner, trial_id: str) -> str:
    """Where KerasTuner keeps a trial's build configuration."""
    return tuner._get_build_config_fname(trial_id)


def tuner_file(tuner: keras_tuner.Tuner) -> str:
    """The path of the tuner's own state file."""
    return tuner._get_tuner_fname()


def copy_callbacks(tuner: keras_tuner.Tuner, callbacks: Sequence[Any]) -> list:
    """Per-trial copies of the user's callbacks, as KerasTuner's `run_trial` makes them."""
    return tuner._deepcopy_callbacks(list(callbacks))


def tensorboard_callback_dir(tuner: keras_tuner.Tuner, callbacks: list, trial) -> None:
    """Points TensorBoard callbacks at a per-trial log directory, as KerasTuner does."""
    tuner._configure_tensorboard_dir(callbacks, trial)


def tuner_callback(tuner: keras_tuner.Tuner, trial):
    """KerasTuner's callback that reports each epoch's metrics to the oracle."""
    from keras_tuner.src.engine import tuner_utils

    return tuner_utils.TunerCallback(tuner, trial)


def hparams_of(space, hparams_api) -> list:
    """The search space as TensorBoard HParams, KerasTuner's conversion."""
    from keras_tuner.src.engine import tuner_utils

    return list(tuner_utils.convert_hyperparams_to_hparams(space, hparams_api))


# -- distribution ---------------------------------------------------------------------


def chief_service():
    """(protos, OracleServicer): the chief's gRPC service (imports grpc)."""
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    return protos, OracleServicer


# -- Keras and TensorFlow -------------------------------------------------------------


def layers_within(model) -> list:
    """Every layer a model tracks, at any depth (public `layers` gives one level)."""
    return list(model._flatten_layers(include_self=False, recursive=True))


def symbolic_build(model, data_batch) -> bool:
    """Builds a compiled model's variables and optimizer state from a symbolic batch.

    What `fit` does on its first step, done before it so that the train step
    is traced once. Returns False where this Keras has no symbolic build.
    """
    if not hasattr(model, "_symbolic_build"):
        return False
    model._symbolic_build(data_batch=data_batch)
    return True


def loss_tracker(model):
    """The metric behind the `loss` a model's custom `train_step` reports (as Keras' own step)."""
    return model._loss_tracker


def learning_rate_object(optimizer):
    """What an optimizer was given as its learning rate (a float variable or a schedule)."""
    return getattr(optimizer, "_learning_rate", None)


def variable_index(optimizer, variable) -> int:
    """The index of `variable` in an optimizer's per-variable slots (its momentums)."""
    return optimizer._get_variable_index(variable)


def uses_weight_decay(optimizer, variable) -> bool:
    """Whether an optimizer decays `variable` (its `exclude_from_weight_decay` applied)."""
    return optimizer._use_weight_decay(variable)


def merge_call(fn, optimizer, *args):
    """Runs `fn(strategy, *args)` across replicas, under the strategy `optimizer` applies in.

    What Keras' TensorFlow optimizer does to apply its updates once for all
    replicas (`maybe_merge_call`, under `tf.__internal__`: no public API);
    `FusedSGD`'s weight decay is such an update.
    """
    import tensorflow as tf

    return tf.__internal__.distribute.interim.maybe_merge_call(
        fn, optimizer._distribution_strategy, *args
    )


def custom_gradient_registry() -> dict:
    """TensorFlow's registry of gradient functions (each `tf.custom_gradient` trace adds one)."""
    from tensorflow.python.framework import ops

    return ops.gradient_registry._registry
