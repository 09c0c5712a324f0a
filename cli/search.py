"""`flatnas-tf search`: the Pareto front of accuracy, flatness and size, from the options.

The command checks its options (each failure one line naming the option),
resolves those that depend on others (--epochs, --learning-rate, --widths and
--depths through a supernet), builds the `SearchConfig`, and runs it with the
library's `run_search` (run.json, resume, the tuner, the search, its report,
the front's OOD evaluation and exports); then it prints the summary.
"""

from __future__ import annotations

import pathlib
import sys
import time
from importlib.util import find_spec
from typing import Any

import click

from flatnas_tf.app import runs
from flatnas_tf.app.search import (
    DEFAULT_EPOCHS,
    DEFAULT_FINE_TUNE_EPOCHS,
    SearchConfig,
    SearchConfigError,
)
from flatnas_tf.cli import distributed, errors, inputs
from flatnas_tf.cli import options as opt
from flatnas_tf.defaults import OOD_EXAMPLES
from flatnas_tf.training.config import TrainingConfig
from flatnas_tf.tuners.objectives import MODES

#: The defaults of the search's options (`SearchConfig`'s, the one place they are set).
DEFAULTS = SearchConfig()


@click.command()
@opt.CONFIG
@opt.data_options
@click.option(
    "--out",
    default=None,
    help="Output directory (default runs/<data set>); its layout: docs/cli.md.",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default=DEFAULTS.mode,
    help="flatnas: the paper's error traded against R by --alpha, and params; pareto: "
    "accuracy, R and params as three objectives (tuners/objectives.py defines both).",
)
@click.option(
    "--alpha",
    type=opt.FiniteFloatRange(0, 1),
    default=DEFAULTS.alpha,
    help="Error/flatness trade-off of --mode flatnas (1 = accuracy only).",
)
@click.option(
    "--max-trials",
    type=click.IntRange(min=1),
    default=DEFAULTS.max_trials,
    help="Trials in all (over-budget and failed ones count).",
)
@click.option(
    "--widths",
    type=click.UNPROCESSED,  # a TOML list reaches the callback as a list
    default=",".join(f"{w:g}" for w in DEFAULTS.widths),
    callback=lambda ctx, param, value: opt.widths(value),
    help="Width multipliers the search may choose, comma-separated (the paper's space: "
    "0.5,0.75,1.0; the default keeps the quick digits search to minutes).",
)
@opt.depths(
    "Stage depths (blocks per stage) the search may choose, comma-separated; shallower is "
    "smaller and faster (1: a quick search). Through a supernet: the supernet's."
)
@click.option(
    "--population",
    type=click.IntRange(min=2),
    default=DEFAULTS.population,
    help="NSGA-II population size.",
)
@click.option(
    "--surrogate",
    is_flag=True,
    help="Surrogate-assisted search: after --surrogate-initial trials, predict validation "
    "accuracy and R from the trained ones and train only the candidates an NSGA-II search on "
    "the predictions chooses (--surrogate-candidates per refit).",
)
@click.option(
    "--surrogate-initial",
    type=click.IntRange(min=4),
    default=None,
    help="With --surrogate: trials before the first prediction (default: one --population).",
)
@click.option(
    "--surrogate-candidates",
    type=click.IntRange(min=1),
    default=None,
    help="With --surrogate: candidates trained per refit (default: --population).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=0),
    default=None,
    help=f"Training epochs per trial, from random weights (default {DEFAULT_EPOCHS}), or "
    f"fine-tuning epochs with --supernet (default {DEFAULT_FINE_TUNE_EPOCHS}; 0: inherited "
    "weights only); then BatchNorm statistics are recalibrated and validation accuracy and "
    "R measured once.",
)
@click.option(
    "--supernet",
    "supernet_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A trained supernet (`flatnas-tf supernet --out DIR`, same --data, "
    "--validation-fraction and --seed): candidates inherit its weights and are fine-tuned "
    "for --epochs instead of trained from scratch; the width is the supernet's.",
)
@opt.BATCH_SIZE
@opt.training_options(
    inherited=False,
    learning_rate_help=f"default {opt.TRAINING.learning_rate}, or "
    f"{TrainingConfig.FINE_TUNE_LEARNING_RATE} with --supernet.",
)
@click.option(
    "--sigma",
    type=opt.FiniteFloatRange(min=0),
    default=DEFAULTS.sigma,
    help="Weight-noise scale of the flatness measure R.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=DEFAULTS.samples,
    help="Weight perturbations per R measurement.",
)
@click.option(
    "--max-params",
    type=opt.FiniteFloatRange(min=0, min_open=True),
    default=DEFAULTS.max_params,
    help="Parameter limit: larger candidates are recorded, never trained.",
)
@opt.seed("Seed of the split and the search.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Delete a previous search in --out and start afresh (default: resume it).",
)
@opt.ood(
    "none",
    "After the search, evaluate the front under corruptions: built-in ones of --data, "
    "TFDS CIFAR-10-C, or a corrupted set's directory (`flatnas-tf prepare corrupted`).",
)
@click.option(
    "--ood-examples",
    type=click.IntRange(min=1),
    default=OOD_EXAMPLES,
    help="Test images per corruption and severity in --ood.",
)
@opt.FROST_DIR
@click.option(
    "--export/--no-export",
    default=True,
    help="Export the front's models (SavedModel, .keras) to OUT/models/.",
)
@distributed.OPTIONS
@click.option(
    "--tensorboard",
    "tensorboard_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="TensorBoard log directory: each trial's training curves, and HParams with every "
    'figure as a metric. Needs `pip install "flatnas-tf[tensorboard]"`.',
)
@opt.DETERMINISTIC
@opt.VERBOSE
@errors.fail_cleanly
@errors.quiet_tensorflow
def search(**options: Any) -> None:
    """Search architectures: the Pareto front of accuracy, flatness and size.

    With no options: a small real search on the bundled digits data set that
    runs offline in minutes on a laptop CPU.
    """
    from flatnas_tf.app import evaluation
    from flatnas_tf.app.search import run_search
    from flatnas_tf.tuners.progress import clock

    out = options["out"] or runs.default_directory(options["data"])
    distributed.take_role(options)
    if options["deterministic"]:
        inputs.enable_determinism()
    split = inputs.data_split(options)
    ood_source = None  # built-in corruptions: the data set, once loaded
    if options["ood"] == "builtin":
        inputs.check_frost_dir(options["frost_dir"])
    elif options["ood"] != "none":  # read now: a wrong or unfinished set fails at once
        ood_source = evaluation.ood_source(options["ood"], None, split)
    if options["tensorboard_dir"] and find_spec("tensorboard") is None:
        raise click.BadParameter(
            'needs the tensorboard package: pip install "flatnas-tf[tensorboard]".',
            param_hint="--tensorboard",
        )
    data = inputs.load_data(split)
    config = _config(options, split)
    callbacks = []
    if options["tensorboard_dir"]:
        import keras

        callbacks.append(keras.callbacks.TensorBoard(options["tensorboard_dir"]))
    if options["ood"] == "builtin":
        ood_source = data
    run = runs.RunDirectory(pathlib.Path(out))
    started = time.monotonic()
    try:
        finished = run_search(
            config,
            out,
            overwrite=options["overwrite"],
            data=data,
            ood_source=ood_source,
            ood_examples=options["ood_examples"],
            frost_dir=options["frost_dir"],
            export=options["export"],
            callbacks=callbacks,
            tuner_options=distributed.tuner_options(options),
            verbose=2 if options["verbose"] else 1,  # a line per trial start and end; bars
            echo=click.echo,
        )
    except KeyboardInterrupt:
        click.echo(
            f"\nInterrupted: finished trials are saved in {run.project_dir}. Run the same "
            "command again to resume.",
            err=True,
        )
        sys.exit(130)
    if finished is None:
        click.echo("Worker finished: the chief holds the results.")
        return
    front, kept = finished.front, finished.kept
    if kept:
        click.echo(
            f"Kept the exports of trial{'s' if len(kept) > 1 else ''} {', '.join(kept)} from an "
            f"earlier run (`flatnas-tf export {run.root}` writes them again)."
        )
    click.echo(f"Report: {finished.report_file}")
    if options["export"] and front:
        click.echo(f"Models: {run.root / 'models'}")
    if finished.ood:
        click.echo(f"OOD: {run.ood_dir}")
    exported = ""
    if options["export"] and front:
        exported = f", {len(finished.exported)} exported" + (f", {len(kept)} kept" if kept else "")
    click.echo(
        f"Done in {clock(time.monotonic() - started)}: {len(finished.result.trials)} trials, "
        f"{len(front)} on the Pareto front{exported}."
    )


def _config(options: dict[str, Any], split) -> SearchConfig:
    """The SearchConfig of the options (`SearchConfig.resolved`: defaults by how trials train)."""
    source = click.get_current_context().get_parameter_source("widths")
    given = source not in (None, click.core.ParameterSource.DEFAULT)
    training = {name: options[name] for name in TrainingConfig.names() if name != "learning_rate"}
    try:
        return SearchConfig.resolved(
            widths=options["widths"] if given else None,
            depths=options["depths"],
            epochs=options["epochs"],
            learning_rate=options["learning_rate"],
            training=TrainingConfig(**training),
            supernet_dir=options["supernet_dir"],
            split=split,
            mode=options["mode"],
            alpha=options["alpha"],
            max_trials=options["max_trials"],
            population=options["population"],
            batch_size=options["batch_size"],
            sigma=options["sigma"],
            samples=options["samples"],
            max_params=options["max_params"],
            surrogate=options["surrogate"],
            surrogate_initial=options["surrogate_initial"],
            surrogate_candidates=options["surrogate_candidates"],
        )
    except SearchConfigError as error:
        hint = "--" + error.field.replace("_", "-")
        raise click.BadParameter(str(error), param_hint=hint) from None
