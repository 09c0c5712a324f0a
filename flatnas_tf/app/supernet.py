"""The weight-sharing supernet a search runs through, trained (or resumed) in its directory.

What `flatnas-tf supernet` does:

    seed       Keras' global seed from the settings (the weights' draw)
    build      the data set's default space at one width (and the given
               stage depths)
               (`FlatNASHyperModel`), and its supernet (`Supernet`)
    train      `train_supernet`: the sandwich rule on the training split only,
               the state written after every epoch in `out`, so that the same
               call resumes after the last finished epoch; the split's
               identity is saved with it, so that a search through the
               supernet can check that its validation images were not trained on

A search then measures candidates through it (`flatnas-tf search --supernet
OUT`, `SupernetTuner`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flatnas_tf.app.split import DataSplit
from flatnas_tf.defaults import BATCH_SIZE, DEPTHS, SUPERNET_WIDTH

__all__ = ["TrainedSupernet", "train_search_supernet"]


@dataclasses.dataclass(frozen=True)
class TrainedSupernet:
    """A supernet's run directory after training.

    Attributes:
        directory: Where its state and weights are.
        params: Parameters of the whole supernet.
        epochs_done: Epochs trained, in this call and before.
        seconds: Training time of those epochs.
    """

    directory: Path
    params: int
    epochs_done: int
    seconds: float


def train_search_supernet(
    data,
    out: str | os.PathLike,
    *,
    split: DataSplit,
    width: float | None = None,
    depths: Sequence[int] | None = None,
    settings=None,
    batch_size: int = BATCH_SIZE,
    verbose: int = 0,
    callbacks: Sequence[Any] = (),
    echo: Callable[[str], None] = print,
) -> TrainedSupernet:
    """Trains (or resumes) the supernet of `data`'s default space at `width`, in `out`.

    Args:
        data: The data set, loaded (`split.load()`); only its training split is used.
        out: The run directory; a run of the same space, width, settings and
            split there resumes (a finished one returns at once).
        split: How `data` was loaded and split (its identity is saved with
            the supernet).
        width: The supernet's width multiplier (every candidate searched
            through it has it; None: that of the run in `out` when there is
            one, so that it resumes without it, else `SUPERNET_WIDTH`).
        depths: The space's stage depths (None: those of the run in `out`
            when there is one, else the default space's, `DEPTHS`).
        settings: How to train it (`SupernetSettings`; None: the defaults
            with the split's seed).
        batch_size: Examples per step.
        verbose: Keras' `fit` verbosity.
        callbacks: More Keras callbacks (they run after each epoch's state is saved).
        echo: Called with the line that says what is trained where.

    Returns:
        The run directory, the supernet's size and how long it has trained.

    Raises:
        flatnas_tf.space.sandwich.SupernetStateError: `out` holds a run of
            another space, width, settings or split, or other files.

    Example:
    ```python
    split = DataSplit("digits", seed=0)
    trained = train_search_supernet(split.load(), "runs/digits-supernet", split=split)
    ```
    """
    import keras

    from flatnas_tf.space.hypermodel import FlatNASHyperModel
    from flatnas_tf.space.sandwich import (
        SupernetSettings,
        SupernetStateError,
        read_supernet_state,
        train_supernet,
    )
    from flatnas_tf.space.supernet import Supernet

    settings = settings or SupernetSettings(seed=split.seed)
    keras.utils.set_random_seed(settings.seed)
    try:
        saved = read_supernet_state(out)
    except SupernetStateError:  # no trained run there (train_supernet judges the rest)
        saved = {"width": SUPERNET_WIDTH, "space": {"depths": DEPTHS}}
    width = float(saved["width"]) if width is None else width
    depths = saved["space"]["depths"] if depths is None else depths
    space = FlatNASHyperModel(
        data.input_shape, data.num_classes, width_multipliers=(width,), depths=depths
    )
    network = Supernet(space, width=width)
    echo(
        f"Training a supernet of {network.count_params():,} parameters (width {width:g}) in "
        f"{out} for {settings.epochs} epochs"
    )
    state = train_supernet(
        network,
        data.batches("train", batch_size, training=True, seed=settings.seed),
        settings,
        out,
        verbose=verbose,
        callbacks=list(callbacks),
        data_description=split.identity(),
    )
    return TrainedSupernet(
        directory=Path(out),
        params=network.count_params(),
        epochs_done=state["epochs_done"],
        seconds=sum(entry["seconds"] for entry in state["history"]),
    )
