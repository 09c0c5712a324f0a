"""A model's test accuracy and its OOD table, written beside it: what `flatnas-tf evaluate` does.

What it evaluates (`evaluation_target`): a search's trial (the search
directory and a trial id; the split its run.json records), an export
directory, or a SavedModel or .keras file (the split its manifest.json
records, when it has one).

What it measures and writes:

    accuracy   the model's predictions on the test split of the data set,
               argmax against the labels (a SavedModel wrapped for
               prediction has no `evaluate`, so predictions, not Keras' metric)
    OOD        `flatnas_tf.robustness.ood.evaluate_ood` on the given source (built-in
               corruptions of the data, TFDS CIFAR-10-C or a corrupted set:
               `ood_source`, which refuses a set of another data set or
               split), written as OUT/ood.json, .csv and .md
    summary    OUT/evaluation.json (atomically, last): target, trial, data
               set, test accuracy and the OOD summary
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flatnas_tf.app import runs
from flatnas_tf.app.split import DataSplit
from flatnas_tf.persistence import storage

__all__ = [
    "EVALUATION_FILE",
    "OOD_CHOICES",
    "Evaluation",
    "EvaluationTarget",
    "accuracy_on_test_split",
    "evaluate_model",
    "evaluation_target",
    "ood_source",
]

#: The summary of an evaluation, in its directory.
EVALUATION_FILE = "evaluation.json"
#: The named OOD sources; any other choice is a corrupted set's directory.
OOD_CHOICES = ("builtin", "cifar10_corrupted")


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What `evaluate_model` measured and wrote.

    Attributes:
        test_accuracy: Accuracy on the test split, in [0, 1].
        ood: The OOD result (`flatnas_tf.robustness.ood.OODResult`), or None without a source.
        summary_file: The evaluation.json written.
    """

    test_accuracy: float
    ood: Any
    summary_file: Path


@dataclasses.dataclass(frozen=True)
class EvaluationTarget:
    """A model to evaluate: a search's trial, an export or a model file (`evaluation_target`).

    Attributes:
        path: The model's file or SavedModel, or the search's directory.
        settings: The data split it was trained on, as recorded: the
            search's run.json settings, or the manifest's data keys (empty
            without a manifest).
        out: Where its evaluation is written unless told otherwise:
            SEARCH/evaluate/trial_<id>, the export's directory, or the model
            file's own.
        loader: Loads the model, given the data's image shape.
        trial_id: The search's trial, when the target is one.
        manifest_dir: Where a manifest.json beside the model would be (the
            export's directory, or the model's own; None for a search's trial).
    """

    path: Path
    settings: dict[str, Any]
    out: Path
    loader: Callable[[tuple[int, ...]], Any] = dataclasses.field(repr=False)
    trial_id: str | None = None
    manifest_dir: Path | None = None

    def load(self, input_shape: tuple[int, ...]):
        """The model: pixels in [0, 255] -> logits.

        Args:
            input_shape: The data's image shape (that of a SavedModel without
                a manifest beside it).

        Raises:
            ValueError: The file is not a model this library loads.
        """
        return self.loader(input_shape)


def evaluation_target(path: str | os.PathLike, trial_id: str | None = None) -> EvaluationTarget:
    """What `path` is to evaluate, and the split its record says it was trained on.

    Args:
        path: A search directory (with `trial_id`), an export directory, or a
            SavedModel or .keras file.
        trial_id: The trial of a search directory.

    Returns:
        The target; its model is loaded by `EvaluationTarget.load`.

    Raises:
        flatnas_tf.app.runs.TrialError: A search directory without a trial id,
            or a trial it does not hold or cannot rebuild.
        flatnas_tf.app.runs.RunError: A search directory whose run.json
            cannot be read.

    Example:
    ```python
    target = evaluation_target("runs/digits", trial_id="003")
    split = DataSplit.from_settings(target.settings)
    model = target.load(split.load().input_shape)
    ```
    """
    path = Path(path)
    run = runs.RunDirectory(path)
    if run.is_search():
        from flatnas_tf.app import models

        if not trial_id:
            raise runs.TrialError(f"{path} is a search directory: name the trial to evaluate.")
        settings = run.settings()
        result = models.search_result(run, settings)
        trial = models.find_trial(result, trial_id)
        model = models.trial_model(result, trial)
        out = run.root / "evaluate" / f"trial_{trial.trial_id}"
        return EvaluationTarget(path, settings, out, lambda shape: model, trial.trial_id)
    from flatnas_tf.persistence.export import exported_model, load_model

    model_path, manifest_dir, settings = exported_model(path)
    return EvaluationTarget(
        model_path,
        settings,
        manifest_dir,
        lambda shape: load_model(model_path, shape),
        manifest_dir=manifest_dir,
    )


