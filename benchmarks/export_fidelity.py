"""What an export computes against the model it came from: SavedModel `serve` and TFLite.

A candidate of the default space at `--resolution` (resized from the 32x32
input), weights randomised (each trainable weight w -> w (1 + 0.3 n) +
0.05 n, n ~ N(0, 1), so that zero-initialised layers matter too), is built
twice: resizing with Keras' `keras.layers.Resizing` and with
`flatnas_tf.space.resizing.Resizing`. Each is exported (`export_model(...,
tflite=True)`) and run on the same real CIFAR images (the shared subset;
uniform noise images without it):

    serve_vs_predict_max_abs          |serve(x) - model.predict(x)|, max
    top1_agreement_serve_vs_predict   share of images with the same argmax
    serve_batch1_vs_batch32_image0    image 0 alone against in a batch of 32
    tflite_vs_serve_max_abs           when TFLite converts

Usage:
    python benchmarks/export_fidelity.py [--resolution 28] [--images 32]
        [--out docs/benchmarks/export_fidelity.json]

Prints one JSON object (with the run's settings, machine, commit and date: `common.report`).
"""

from __future__ import annotations

import argparse
import tempfile

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf
from common import SHARED_DATA, add_out_argument, report

import flatnas_tf.space.hypermodel as hypermodel_module
from flatnas_tf import FlatNASHyperModel, export_model, tflite_predict
from flatnas_tf.space.resizing import Resizing


def _images(count: int) -> tuple[np.ndarray, str]:
    path = SHARED_DATA / "cifar10_subset_dev.npz"
    if path.exists():
        with np.load(path) as data:
            return data["x_test"][:count].astype("float32"), "cifar10_subset_dev test images"
    noise = np.random.default_rng(0).uniform(0, 255, (count, 32, 32, 3)).astype("float32")
    return noise, "uniform noise (shared data not found)"


def _candidate(resolution: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    space = FlatNASHyperModel((32, 32, 3), 10, width_multipliers=(0.5,))
    hp = kt.HyperParameters()
    space.declare_hyperparameters(hp)
    hp.values["resolution"] = resolution
    model = space.build(hp)
    rng = np.random.default_rng(0)
    for variable in model.trainable_variables:
        noise = rng.standard_normal(variable.shape).astype("float32")
        variable.assign(variable.numpy() * (1 + 0.3 * noise) + 0.05 * noise)
    return model


def _measure(model: keras.Model, images: np.ndarray) -> dict:
    expected = model.predict(images, verbose=0)
    with tempfile.TemporaryDirectory() as directory:
        notes = export_model(model, directory, tflite=True)
        saved = tf.saved_model.load(f"{directory}/saved_model")
        served = saved.serve(images).numpy()
        alone = saved.serve(images[:1]).numpy()
        figures = {
            "export_notes": notes,
            "logit_scale": float(np.abs(expected).max()),
            "serve_vs_predict_max_abs": float(np.abs(served - expected).max()),
            "top1_agreement_serve_vs_predict": float(
                (served.argmax(1) == expected.argmax(1)).mean()
            ),
            "serve_batch1_vs_batch32_image0": float(np.abs(alone[0] - served[0]).max()),
        }
        if not notes:
            tflite = tflite_predict(f"{directory}/model.tflite", images)
            figures["tflite_vs_serve_max_abs"] = float(np.abs(tflite - served).max())
    return figures


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark on `argv` (default: the command line); returns the printed JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=28)
    parser.add_argument("--images", type=int, default=32)
    add_out_argument(parser, "export_fidelity")
    args = parser.parse_args(argv)
    images, source = _images(args.images)
    result = {"resolution": args.resolution, "images": source}
    for label, layer in (("keras.layers.Resizing", keras.layers.Resizing), ("Resizing", Resizing)):
        hypermodel_module.Resizing = layer  # the layer the space resizes with
        try:
            result[label] = _measure(_candidate(args.resolution), images)
        finally:
            hypermodel_module.Resizing = Resizing
    return report("export_fidelity", result, args)


if __name__ == "__main__":
    main()
