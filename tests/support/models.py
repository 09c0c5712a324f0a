"""A small CNN for the tests that train on the real CIFAR-10 subset."""

from __future__ import annotations

import keras


def cifar_cnn(filters: tuple[int, ...] = (16, 32)) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """(inputs, logits) of conv-BatchNorm-ReLU-pool blocks for 32x32x3 pixels in [0, 255].

    BatchNorm's moving averages use momentum 0.9, so that they settle within
    one epoch. Wrap the pair in `keras.Model` or `SAMModel`.
    """
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for width in filters:
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return inputs, keras.layers.Dense(10)(x)
