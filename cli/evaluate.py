"""`flatnas-tf evaluate TARGET`: test accuracy and OOD table of an export, a model file, a trial."""

from __future__ import annotations

import pathlib
from typing import Any

import click

from flatnas_tf import storage
from flatnas_tf.cli import errors, inputs, runs
from flatnas_tf.cli import options as opt
from flatnas_tf.defaults import VALIDATION_FRACTION


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
    import numpy as np

    from flatnas_tf.cli import models
    from flatnas_tf.export import exported_model, load_model
    from flatnas_tf.ood import evaluate_ood

    target = pathlib.Path(options["target"])
    if options["ood"] == "builtin":
        inputs.check_frost_dir(options["frost_dir"])
    settings: dict[str, Any] = {}
    from_search = (target / runs.RUN_FILE).is_file()
    if from_search:
        if not options["trial_id"]:
            raise click.UsageError("TARGET is a search directory: pass --trial ID.")
        run = inputs.search_dir(str(target))
        settings = run.settings()
        result = models.search_result(run, settings)
        trial = inputs.find_trial(result, options["trial_id"])
        model = inputs.trial_model(result, trial)
        out = pathlib.Path(options["out"] or run.root / "evaluate" / f"trial_{trial.trial_id}")
    else:
        target, manifest_dir, settings = exported_model(target)
        out = pathlib.Path(options["out"] or manifest_dir)
    spec = options["data"] or settings.get("data")
    if spec is None:
        raise click.UsageError(
            "pass --data: the data set to evaluate on (no manifest.json beside TARGET says it)."
        )
    seed = options["seed"] if options["seed"] is not None else settings.get("seed", 0)
    if not from_search and options["data"] is None:
        click.echo(f"Data set from {manifest_dir / 'manifest.json'}: {spec}, split seed {seed}")
    validation_fraction = settings.get("validation_fraction", VALIDATION_FRACTION)
    data_dir = options["data_dir"] or settings.get("data_dir")
    data = inputs.load_data(spec, data_dir, validation_fraction, seed)
    ood_source = None
    if options["ood"] != "none":
        split = inputs.data_split(spec, seed, validation_fraction)
        ood_source = inputs.ood_source(options["ood"], data, split)
    if not from_search:
        try:
            model = load_model(target, data.input_shape)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="TARGET") from None
    x, y = zip(*data.test.as_numpy_iterator(), strict=True)
    accuracy = float(np.mean(np.argmax(model.predict(np.stack(x), verbose=0), -1) == np.array(y)))
    click.echo(f"test accuracy ({spec}): {100 * accuracy:.2f}%")
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "target": str(target),
        "trial": options["trial_id"],
        "data": spec,
        "test_accuracy": accuracy,
    }
    if ood_source is not None:
        result = evaluate_ood(
            model,
            ood_source,
            max_examples=options["max_examples"],
            clean=data,
            data_dir=options["data_dir"],
            frost_dir=options["frost_dir"],
        )
        click.echo(result.to_markdown())
        result.write(out / "ood")
        summary["ood"] = result.to_dict()
    storage.write_json(out / "evaluation.json", summary)
    click.echo(f"Written: {out / 'evaluation.json'}")
