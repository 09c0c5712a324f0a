"""Throughput of the batched TensorFlow corruptions against per-image NumPy/SciPy.

The whole built-in suite (every corruption in `CORRUPTIONS` at severities
1..5) is applied to the same 1,000 32x32 images (the shared CIFAR-10 subset's
x_test, or random images without it) twice, in one run:

- TensorFlow: `corrupt` on the whole batch, one `tf.function` per corruption
  and severity, traced once before timing (graph-mode cost, as in `tf.data`).
- NumPy/SciPy/PIL: the same formulas one image at a time, written in the
  style of make_cifar_c.py (ImageMagick's motion blur and OpenCV's filters
  rewritten in NumPy/SciPy, since neither ships here). It is timed on the
  first `--reference-images` images and scaled to 1,000 per image.

TensorFlow's time per pair is the fastest of `--repeats` runs (the machine's
other load only ever adds time); the NumPy time is one pass over the subset,
itself a sum of thousands of per-image calls.

Usage:
    python benchmarks/corruption_throughput.py [--images 1000] [--reference-images 50]

The whole comparison runs `--runs` times (default 3) one after the other;
the machine's speed drifts, and the NumPy side (mostly glass blur's per-pixel
Python loop, as in the original) moves with the interpreter's speed more than
TensorFlow's vectorised side does, so one run is not a figure.

Prints one JSON object: per run, both throughputs in images per second over
the whole suite (each image passes through all 85 corruption-severity pairs)
and their ratio; the median ratio; and the median run's per-corruption seconds
for both.
"""

from __future__ import annotations

import argparse
import io
import math
import time

import numpy as np
import tensorflow as tf
from common import cifar_or_random, print_json
from PIL import Image
from scipy import ndimage

from flatnas_tf.corruptions import _PARAMS, CORRUPTIONS, corrupt

# ------------------------------------------- per-image NumPy reference ---


def _gauss(x, sigma, mode="nearest", truncate=4.0):
    sigmas = (sigma, sigma, 0) if x.ndim == 3 else sigma
    return ndimage.gaussian_filter(x, sigmas, mode=mode, truncate=truncate)