def ood_source(choice: str, data, split: DataSplit):
    """What `evaluate_ood` reads for an OOD choice: the data set, CIFAR-10-C or a corrupted set.

    Args:
        choice: "builtin" (the built-in corruptions of `data`),
            "cifar10_corrupted" (TFDS CIFAR-10-C), or the directory of a
            corrupted set (`write_corrupted_set`, `flatnas-tf prepare corrupted`).
        data: The data set, loaded (None: not yet; "builtin" then gives None).
        split: How the models to evaluate were trained: a corrupted set
            records its data set and split, and one of another is refused,
            since its test images may be those models' training images.

    Returns:
        `data`, "cifar10_corrupted" or the `CorruptedSet` (read now, so that a
        wrong or unfinished set fails before any work).

    Raises:
        flatnas_tf.robustness.corrupted_set.CorruptedSetError: Not a complete,
            intact corrupted set, or one of another data set or split.

    Example:
    ```python
    split = DataSplit("npz:cifar.npz", seed=0)
    source = ood_source("runs/cifar-c", None, split)
    ```
    """
    if choice == "builtin":
        return data
    if choice == "cifar10_corrupted":
        return choice
    from flatnas_tf.robustness.corrupted_set import CorruptedSetError, load_corrupted_set

    corrupted = load_corrupted_set(choice)
    identity = split.identity()
    recorded = {key: corrupted.manifest["description"].get(key) for key in identity}
    if None not in recorded.values() and recorded != identity:
        written = ", ".join(f"{key} {value}" for key, value in recorded.items())
        asked = ", ".join(f"{key} {value}" for key, value in identity.items())
        raise CorruptedSetError(
            f"The corrupted set {choice} was written from {written}; this run uses {asked}: its "
            "test images may be training images here. Write a set for this data (`flatnas-tf "
            "prepare corrupted`)."
        )
    return corrupted


def accuracy_on_test_split(model, data) -> float:
    """The fraction of `data`'s test images that `model` classifies right.

    Example:
    ```python
    accuracy_on_test_split(flatnas_tf.load_model("runs/digits/models/trial_007/model.keras"), data)
    ```
    """
    import numpy as np

    x, y = zip(*data.test.as_numpy_iterator(), strict=True)
    predicted = np.argmax(model.predict(np.stack(x), verbose=0), -1)
    return float(np.mean(predicted == np.array(y)))


def evaluate_model(
    model,
    data,
    out: str | os.PathLike,
    *,
    target: str | os.PathLike,
    trial_id: str | None = None,
    ood_source: Any = None,
    corruptions: str | Sequence[str] | None = None,
    severities: Sequence[int] | None = None,
    max_examples: int | None = None,
    data_dir: str | None = None,
    frost_dir: str | None = None,
    echo: Callable[[str], None] = lambda line: None,
) -> Evaluation:
    """Measures `model` on `data`'s test split, and under corruptions; writes the results in `out`.

    Args:
        model: A Keras model: pixels in [0, 255] -> logits.
        data: The data set (`flatnas_tf.load_dataset`), split as the model's
            training split was, so that its test images were never trained on.
        out: Directory of the results (made if missing).
        target: What was evaluated, as the summary names it.
        trial_id: The search's trial, when the model is one.
        ood_source: What `evaluate_ood` reads ("cifar10_corrupted", a
            `CorruptedSet`, or `data` for the built-in corruptions); None:
            accuracy only.
        corruptions: Which corruptions of the source (None: `evaluate_ood`'s
            default for it: CIFAR-10-C's 15, or every built-in one).
        severities: Which severities (None: 1 to 5).
        max_examples: Test images per corruption and severity (None: all).
        data_dir: TFDS data directory of CIFAR-10-C.
        frost_dir: The frost photographs of the built-in frost corruption.
        echo: Called with each line to show (the accuracy, the OOD table).

    Returns:
        What was measured, and the summary's path.

    Example:
    ```python
    evaluate_model(model, data, "runs/eval", target="model.keras", ood_source=data, echo=print)
    ```
    """
    accuracy = accuracy_on_test_split(model, data)
    echo(f"test accuracy ({data.name}): {100 * accuracy:.2f}%")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "target": str(target),
        "trial": trial_id,
        "data": data.name,
        "test_accuracy": accuracy,
    }
    result = None
    if ood_source is not None:
        from flatnas_tf.robustness.ood import evaluate_ood

        result = evaluate_ood(
            model,
            ood_source,
            corruptions,
            severities,
            max_examples=max_examples,
            clean=data,
            data_dir=data_dir,
            frost_dir=frost_dir,
        )
        echo(result.to_markdown())
        result.write(out / "ood")
        summary["ood"] = result.to_dict()
    summary_file = out / EVALUATION_FILE
    storage.write_json(summary_file, summary)
    return Evaluation(accuracy, result, summary_file)
