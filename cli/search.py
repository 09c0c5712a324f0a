"""`flatnas-tf search`: the Pareto front of accuracy, flatness and size, from the options.

The command checks its options, lays out the output directory (`runs.py`),
builds the tuner (from scratch, or through a supernet), runs the search, and
finishes it: the report, the front's OOD evaluation and its exports.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import re
import sys
import time
from importlib.util import find_spec
from typing import Any

import click

from flatnas_tf._version import __version__
from flatnas_tf.app import runs
from flatnas_tf.app.split import DataSplit
from flatnas_tf.cli import errors, inputs
from flatnas_tf.cli import options as opt

DEFAULT_EPOCHS = 8
#: Fine-tuning epochs of a candidate that inherits a supernet's weights.
DEFAULT_FINE_TUNE_EPOCHS = 2


@click.command()
@opt.CONFIG
@opt.data_options
@click.option(
    "--out",
    default=None,
    help="Output directory (default runs/<data set>); see README for its layout.",
)
@click.option(
    "--mode",
    type=click.Choice(["flatnas", "pareto"]),
    default="flatnas",
    help="flatnas: alpha*err + alpha_norm*(1-alpha)*R and params; pareto: accuracy, "
    "R and params as three objectives.",
)
@click.option(
    "--alpha",
    type=opt.FiniteFloatRange(0, 1),
    default=0.5,
    help="Error/flatness trade-off of --mode flatnas (1 = accuracy only).",
)
@click.option(
    "--max-trials",
    type=click.IntRange(min=1),
    default=10,
    help="Trials in all (over-budget and failed ones count).",
)
@click.option(
    "--widths",
    default="0.25,0.5",
    callback=lambda ctx, param, value: opt.widths(value),
    help="Width multipliers the search may choose, comma-separated (the paper's space: "
    "0.5,0.75,1.0; the default keeps the quick digits search to minutes).",
)
@click.option(
    "--population", type=click.IntRange(min=2), default=5, help="NSGA-II population size."
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
    f"{runs.Training.FINE_TUNE_LEARNING_RATE} with --supernet.",
)
@click.option(
    "--sigma",
    type=opt.FiniteFloatRange(min=0),
    default=0.05,
    help="Weight-noise scale of the flatness measure R.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=10,
    help="Weight perturbations per R measurement.",
)
@click.option(
    "--max-params",
    type=opt.FiniteFloatRange(min=0, min_open=True),
    default=5e6,
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
    default=500,
    help="Test images per corruption and severity in --ood.",
)
@opt.FROST_DIR
@click.option(
    "--export/--no-export",
    default=True,
    help="Export the front's models (SavedModel, .keras) to OUT/models/.",
)
@opt.distributed_options
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
    out = options["out"] or os.path.join("runs", re.sub(r"[^A-Za-z0-9_.-]+", "_", options["data"]))
    inputs.distributed_roles(
        options["role"], options["oracle_host"], options["oracle_port"], options["worker_id"]
    )
    if options["deterministic"]:
        inputs.enable_determinism()
    split = inputs.data_split(options)
    if options["ood"] == "builtin":
        inputs.check_frost_dir(options["frost_dir"])
    elif options["ood"] not in opt.OOD_CHOICES:
        inputs.ood_source(options["ood"], None, split)  # a wrong or unfinished set fails at once
    if options["tensorboard_dir"] and find_spec("tensorboard") is None:
        raise click.BadParameter(
            'needs the tensorboard package: pip install "flatnas-tf[tensorboard]".',
            param_hint="--tensorboard",
        )
    data = inputs.load_data(split)
    supernet_state = _supernet_for_search(options, split)
    training = runs.Training(**{name: options[name] for name in runs.Training.names()})
    settings = {key: options[key] for key in runs.DEFINING if key in options}
    settings.update(
        **training.to_settings(),
        surrogate=_surrogate_settings(options),
        data_dir=options["data_dir"],
        max_trials=options["max_trials"],
        input_shape=list(data.input_shape),
        num_classes=data.num_classes,
        label_names=list(data.label_names),
        flatnas_tf_version=__version__,
    )
    if supernet_state is not None:
        settings["supernet"] = {
            "path": str(pathlib.Path(options["supernet_dir"]).resolve()),
            "weights": supernet_state["weights"],
        }
    run = runs.RunDirectory(pathlib.Path(out))
    if options["role"] == "worker":
        run.settings()  # the chief lays the directory out and holds its lock; workers join it
        _search_in(run, settings, training, data, options, supernet_state)
        return
    with run.lock():
        _search_in(run, settings, training, data, options, supernet_state)


def _search_in(
    run: runs.RunDirectory,
    settings: dict[str, Any],
    training: runs.Training,
    data,
    options: dict[str, Any],
    supernet_state: dict[str, Any] | None,
) -> None:
    """The search itself, once the options are checked (under the directory's lock)."""
    started = time.monotonic()
    if options["role"] != "worker":
        resumed = run.prepare(settings, overwrite=options["overwrite"])
        ended = run.ended_trials() if resumed else 0
        through = ""
        if supernet_state is not None:
            through = (
                f" through the supernet in {options['supernet_dir']} "
                f"({supernet_state['epochs_done']} epochs, width {supernet_state['width']:g})"
            )
        if ended >= options["max_trials"]:
            click.echo(
                f"The search in {run.root} is finished ({ended} of {options['max_trials']} "
                "trials ran): nothing to train; its report is rebuilt. A larger --max-trials "
                "extends it."
            )
        else:
            click.echo(("Resuming" if resumed else "Starting") + f" search in {run.root}{through}")

    from flatnas_tf.app import models

    if supernet_state is None:
        from flatnas_tf.tuners import FlatNASTuner

        first = (FlatNASTuner, models.hypermodel(settings, training))
    else:
        from flatnas_tf.sandwich import load_supernet
        from flatnas_tf.tuners import SupernetTuner

        space = models.hypermodel(settings, training)
        supernet, _ = load_supernet(options["supernet_dir"], space)
        first = (SupernetTuner, supernet)
    with _without_reload_line():  # the line above said whether the search resumes
        tuner = first[0](
            first[1],
            regime=training.regime(),
            mode=options["mode"],
            alpha=options["alpha"],
            max_params=options["max_params"],
            population_size=options["population"],
            max_trials=options["max_trials"],
            seed=options["seed"],
            sigma=options["sigma"],
            samples=options["samples"],
            trial_lease_s=options["worker_timeout"] if options["role"] == "chief" else None,
            surrogate=_surrogate(settings),
            token_file=options["token_file"],
            chief_timeout_s=options["chief_timeout"],
            tls=_tls(options),
            directory=str(run.root),
            project_name=runs.PROJECT,
            overwrite=False,
        )
    tuner.oracle.max_trials = options["max_trials"]  # a resumed search may be extended
    train = data.batches("train", options["batch_size"], training=True, seed=options["seed"])
    validation = data.batches("validation", options["batch_size"])
    callbacks = []
    if options["tensorboard_dir"]:
        import keras

        callbacks.append(keras.callbacks.TensorBoard(options["tensorboard_dir"]))
    try:
        tuner.search(
            train,
            validation_data=validation,
            epochs=options["epochs"],
            verbose=2 if options["verbose"] else 1,  # a line per trial start and end; bars
            shuffle=False,  # the pipeline shuffles; Keras would warn at every trial
            callbacks=callbacks,
        )
    except KeyboardInterrupt:
        tuner.save()
        click.echo(
            f"\nInterrupted: finished trials are saved in {run.project_dir}. Run the "
            "same command again to resume.",
            err=True,
        )
        sys.exit(130)
    if options["role"] is not None and os.environ["KERASTUNER_TUNER_ID"] != "chief":
        click.echo("Worker finished: the chief holds the results.")
        return
    _finish(run, settings, data, options, tuner, started)


def _tls(options: dict[str, Any]):
    """--tls-cert/--tls-key (chief) and --tls-ca (worker) as the tuner's TLS files, or None."""
    if not (options["tls_cert"] or options["tls_key"] or options["tls_ca"]):
        return None
    from flatnas_tf.tuners.access import TLS

    return TLS(options["tls_cert"], options["tls_key"], trusted=options["tls_ca"])


def _surrogate_settings(options: dict[str, Any]) -> dict[str, int] | None:
    """run.json's record of --surrogate (None without it)."""
    if not options["surrogate"]:
        for name in ("surrogate_initial", "surrogate_candidates"):
            if options[name] is not None:
                flag = "--" + name.replace("_", "-")
                raise click.BadParameter("needs --surrogate.", param_hint=flag)
        return None
    return {
        "initial_trials": options["surrogate_initial"] or options["population"],
        "candidates": options["surrogate_candidates"] or options["population"],
    }


def _surrogate(settings: dict[str, Any]):
    """The tuner's SurrogateSettings of a run's settings (None for plain NSGA-II)."""
    if not settings.get("surrogate"):
        return None
    from flatnas_tf.tuners import SurrogateSettings

    return SurrogateSettings(**settings["surrogate"])


@contextlib.contextmanager
def _without_reload_line():
    """Drops KerasTuner's "Reloading Tuner from ..." line; other output passes (e.g. recoveries)."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if not line.startswith("Reloading Tuner from "):
                click.echo(line)


def _supernet_for_search(options: dict[str, Any], split: DataSplit) -> dict[str, Any] | None:
    """Checks --supernet against the search's options; resolves --epochs and --widths.

    Returns:
        The supernet's state, or None for a from-scratch search.
    """
    ctx = click.get_current_context()
    if options["supernet_dir"] is None:
        if options["epochs"] == 0:
            raise click.BadParameter(
                "0 epochs trains nothing: from scratch a trial needs at least 1 (0 is for "
                "--supernet, whose candidates inherit trained weights).",
                param_hint="--epochs",
            )
        options["epochs"] = options["epochs"] or DEFAULT_EPOCHS
        options["learning_rate"] = options["learning_rate"] or opt.TRAINING.learning_rate
        return None
    from flatnas_tf.sandwich import read_supernet_state

    state = read_supernet_state(options["supernet_dir"])
    identity = split.identity()
    trained_on = state.get("data") or {}
    if {key: trained_on.get(key) for key in identity} != identity:
        raise click.UsageError(
            f"the supernet in {options['supernet_dir']} was trained on "
            f"{trained_on or 'unknown data'}; this search uses {identity}. Its training images "
            "could be in this search's validation split: pass the same --data, "
            "--validation-fraction and --seed, or train a supernet for these "
            "(`flatnas-tf supernet`)."
        )
    width = float(state["width"])
    source = ctx.get_parameter_source("widths")
    if source not in (None, click.core.ParameterSource.DEFAULT) and options["widths"] != [width]:
        raise click.BadParameter(
            f"the supernet has width {width:g}: leave --widths out, or pass {width:g}.",
            param_hint="--widths",
        )
    options["widths"] = [width]
    if options["epochs"] is None:
        options["epochs"] = DEFAULT_FINE_TUNE_EPOCHS
    options["learning_rate"] = options["learning_rate"] or runs.Training.FINE_TUNE_LEARNING_RATE
    return state


def _finish(
    run: runs.RunDirectory, settings: dict, data, options: dict, tuner, started: float
) -> None:
    """The report, the front's OOD evaluation and exports (`finish_search`), then a summary."""
    from flatnas_tf.app.finishing import finish_search
    from flatnas_tf.tuners.progress import clock

    ood_source = None
    if options["ood"] != "none":
        ood_source = inputs.ood_source(options["ood"], data, inputs.data_split(options))
    finished = finish_search(
        run,
        settings,
        data=data,
        ood_source=ood_source,
        ood_examples=options["ood_examples"],
        data_dir=options["data_dir"],
        frost_dir=options["frost_dir"],
        export=options["export"],
        front_table=lambda front: tuner.results_table(
            [tuner.oracle.trials[t.trial_id] for t in front]
        ),
        echo=click.echo,
    )
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
