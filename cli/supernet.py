"""`flatnas-tf supernet`: train (or resume) a weight-sharing supernet of the search space."""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import click

from flatnas_tf.app import runs
from flatnas_tf.cli import errors, inputs
from flatnas_tf.cli import options as opt
from flatnas_tf.defaults import (
    DISTILLATION,
    LEARNING_RATE,
    MAX_WIDTH,
    MOMENTUM,
    RANDOM_SUBNETS,
    SUPERNET_EPOCHS,
    SUPERNET_WARMUP,
    SUPERNET_WIDTH,
    WEIGHT_DECAY,
)


def _epoch_line_callback(epochs: int):
    import keras

    class EpochLine(keras.callbacks.Callback):
        """One line per finished supernet epoch (the state is already saved)."""

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            click.echo(
                f"epoch {epoch + 1:>3}/{epochs}  largest: loss {logs.get('loss', float('nan')):.3f}"
                f", accuracy {100 * logs.get('accuracy', float('nan')):5.1f}%  smallest: loss "
                f"{logs.get('smallest_loss', float('nan')):.3f}"
            )

    return EpochLine()


@click.command()
@opt.CONFIG
@opt.data_options
@click.option(
    "--out",
    default=None,
    help="Run directory (default runs/<data set>-supernet); an unfinished run there resumes.",
)
@click.option(
    "--width",
    type=opt.FiniteFloatRange(0, MAX_WIDTH, min_open=True),
    default=None,
    help=f"Width multiplier of the supernet (every candidate searched through it has it); "
    f"not given, a run in --out resumes with its own, a new one has {SUPERNET_WIDTH:g}.",
)
@opt.depths(
    "Stage depths of the space the supernet holds (every search through it has them); "
    "not given, a run in --out resumes with its own."
)
@click.option("--epochs", type=click.IntRange(min=1), default=SUPERNET_EPOCHS)
@opt.BATCH_SIZE
@click.option(
    "--learning-rate",
    type=opt.FiniteFloatRange(min=0, min_open=True),
    default=LEARNING_RATE,
    help=f"Peak SGD learning rate (warm-up {100 * SUPERNET_WARMUP:g} %, cosine decay; momentum "
    f"{MOMENTUM:g}, weight decay {WEIGHT_DECAY:g}).",
)
@click.option(
    "--random-subnets",
    type=click.IntRange(min=0),
    default=RANDOM_SUBNETS,
    help="Random sub-networks per step, besides the largest and the smallest (sandwich rule).",
)
@click.option(
    "--distillation",
    type=opt.FiniteFloatRange(0, 1),
    default=DISTILLATION,
    help="Weight of in-place distillation from the largest sub-network (0: labels only).",
)
@opt.seed("Seed of the data split (pass the search's) and of the training.")
@opt.VERBOSE
@errors.fail_cleanly
@errors.quiet_tensorflow
def supernet(**options: Any) -> None:
    """Train (or resume) a weight-sharing supernet of the search space.

    Trains the space at one width as a Once-For-All supernet with the
    sandwich rule, on the training split only, writing its state after every
    epoch. Then `flatnas-tf search --supernet OUT` evaluates candidates
    through it in seconds.
    """
    from flatnas_tf.app.supernet import train_search_supernet
    from flatnas_tf.space.sandwich import SupernetSettings
    from flatnas_tf.tuners.progress import clock

    out = pathlib.Path(options["out"] or runs.default_directory(options["data"], "-supernet"))
    split = inputs.data_split(options)
    settings = SupernetSettings(
        epochs=options["epochs"],
        learning_rate=options["learning_rate"],
        random_subnets=options["random_subnets"],
        distillation=options["distillation"],
        seed=options["seed"],
    )
    try:
        trained = train_search_supernet(
            inputs.load_data(split),
            out,
            split=split,
            width=options["width"],
            depths=options["depths"],
            settings=settings,
            batch_size=options["batch_size"],
            verbose=1 if options["verbose"] else 0,
            callbacks=[_epoch_line_callback(options["epochs"])],
            echo=click.echo,
        )
    except KeyboardInterrupt:
        click.echo(
            f"\nInterrupted: finished epochs are saved in {out}. Run the same command again "
            "to resume.",
            err=True,
        )
        sys.exit(130)
    click.echo(
        f"Supernet: {out} ({trained.epochs_done} epochs, {clock(trained.seconds)} of training). "
        f"Search through it: flatnas-tf search --supernet {out}"
        + ("" if options["data"] == "digits" else f" --data {options['data']}")
    )
