"""`flatnas-tf train`: one architecture trained as a search's trial is (longer if asked), saved."""

from __future__ import annotations

import pathlib
from typing import Any

import click

from flatnas_tf.app import runs
from flatnas_tf.cli import errors, inputs
from flatnas_tf.cli import options as opt
from flatnas_tf.defaults import TRAIN_EPOCHS
from flatnas_tf.training.config import TrainingConfig


@click.command()
@click.option(
    "--search",
    "search_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A search directory to take the architecture from.",
)
@opt.trial("Trial id in --search.")
@click.option(
    "--hyperparameters",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="JSON file of hyperparameter values (instead of --search/--trial).",
)
@click.option(
    "--data",
    default=None,
    help="Data set (default: the search's; required with --hyperparameters).",
)
@opt.DATA_DIR
@click.option("--epochs", type=click.IntRange(min=1), default=TRAIN_EPOCHS)
@opt.BATCH_SIZE
@opt.training_options(
    inherited=True,
    learning_rate_help=f"default: the search's, else {opt.TRAINING.learning_rate}.",
)
@opt.seed("Seed of the data split and of the training.")
@click.option("--out", required=True, help="Directory for model.keras and manifest.json.")
@opt.DETERMINISTIC
@opt.VERBOSE
@errors.fail_cleanly
@errors.quiet_tensorflow
def train(**options: Any) -> None:
    """Train one architecture as a search's trial does (longer if asked) and save it.

    After training, BatchNorm statistics are recalibrated on training images;
    the validation figures a trial records (accuracy, R at the search's sigma)
    and test accuracy are then measured in inference mode.
    """
    from flatnas_tf.app.models import find_trial
    from flatnas_tf.app.training import (
        HyperparameterValueError,
        read_hyperparameters,
        train_architecture,
    )
    from flatnas_tf.tuners.result import SearchResult

    if options["deterministic"]:
        inputs.enable_determinism()
    settings: dict[str, Any] = {}
    if options["search_dir"]:
        if not options["trial_id"]:
            raise click.UsageError("--search needs --trial ID (see the search's report).")
        run = runs.RunDirectory(pathlib.Path(options["search_dir"]))
        settings.update(run.settings())
        values = dict(find_trial(SearchResult.load(run.project_dir), options["trial_id"]).values)
    elif options["hyperparameters"]:
        try:
            values = read_hyperparameters(options["hyperparameters"])
        except HyperparameterValueError as error:
            raise click.BadParameter(str(error), param_hint="--hyperparameters") from None
        if not options["data"]:
            raise click.UsageError("--hyperparameters needs --data.")
    else:
        raise click.UsageError(
            "pass --search DIR --trial ID, or --hyperparameters FILE --data SPEC."
        )
    training = TrainingConfig.from_settings(settings).override(
        **{name: options[name] for name in TrainingConfig.names()}
    )
    split = inputs.recorded_split(
        settings, data=options["data"], data_dir=options["data_dir"], seed=options["seed"]
    )
    data = inputs.load_data(split)
    try:
        trained = train_architecture(
            values,
            data,
            options["out"],
            split=split,
            settings=settings if options["search_dir"] else None,
            training=training,
            epochs=options["epochs"],
            batch_size=options["batch_size"],
            verbose=1 if options["verbose"] else 2,
        )
    except HyperparameterValueError as error:
        raise click.BadParameter(str(error), param_hint="--hyperparameters") from None
    click.echo(
        f"validation accuracy {100 * trained.val_accuracy:.2f}%, R "
        f"{trained.figures['robustness']:.2f}, test accuracy "
        f"{100 * trained.test_accuracy:.2f}%; saved {trained.model_file}"
    )
