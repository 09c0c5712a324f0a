"""`flatnas-tf train`: one architecture trained as a search's trial is (longer if asked), saved."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import click

from flatnas_tf import storage
from flatnas_tf._version import __version__
from flatnas_tf.cli import errors, inputs, runs
from flatnas_tf.cli import options as opt
from flatnas_tf.defaults import VALIDATION_FRACTION


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
@click.option("--epochs", type=click.IntRange(min=1), default=10)
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
    validation and test accuracy are then measured in inference mode.
    """
    import keras
    import keras_tuner

    from flatnas_tf.cli import models

    if options["deterministic"]:
        inputs.enable_determinism()
    settings: dict[str, Any] = {}
    if options["search_dir"]:
        if not options["trial_id"]:
            raise click.UsageError("--search needs --trial ID (see the search's report).")
        run = inputs.search_dir(options["search_dir"])
        settings.update(run.settings())
        from flatnas_tf.tuners.result import SearchResult

        trial = inputs.find_trial(SearchResult.load(run.project_dir), options["trial_id"])
        values = dict(trial.values)
    elif options["hyperparameters"]:
        try:
            values = json.loads(pathlib.Path(options["hyperparameters"]).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise click.BadParameter(str(error), param_hint="--hyperparameters") from None
        if not isinstance(values, dict):
            raise click.BadParameter(
                "must hold a JSON object of name: value.", param_hint="--hyperparameters"
            )
        if not options["data"]:
            raise click.UsageError("--hyperparameters needs --data.")
    else:
        raise click.UsageError(
            "pass --search DIR --trial ID, or --hyperparameters FILE --data SPEC."
        )
    training = runs.Training.from_settings(settings).override(
        **{name: options[name] for name in runs.Training.names()}
    )
    data = inputs.load_data(
        options["data"] or settings["data"],
        options["data_dir"] or settings.get("data_dir"),
        settings.get("validation_fraction", VALIDATION_FRACTION),
        options["seed"],
    )
    settings.update(
        input_shape=list(data.input_shape),
        num_classes=data.num_classes,
        label_names=list(data.label_names),
        data=options["data"] or settings["data"],
    )
    keras.utils.set_random_seed(options["seed"])
    space = models.hypermodel(settings, training)
    hp = keras_tuner.HyperParameters()
    space.declare_hyperparameters(hp)
    unknown = sorted(set(values) - {p.name for p in hp.space})
    if unknown:
        raise click.BadParameter(
            f"unknown hyperparameters {unknown} for this search space.",
            param_hint="--hyperparameters",
        )
    hp.values.update(values)
    model = space.build(hp)
    training.regime().fit(
        model,
        data.batches("train", options["batch_size"], training=True, seed=options["seed"]),
        epochs=options["epochs"],
        verbose=1 if options["verbose"] else 2,
    )
    _, val_accuracy = model.evaluate(data.batches("validation", options["batch_size"]), verbose=0)
    _, accuracy = model.evaluate(data.batches("test", options["batch_size"]), verbose=0)
    out = pathlib.Path(options["out"])
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    manifest = {
        "hyperparameters": hp.values,
        "val_accuracy": val_accuracy,
        "test_accuracy": accuracy,
        "epochs": options["epochs"],
        "input_shape": list(data.input_shape),
        "label_names": list(data.label_names),
        "data": settings["data"],
        # The split its data was loaded with: `evaluate` of this directory reuses it.
        "data_dir": options["data_dir"] or settings.get("data_dir"),
        "seed": options["seed"],
        "validation_fraction": settings.get("validation_fraction", VALIDATION_FRACTION),
        "training": training.to_settings(),
        "flatnas_tf_version": __version__,
    }
    storage.write_json(out / "manifest.json", manifest)
    click.echo(
        f"validation accuracy {100 * val_accuracy:.2f}%, test accuracy {100 * accuracy:.2f}%; "
        f"saved {out / 'model.keras'}"
    )
