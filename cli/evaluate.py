"""`flatnas-tf evaluate TARGET`: test accuracy and OOD table of an export, a model file, a trial."""

from __future__ import annotations

import pathlib
from typing import Any

import click

from flatnas_tf.app import runs
from flatnas_tf.cli import errors, inputs
from flatnas_tf.cli import options as opt


@click.command()
@click.argument("target", type=click.Path(exists=True))
@opt.trial("With a search directory as TARGET: the trial to evaluate.")
@click.option(
    "--data",
    default=None,
    help="Data set for ID accuracy and built-in corruptions (default: the search's).",
)
@opt.DATA_DIR
@opt.ood(
    "builtin",
    "Corruption benchmark: built-in corruptions of --data, TFDS CIFAR-10-C, a corrupted "
    "set's directory (`flatnas-tf prepare corrupted`: read, not computed), or none.",
)
@opt.FROST_DIR
@click.option(
    "--max-examples",
    type=click.IntRange(min=1),
    default=None,
    help="Test images per cell (default: all).",
)
@opt.seed(
    "Seed of the data split (default: the search's, else 0): use the one the model was "
    "trained with, or its test images may include training images.",
    default=None,
)
@click.option(
    "--out", default=None, help="Directory for evaluation.json/.csv/.md (default: next to TARGET)."
)
@errors.fail_cleanly
@errors.quiet_tensorflow
def evaluate(**options: Any) -> None:
    """ID accuracy and the OOD table (mCE) of a SavedModel, a .keras file or a trial.

    TARGET is a SavedModel directory, a .keras file, or a search directory with --trial.
    A .keras file is loaded in Keras' safe mode (no code in it runs); a SavedModel is a
    TensorFlow program that runs its own ops: evaluate only SavedModels you trust.
    """
    from flatnas_tf.app.evaluation import evaluate_model, evaluation_target, ood_source

    if options["ood"] == "builtin":
        inputs.check_frost_dir(options["frost_dir"])
    is_search = runs.RunDirectory(pathlib.Path(options["target"])).is_search()
    if is_search and not options["trial_id"]:
        raise click.UsageError("TARGET is a search directory: pass --trial ID.")
    if options["trial_id"] and not is_search:
        raise click.UsageError("--trial is for a search directory; TARGET is a model.")
    target = evaluation_target(options["target"], options["trial_id"])
    if options["data"] is None and target.settings.get("data") is None:
        raise click.UsageError(
            "pass --data: the data set to evaluate on (no manifest.json beside TARGET says it)."
        )
    split = inputs.recorded_split(
        target.settings, data=options["data"], data_dir=options["data_dir"], seed=options["seed"]
    )
    if target.manifest_dir is not None and options["data"] is None:
        click.echo(
            f"Data set from {target.manifest_dir / 'manifest.json'}: {split.data}, "
            f"split seed {split.seed}"
        )
    data = inputs.load_data(split)
    source = None if options["ood"] == "none" else ood_source(options["ood"], data, split)
    try:
        model = target.load(data.input_shape)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="TARGET") from None
    evaluation = evaluate_model(
        model,
        data,
        pathlib.Path(options["out"] or target.out),
        target=target.path,
        trial_id=target.trial_id,
        ood_source=source,
        max_examples=options["max_examples"],
        data_dir=options["data_dir"],
        frost_dir=options["frost_dir"],
        echo=click.echo,
    )
    click.echo(f"Written: {evaluation.summary_file}")
