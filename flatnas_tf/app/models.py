"""A search's library objects from its `run.json`: space, the search, its trials' models.

A run directory's `run.json` records the data shape, the space and the
training (`TrainingConfig`); from them come the hypermodel that rebuilds any
trial (`SearchResult.load_model`) and what an export's manifest says about
the data. `find_trial` and `trial_model` name a trial and rebuild its model,
each failure a `TrialError`; `export_trials` exports trials (default: the
front) to OUT/models/, as `flatnas-tf export` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flatnas_tf.app.runs import UNRECORDED_SETTINGS, RunDirectory, RunError, TrialError
from flatnas_tf.app.split import DataSplit
from flatnas_tf.space.hypermodel import FlatNASHyperModel
from flatnas_tf.training.config import TrainingConfig
from flatnas_tf.tuners.result import SearchResult

if TYPE_CHECKING:
    import keras

    from flatnas_tf.tuners.records import TrialRecord

__all__ = [
    "export_metadata",
    "export_trials",
    "find_trial",
    "hypermodel",
    "search_result",
    "trial_model",
]


def hypermodel(settings: dict[str, Any], training: TrainingConfig) -> FlatNASHyperModel:
    """The space of a search (its data shape, widths and depths), compiling with `training`."""
    return FlatNASHyperModel(
        tuple(settings["input_shape"]),
        settings["num_classes"],
        training=training.compile_settings(),
        width_multipliers=settings.get("widths", (0.5, 0.75, 1.0)),
        depths=settings.get("depths", UNRECORDED_SETTINGS["depths"]),
    )


def search_result(run: RunDirectory, settings: dict[str, Any]) -> SearchResult:
    """The search of a run directory, with the hypermodel that builds its trials."""
    training = TrainingConfig.from_settings(settings)
    return SearchResult.load(run.project_dir, hypermodel=hypermodel(settings, training))


def export_metadata(settings: dict[str, Any]) -> dict[str, Any]:
    """What an export's manifest says beyond the model itself.

    The data set and its split (seed, validation fraction, TFDS directory), so
    that `flatnas-tf evaluate` of the export measures on the same test images,
    and the training its candidates had (`TrainingConfig`).
    """
    if "data" not in settings:
        raise RunError("the search's run.json records no data set (key `data`); it is damaged.")
    try:
        split = DataSplit.from_settings(settings)
    except ValueError as error:
        raise RunError(f"the search's run.json records no usable data split: {error}") from None
    return {
        "label_names": list(settings["label_names"]),
        **split.to_settings(),
        "training": TrainingConfig.from_settings(settings).to_settings(),
    }


def find_trial(result: SearchResult, trial_id: str | int) -> TrialRecord:
    """Trial `trial_id` of a search.

    Raises:
        TrialError: The search holds no such trial (the message lists those it holds).
    """
    try:
        return result.trial(trial_id)
    except KeyError as error:
        raise TrialError(error.args[0]) from None


def trial_model(result: SearchResult, trial: TrialRecord) -> keras.Model:
    """The trained model of `trial`, rebuilt from its hyperparameters and checkpoint.

    Raises:
        TrialError: The trial has no model to rebuild (it did not finish, or
            its checkpoint is missing).
    """
    try:
        return result.load_model(trial)
    except ValueError as error:
        raise TrialError(str(error)) from None


def export_trials(
    run: RunDirectory,
    trial_ids: Sequence[str] = (),
    *,
    tflite: bool = False,
    echo: Callable[[str], None] = lambda line: None,
) -> dict[str, Path]:
    """Exports trials of the search in `run` to OUT/models/trial_<id>/, written afresh.

    Each export holds the SavedModel, model.keras (and model.tflite with
    `tflite`, when it converts cleanly) and manifest.json with the run's data
    split and training (`export_metadata`), written last.

    Args:
        run: The search's directory.
        trial_ids: The trials to export; empty: its Pareto front.
        tflite: Also convert to TFLite.
        echo: Called with each note of the export (a TFLite conversion declined, ...).

    Returns:
        Trial id -> its export directory, in the order exported.

    Raises:
        TrialError: An unknown trial, or one without a model.
        RunError: `run` is not a search, or it has no front yet.

    Example:
    ```python
    exported = export_trials(RunDirectory(Path("runs/digits")), ["003"])
    ```
    """
    settings = run.settings()
    result = search_result(run, settings)
    trials = [find_trial(result, trial_id) for trial_id in trial_ids] or result.front()
    if not trials:
        raise RunError(f"{run.root} has no finished trial on a Pareto front yet.")
    metadata = export_metadata(settings)
    exported = {}
    for trial in trials:
        model = trial_model(result, trial)
        target = run.model_dir(trial.trial_id)
        for note in result.export(trial, target, tflite, metadata, model):
            echo(note)
        exported[trial.trial_id] = target
    return exported
