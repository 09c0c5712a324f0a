"""Pieces the benchmark scripts share: the small CNN, its compilation, JSON output."""

from __future__ import annotations

import json
import pathlib
import platform

import keras
import numpy as np
import tensorflow as tf

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


def small_cnn(model_class=keras.Model, **kwargs) -> keras.Model:
    """A 32x32x3 CNN of four conv/BatchNorm/ReLU blocks and a dense head (67k params)."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for filters in (32, 32, 64, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        if filters == 64 or x.shape[1] == 32:
            x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return model_class(inputs, keras.layers.Dense(10)(x), **kwargs)


def compile_classifier(model: keras.Model, jit_compile: bool | str = "auto") -> keras.Model:
    """FlatNAS's training settings: SGD 0.1, momentum 0.9, weight decay 5e-4."""
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=5e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    return model


def cifar_or_random(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """n real CIFAR-10 test images from the shared subset, or random ones without it."""
    path = SHARED_DATA / "cifar10_subset_dev.npz"
    if path.exists():
        with np.load(path) as data:
            return data["x_test"][:n], data["y_test"][:n], "cifar10_subset_dev"
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n), "random"


def print_json(name: str, figures: dict) -> None:
    """Prints one benchmark's figures with the machine they were measured on."""
    header = {
        "benchmark": name,
        "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
        "machine": platform.machine(),
    }
    print(json.dumps({**header, **figures}, indent=2))
