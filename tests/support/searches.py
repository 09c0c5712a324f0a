"""Tiny spaces, the digits batches and a tuner factory, shared by the tests that search.

Each space trains in a second or two on digits, so a search of a few trials
stays a small test; its hyperparameters (and so its size) are part of what the
tests assert, so change one only with the tests that use it.
"""

from __future__ import annotations

import keras

from flatnas_tf import FlatNASHyperModel, TrainingSettings, load_dataset
from flatnas_tf.space.hypermodel import batch_norm
from flatnas_tf.tuners import FlatNASTuner

#: The training of every tiny space: high rate, ASAM at rho 0.5, for one- or two-epoch trials.
TINY_TRAINING = TrainingSettings(learning_rate=0.2, rho=0.5)


class OneConv(FlatNASHyperModel):
    """One convolution of 4 or 8 filters, 1x1 or 3x3: four candidates, a second each."""

    def build_backbone(self, hp, x):
        filters = hp.Choice("filters", [4, 8])
        kernel = hp.Choice("kernel", [1, 3])
        return keras.layers.ReLU()(keras.layers.Conv2D(filters, kernel, padding="same")(x))


class TinySpace(FlatNASHyperModel):
    """Two convolutions with BatchNorm; about 4k to 60k parameters.

    Within two epochs on digits the 3x3 and 5x5 variants with 16 or more
    filters learn (60-97 %); 1x1 ones with 8 filters stay near chance.
    """

    def build_backbone(self, hp, x):
        filters = hp.Choice("filters", [8, 16, 32])
        kernel = hp.Choice("kernel", [1, 3, 5])
        for stride in (1, 2):
            x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False)(x)
            x = keras.layers.ReLU()(batch_norm()(x))
        return x


def one_conv_space() -> OneConv:
    """`OneConv` on digits' 8x8 grey images, 10 classes."""
    return OneConv((8, 8, 1), 10, training=TINY_TRAINING)


def tiny_space() -> TinySpace:
    """`TinySpace` on digits, at widths 0.05 and 0.1."""
    return TinySpace((8, 8, 1), 10, training=TINY_TRAINING, width_multipliers=[0.05, 0.1])


def digits_batches():
    """(training batches of 64, shuffled; validation batches of 90) of the digits split."""
    data = load_dataset("digits")
    return data.batches("train", 64, training=True), data.batches("validation", 90)


def small_tuner(space, directory, name: str = "search", **kwargs) -> FlatNASTuner:
    """A two-trial search without a parameter limit (any argument overridden by `kwargs`)."""
    arguments = dict(max_params=None, population_size=2, max_trials=2, seed=0, samples=1)
    arguments.update(kwargs)
    return FlatNASTuner(space, directory=str(directory), project_name=name, **arguments)