def _rgb2hsv(rgb):
    v = rgb.max(-1)
    delta = v - rgb.min(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(v > 0, delta / v, 0)
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        h = np.where(
            v == r, (g - b) / delta, np.where(v == g, 2 + (b - r) / delta, 4 + (r - g) / delta)
        )
    return np.stack([np.where(delta == 0, 0, (h / 6) % 1), s, v], -1)


def _hsv2rgb(hsv):
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    return np.stack([np.choose(i, [row[k] for row in table]) for k in range(3)], -1)


def _disk(radius, alias_blur):
    grid = np.arange(-8, 9)
    xx, yy = np.meshgrid(grid, grid)
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    disk /= disk.sum()
    g = np.exp(-(np.arange(-1, 2) ** 2) / (2 * alias_blur**2))
    g /= g.sum()
    return ndimage.correlate(disk, np.outer(g, g), mode="mirror")


def _motion(x, radius, sigma, angle):
    width = 2 * math.ceil(radius) + 1
    i = np.arange(width)
    kernel = np.exp(-(i**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    a = np.deg2rad(angle)
    h, w = x.shape[:2]
    out = np.zeros_like(x, dtype=np.float64)
    for k in range(width):
        dx, dy = math.ceil(k * math.cos(a) - 0.5), math.ceil(k * math.sin(a) - 0.5)
        rows = np.clip(np.arange(h) + dy, 0, h - 1)
        cols = np.clip(np.arange(w) + dx, 0, w - 1)
        out += kernel[k] * x[rows][:, cols]
    return out


def _clipped_zoom(img, zoom_factor):
    h = img.shape[0]
    ch = int(np.ceil(h / zoom_factor))
    top = (h - ch) // 2
    img = ndimage.zoom(img[top : top + ch, top : top + ch], (zoom_factor, zoom_factor, 1), order=1)
    trim_top = (img.shape[0] - h) // 2
    return img[trim_top : trim_top + h, trim_top : trim_top + h]


def _plasma_fractal(mapsize=32, wibbledecay=3):
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100

    def wibbledmean(array):
        return array / 4 + wibble * np.random.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        half = stepsize // 2
        maparray[half:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(squareaccum)
        drgrid = maparray[half:mapsize:stepsize, half:mapsize:stepsize]
        ulgrid = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ltsum = drgrid + np.roll(drgrid, 1, axis=0) + ulgrid + np.roll(ulgrid, -1, axis=1)
        maparray[0:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(ltsum)
        ttsum = drgrid + np.roll(drgrid, 1, axis=1) + ulgrid + np.roll(ulgrid, -1, axis=0)
        maparray[half:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


def reference(x: np.ndarray, name: str, severity: int) -> np.ndarray:
    """One uint8 32x32x3 image through make_cifar_c.py's formula for `name`."""
    c = _PARAMS[name][severity - 1]
    pil = Image.fromarray(x)
    x = x / 255.0
    if name == "gaussian_noise":
        x = x + np.random.normal(size=x.shape, scale=c)
    elif name == "shot_noise":
        x = np.random.poisson(x * c) / c
    elif name == "impulse_noise":
        flipped = np.random.random(x.shape) < c
        salted = np.random.random(x.shape) < 0.5
        x = np.where(flipped, salted.astype(float), x)
    elif name == "speckle_noise":
        x = x + x * np.random.normal(size=x.shape, scale=c)
    elif name == "gaussian_blur":
        x = _gauss(x, c)
    elif name == "defocus_blur":
        kernel = _disk(*c)
        x = np.stack([ndimage.correlate(x[..., d], kernel, mode="mirror") for d in range(3)], -1)
    elif name == "glass_blur":
        x = np.uint8(_gauss(x, c[0]) * 255)
        for _ in range(c[2]):
            for h in range(32 - c[1], c[1], -1):
                for w in range(32 - c[1], c[1], -1):
                    dx, dy = np.random.randint(-c[1], c[1], size=(2,))
                    h_prime, w_prime = h + dy, w + dx
                    x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
        x = _gauss(x / 255.0, c[0])
    elif name == "motion_blur":
        x = np.round(_motion(x, c[0], c[1], np.random.uniform(-45, 45)) * 255) / 255
    elif name == "zoom_blur":
        out = np.zeros_like(x)
        for zoom_factor in c:
            out += _clipped_zoom(x, zoom_factor)
        x = (x + out) / (len(c) + 1)
    elif name == "fog":
        max_val = x.max()
        x = x + c[0] * _plasma_fractal(wibbledecay=c[1])[:32, :32][..., np.newaxis]
        x = x * max_val / (max_val + c[0])
    elif name == "brightness":
        hsv = _rgb2hsv(x)
        hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
        x = _hsv2rgb(hsv)
    elif name == "contrast":
        means = np.mean(x, axis=(0, 1), keepdims=True)
        x = (x - means) * c + means
    elif name == "saturate":
        hsv = _rgb2hsv(x)
        hsv[..., 1] = np.clip(hsv[..., 1] * c[0] + c[1], 0, 1)
        x = _hsv2rgb(hsv)
    elif name == "pixelate":
        small = pil.resize((int(32 * c), int(32 * c)), Image.BOX)
        return np.asarray(small.resize((32, 32), Image.BOX))
    elif name == "jpeg_compression":
        buffer = io.BytesIO()
        pil.save(buffer, "JPEG", quality=c)
        return np.asarray(Image.open(buffer))
    elif name == "elastic_transform":
        alpha, sigma, jitter = (32 * v for v in c)
        centre, half = np.float32([32, 32]) // 2, 32 // 3
        pts1 = np.float64([centre + half, [centre[0] + half, centre[1] - half], centre - half])
        pts2 = pts1 + np.random.uniform(-jitter, jitter, size=pts1.shape)
        m_t = np.linalg.solve(np.concatenate([pts1, np.ones((3, 1))], 1), pts2)  # (x, y)
        inverse = np.linalg.inv(m_t[:2].T)
        rows, cols = np.mgrid[0:32, 0:32].astype(np.float64)
        u, v = cols - m_t[2, 0], rows - m_t[2, 1]
        src_c = inverse[0, 0] * u + inverse[0, 1] * v
        src_r = inverse[1, 0] * u + inverse[1, 1] * v
        x = np.stack(
            [
                ndimage.map_coordinates(x[..., d], [src_r, src_c], order=1, mode="mirror")
                for d in range(3)
            ],
            -1,
        )
        if alpha:
            dx = _gauss(np.random.uniform(-1, 1, size=(32, 32)), sigma, "reflect", 3) * alpha
            dy = _gauss(np.random.uniform(-1, 1, size=(32, 32)), sigma, "reflect", 3) * alpha
            x = np.stack(
                [
                    ndimage.map_coordinates(
                        x[..., d], [rows + dy, cols + dx], order=1, mode="reflect"
                    )
                    for d in range(3)
                ],
                -1,
            )
    elif name == "snow":
        layer = np.random.normal(size=x.shape[:2], loc=c[0], scale=c[1])
        layer = _clipped_zoom(layer[..., np.newaxis], c[2])
        layer[layer < c[3]] = 0
        layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8) / 255.0
        layer = np.round(_motion(layer, c[4], c[5], np.random.uniform(-135, -45)) * 255) / 255
        gray = (x @ np.array([0.299, 0.587, 0.114]))[..., np.newaxis]
        x = c[6] * x + (1 - c[6]) * np.maximum(x, gray * 1.5 + 0.5)
        x = x + layer + np.rot90(layer, k=2)
    else:
        raise ValueError(name)
    return np.uint8(np.clip(x, 0, 1) * 255)


# ------------------------------------------------------------------ main ---


def _one_run(images: np.ndarray, reference_images: int, repeats: int) -> dict:
    """Seconds per corruption (summed over severities 1..5) for TensorFlow and NumPy."""
    batch = tf.constant(images)
    np.random.seed(0)
    tf_seconds: dict[str, float] = {}
    np_seconds: dict[str, float] = {}
    subset = images[:reference_images]
    for name in CORRUPTIONS:
        tf_seconds[name] = np_seconds[name] = 0.0
        for severity in range(1, 6):
            fn = tf.function(lambda x, n=name, s=severity: corrupt(x, n, s, seed=0))
            fn(batch).numpy()  # trace and warm up
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn(batch).numpy()
                runs.append(time.perf_counter() - start)
            tf_seconds[name] += min(runs)
            start = time.perf_counter()
            for image in subset:
                reference(image, name, severity)
            np_seconds[name] += (time.perf_counter() - start) * len(images) / len(subset)
    tf_total, np_total = sum(tf_seconds.values()), sum(np_seconds.values())
    return {
        "tensorflow_images_per_s": round(len(images) / tf_total, 1),
        "numpy_images_per_s": round(len(images) / np_total, 1),
        "speedup_tf_over_numpy": round(np_total / tf_total, 1),
        "tensorflow_s": {k: round(v, 4) for k, v in tf_seconds.items()},
        "numpy_s": {k: round(v, 3) for k, v in np_seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--reference-images", type=int, default=50, help="timed NumPy subset")
    parser.add_argument(
        "--repeats", type=int, default=3, help="TF runs per pair; the fastest counts"
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="whole-suite runs, one after the other; the median"
    )
    args = parser.parse_args()

    images, _, source = cifar_or_random(args.images)
    runs = [_one_run(images, args.reference_images, args.repeats) for _ in range(args.runs)]
    ratios = [run["speedup_tf_over_numpy"] for run in runs]
    middle = runs[int(np.argsort(ratios)[len(runs) // 2])]  # the median run's figures
    print_json(
        "corruption_throughput",
        {
            "data": source,
            "images": len(images),
            "corruptions": len(CORRUPTIONS),
            "severities": 5,
            "runs": args.runs,
            "speedup_per_run": ratios,
            "speedup_median": float(np.median(ratios)),
            "tensorflow_images_per_s_per_run": [r["tensorflow_images_per_s"] for r in runs],
            "numpy_images_per_s_per_run": [r["numpy_images_per_s"] for r in runs],
            "numpy_timed_on_images": args.reference_images,
            "tensorflow_timing": f"fastest of {args.repeats} runs per corruption and severity",
            "numpy_note": f"timed on {args.reference_images} images, scaled per image to "
            f"{len(images)}",
            "threads": {
                "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            },
            "median_run": middle,
        },
    )


if __name__ == "__main__":
    main()
