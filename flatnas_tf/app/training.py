"""One architecture trained as a search's trial is (for as long as asked), measured and saved.

What `flatnas-tf train` does, step by step:

    build      the search space of the run (`models.hypermodel`: its data
               shape, widths and depths, compiled under its `TrainingConfig`;
               without a run, the default space with the values' width and
               stage depths added, `space_holding`) at the given
               hyperparameter values (the others at their defaults), the
               seed set first; a name or value outside the space is refused
    train      the regime's `fit`, the trainer of every trial
               (`TrainingRegime.train`: schedule, warm-up, NaN guard;
               BatchNorm statistics recalibrated on training images after
               the last epoch)
    measure    in inference mode: the validation figures a trial records
               (`measure_candidate`: accuracy, loss, R at the search's sigma
               and samples, the chance test), then test accuracy
    save       OUT/model.keras, then OUT/manifest.json (atomically, last):
               the values, the figures, the data set and the split it was
               loaded with, so that `evaluate OUT` measures on the same test
               images
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

from flatnas_tf._version import __version__
from flatnas_tf.app import models
from flatnas_tf.app.evaluation import accuracy_on_test_split
from flatnas_tf.app.search import SearchConfig
from flatnas_tf.app.split import DataSplit
from flatnas_tf.checks import check_integer, check_number
from flatnas_tf.defaults import BATCH_SIZE, DEPTHS, MAX_DEPTH, MAX_WIDTH, TRAIN_EPOCHS
from flatnas_tf.persistence import storage
from flatnas_tf.persistence.export import MANIFEST_FILE
from flatnas_tf.training.config import TrainingConfig

__all__ = [
    "HyperparameterValueError",
    "TrainedArchitecture",
    "check_values",
    "read_hyperparameters",
    "space_holding",
    "train_architecture",
]


class HyperparameterValueError(ValueError):
    """Hyperparameter values that cannot be trained.

    A name the space lacks, a value outside its choices, or a values file
    that is not one JSON object.
    """


@dataclasses.dataclass(frozen=True)
class TrainedArchitecture:
    """What `train_architecture` trained and wrote.

    Attributes:
        model: The trained Keras model.
        val_accuracy: Accuracy on the validation split, in [0, 1].
        test_accuracy: Accuracy on the test split, in [0, 1].
        figures: The validation figures a search's trial records
            (`flatnas_tf.robustness.measurement.measure_candidate`), R among them.
        model_file: The saved `.keras` file.
        manifest: The manifest written beside it.
    """

    model: Any
    val_accuracy: float
    test_accuracy: float
    figures: dict[str, float]
    model_file: Path
    manifest: dict[str, Any]


def train_architecture(
    values: dict[str, Any],
    data,
    out: str | os.PathLike,
    *,
    split: DataSplit,
    settings: dict[str, Any] | None = None,
    training: TrainingConfig | None = None,
    epochs: int = TRAIN_EPOCHS,
    batch_size: int = BATCH_SIZE,
    verbose: int = 2,
) -> TrainedArchitecture:
    """Trains the architecture of hyperparameter `values` on `data` and saves it in `out`.

    Args:
        values: Hyperparameter values (a trial's `values`); the others keep
            the space's defaults.
        data: The data set, loaded (`split.load()`).
        out: Directory for model.keras and manifest.json (made if missing).
        split: How `data` was loaded and split (its seed also seeds the build
            and the training); the manifest records it.
        settings: The search's run.json settings (its widths, depths, data
            set, TFDS directory, and the sigma and samples of R), or None for
            the default space holding `values` (`space_holding`) and R's
            defaults.
        training: How to train (None: the search's, else the defaults).
        epochs: Training epochs, >= 1.
        batch_size: Examples per step.
        verbose: Keras' `fit` verbosity.

    Returns:
        The model, its accuracies and what was written.

    Raises:
        HyperparameterValueError: `values` names a hyperparameter the space
            does not have, or a value it does not allow.
        flatnas_tf.training.regime.TrainingDivergedError: The loss became non-finite.

    Example:
    ```python
    split = DataSplit("digits", seed=0)
    trained = train_architecture(values, split.load(), "runs/best", split=split, epochs=20)
    ```
    """
    import keras
    import keras_tuner

    from flatnas_tf.robustness.measurement import measure_candidate

    settings = dict(settings) if settings is not None else space_holding(values)
    training = training or TrainingConfig.from_settings(settings)
    settings.update(input_shape=list(data.input_shape), num_classes=data.num_classes)
    seed = split.seed
    keras.utils.set_random_seed(seed)
    space = models.hypermodel(settings, training)
    check_values(space, values)
    hp = keras_tuner.HyperParameters()
    hp.values.update(values)  # building declares the rest, at their defaults
    model = space.build(hp)
    training.regime().fit(
        model,
        data.batches("train", batch_size, training=True, seed=seed),
        epochs=epochs,
        verbose=verbose,
    )
    figures = measure_candidate(
        model,
        data.batches("validation", batch_size),
        sigma=settings.get("sigma", SearchConfig.sigma),
        samples=settings.get("samples", SearchConfig.samples),
        seed=seed,
    )
    val_accuracy = figures["val_accuracy"]
    test_accuracy = accuracy_on_test_split(model, data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model_file = out / "model.keras"
    model.save(model_file)
    manifest = {
        "hyperparameters": hp.values,
        "val_accuracy": val_accuracy,
        "test_accuracy": test_accuracy,
        "figures": figures,
        "epochs": epochs,
        "input_shape": list(data.input_shape),
        "label_names": list(data.label_names),
        **split.to_settings(),
        "training": training.to_settings(),
        "flatnas_tf_version": __version__,
    }
    storage.write_json(out / MANIFEST_FILE, manifest)
    return TrainedArchitecture(model, val_accuracy, test_accuracy, figures, model_file, manifest)


def read_hyperparameters(path: str | os.PathLike) -> dict[str, Any]:
    """The hyperparameter values a JSON file holds: one object of name: value.

    A trial's `values` in a report's pareto.json, say, saved on its own.

    Raises:
        HyperparameterValueError: The file cannot be read, is not JSON, or
            holds something other than one object.

    Example:
    ```python
    values = read_hyperparameters("best.json")  # {"width_mult": 0.75, ...}
    ```
    """
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # ValueError: bad UTF-8 or JSON
        raise HyperparameterValueError(str(error)) from None
    if not isinstance(values, dict):
        raise HyperparameterValueError(
            f"{path} must hold a JSON object of name: value; it holds a {type(values).__name__}."
        )
    return values


def space_holding(values: dict[str, Any]) -> dict[str, Any]:
    """The default space's widths and stage depths, with those that `values` choose added.

    An architecture that comes without its search (`flatnas-tf train
    --hyperparameters`) may come from a search of other `--widths` or
    `--depths`: any width and stage depth that a search can take builds. The
    default space's come first, so the hyperparameters `values` leave out keep
    their defaults.

    Args:
        values: Hyperparameter name -> value, as a trial records them.

    Returns:
        Settings for `models.hypermodel`: {"widths": [...], "depths": [...]}.

    Raises:
        HyperparameterValueError: A width or a stage depth that no search can take.

    Example:
    >>> space_holding({"width_mult": 1.0, "stage1_depth": 1})
    {'widths': [0.25, 0.5, 1.0], 'depths': [2, 3, 4, 1]}
    """
    widths, depths = list(SearchConfig.widths), list(DEPTHS)
    for name, value in values.items():
        try:
            if name == "width_mult":
                chosen, kept = float(check_number(value, name, 0, MAX_WIDTH, low_open=True)), widths
            elif re.fullmatch(r"stage\d+_depth", name):
                chosen, kept = check_integer(value, name, 1, MAX_DEPTH), depths
            else:
                continue
        except (TypeError, ValueError) as error:
            raise HyperparameterValueError(str(error)) from None
        if chosen not in kept:
            kept.append(chosen)
    return {"widths": widths, "depths": depths}


def check_values(space, values: dict[str, Any]) -> None:
    """Refuses names the space lacks and values outside their hyperparameter's choices.

    Args:
        space: A `FlatNASHyperModel` (anything with `declare_hyperparameters`).
        values: Hyperparameter name -> value, as a trial records them.

    Raises:
        HyperparameterValueError: A name or a value the space does not have.

    Example:
    ```python
    check_values(space, {"stage1_depth": 1})   # raises if depth 1 is not a choice
    ```
    """
    import keras_tuner

    declared = keras_tuner.HyperParameters()
    space.declare_hyperparameters(declared)
    parameters = {p.name: p for p in declared.space}
    unknown = sorted(set(values) - set(parameters))
    if unknown:
        raise HyperparameterValueError(f"unknown hyperparameters {unknown} for this search space.")
    for name, value in values.items():
        allowed = getattr(parameters[name], "values", None)
        if allowed is not None and value not in allowed:
            raise HyperparameterValueError(
                f"{name}={value!r} is not in the search space; choose one of {allowed}."
            )
