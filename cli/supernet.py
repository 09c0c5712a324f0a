"""`flatnas-tf supernet`: train (or resume) a weight-sharing supernet of the search space."""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import click

from flatnas_tf.app import runs
from flatnas_tf.cli import errors, inputs
from flatnas_tf.cli import options as opt
from flatnas_tf.defaults import LEARNING_RATE, MAX_WIDTH, MOMENTUM, WEIGHT_DECAY

DEFAULT_SUPERNET_EPOCHS = 30


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
    default=0.25,
    help="Width multiplier of the supernet (every candidate searched through it has it).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=DEFAULT_SUPERNET_EPOCHS)
@opt.BATCH_SIZE
@click.option(
    "--learning-rate",
    type=opt.FiniteFloatRange(min=0, min_open=True),
    default=LEARNING_RATE,
    help=f"Peak SGD learning rate (warm-up 5 %, cosine decay; momentum {MOMENTUM:g}, weight "
    f"decay {WEIGHT_DECAY:g}).",
)
@click.option(
    "--random-subnets",
    type=click.IntRange(min=0),
    default=2,
    help="Random sub-networks per step, besides the largest and the smallest (sandwich rule).",
)
@click.option(
    "--distillation",
    type=opt.FiniteFloatRange(0, 1),
    default=0.0,
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
    import keras

    from flatnas_tf import FlatNASHyperModel
    from flatnas_tf.space.sandwich import SupernetSettings, train_supernet
    from flatnas_tf.space.supernet import Supernet
    from flatnas_tf.tuners.progress import clock

    out = pathlib.Path(options["out"] or runs.default_directory(options["data"], "-supernet"))
    split = inputs.data_split(options)
    data = inputs.load_data(split)
    settings = SupernetSettings(
        epochs=options["epochs"],
        learning_rate=options["learning_rate"],
        random_subnets=options["random_subnets"],
        distillation=options["distillation"],
        seed=options["seed"],
    )
    keras.utils.set_random_seed(options["seed"])
    space = FlatNASHyperModel(
        data.input_shape, data.num_classes, width_multipliers=(options["width"],)
    )
    network = Supernet(space, width=options["width"])
    click.echo(
        f"Training a supernet of {network.count_params():,} parameters (width "
        f"{options['width']:g}) in {out} for {options['epochs']} epochs"
    )
    description = split.identity()
    try:
        state = train_supernet(
            network,
            data.batches("train", options["batch_size"], training=True, seed=options["seed"]),
            settings,
            out,
            verbose=1 if options["verbose"] else 0,
            callbacks=[_epoch_line_callback(options["epochs"])],
            data_description=description,
        )
    except KeyboardInterrupt:
        click.echo(
            f"\nInterrupted: finished epochs are saved in {out}. Run the same command again "
            "to resume.",
            err=True,
        )
        sys.exit(130)
    seconds = sum(entry["seconds"] for entry in state["history"])
    click.echo(
        f"Supernet: {out} ({state['epochs_done']} epochs, {clock(seconds)} of training). "
        f"Search through it: flatnas-tf search --supernet {out}"
        + ("" if options["data"] == "digits" else f" --data {options['data']}")
    )
