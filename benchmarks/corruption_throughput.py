"""Throughput of the batched TensorFlow corruptions against per-image NumPy/SciPy, timed alike.

What is measured: the seconds each implementation takes to pass the same N
images (`--images`, default 300: the shared CIFAR-10 subset's x_test, or random
images without it) through the whole built-in suite, every corruption in
`CORRUPTIONS` at severities 1..5 (85 corruption-severity pairs):

- TensorFlow: `corrupt` on the batch of all N images, one `tf.function` per
  pair (seed 0), traced before timing (graph-mode cost, as in `tf.data`); a
  call's time includes copying its result to NumPy.
- NumPy/SciPy/PIL: `reference`, the same formulas one image at a time in the
  style of make_cifar_c.py (ImageMagick's motion blur and OpenCV's filters
  rewritten in NumPy/SciPy, since neither ships here), called on each of the
  same N images and stacked into one array. Like `corrupt`, it truncates to
  uint8 with a guard of 1/1000 grey level (without it, float64 results that
  land on k - 1e-13 truncate to k - 1: up to 10 % of the values of a pair).

Both sides are timed the same way. Per pair, each side makes `--repeats`
passes, alternating (TensorFlow first in even repeats, NumPy first in odd
ones, so that the machine's drift hits both alike), and the MEDIAN of its
repeats is its time for the pair; the pair times are summed over the 85 pairs.
Throughput = N / that sum, in images per second through the whole suite
(each image passes through all 85 pairs); speedup = NumPy's sum /
TensorFlow's. TensorFlow's per-call overhead weighs more on a smaller batch,
so its images per second grow with N: compare figures measured at the same N.

Before timing, one untimed pass of each side over the same N images (it also
traces and warms up) checks that the two compute the same thing; the run
stops with an error naming the pairs that disagree:

- exactly, the deterministic corruptions (`EXACT`: Gaussian, defocus and zoom
  blur, brightness, contrast, saturate, pixelate, JPEG): per severity, the
  largest difference in grey levels and the share of values that differ stay
  within the tolerances of tests/test_corruptions.py's
  test_matches_numpy_pil_reference (float64 against float32: +-1 level on at
  most 1 % of the values; pixelate +-1 on 0.1 %; JPEG +-2 with a mean
  difference of at most 0.05). Gaussian and zoom blur, which that test does
  not compare, get the float tolerance.
- statistically, the random ones (the noises, glass and motion blur, fog,
  elastic, snow): NumPy's global generator and TensorFlow's stateless one
  draw different noise, so the figure compared is each image's mean absolute
  change |corrupted - clean| in grey levels: the means over the N images of
  the two sides must agree within `Z_LIMIT` (4) two-sample standard errors
  plus `SLACK` (0.5) grey levels.

The whole comparison runs `--runs` times (default 3) one after the other,
after one check; the machine's speed drifts, and the NumPy side (mostly glass
blur's per-pixel Python loop, as in the original) moves with the
interpreter's speed more than TensorFlow's vectorised side does, so one run
is not a figure. At the defaults (300 images, 3 repeats, 3 runs) NumPy makes
10 passes of 300 images: about 6-7 minutes on a 2-core VM at its ~8 images/s.

Usage:
    python benchmarks/corruption_throughput.py [--images 300] [--repeats 3] [--runs 3]
        [--out docs/benchmarks/corruption_throughput.json]

Prints one JSON object: what was timed ("timed"), the checks and their largest
differences ("checks"), per run both throughputs and their ratio, the median
ratio, the median run's per-corruption seconds for both sides, wall times,
and the run's settings, machine, commit and date (`common.report`).
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import time

import numpy as np
import tensorflow as tf
from common import add_out_argument, cifar_or_random, report
from PIL import Image
from scipy import ndimage

from flatnas_tf.defaults import SEVERITIES
from flatnas_tf.robustness.corruptions import _PARAMS, CORRUPTIONS, corrupt

# ------------------------------------------- per-image NumPy reference ---


def _to_uint8(x):
    """clip(x, 0, 1) * 255 truncated to uint8, with `corrupt`'s guard of 1/1000 grey level."""
    return np.floor(np.clip(x, 0, 1) * 255 + 1e-3).astype(np.uint8)


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
        x = _to_uint8(_gauss(x, c[0]))
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
    return _to_uint8(x)


# ----------------------------------------------------------------- checks ---

#: Deterministic corruptions, compared value by value: (largest difference in grey
#: levels, largest share of values that differ; for JPEG the largest mean
#: difference), as tests/test_corruptions.py's test_matches_numpy_pil_reference
#: allows. Gaussian and zoom blur, not in that test, get the float tolerance.
EXACT: dict[str, tuple[int, float]] = {
    "gaussian_blur": (1, 0.01),
    "defocus_blur": (1, 0.01),
    "zoom_blur": (1, 0.01),
    "brightness": (1, 0.01),
    "contrast": (1, 0.01),
    "saturate": (1, 0.01),
    "pixelate": (1, 0.001),
    "jpeg_compression": (2, 0.05),
}
#: Random corruptions: the two sides draw different noise, so they are compared
#: by the mean over the images of each image's mean absolute change.
STATISTICAL: tuple[str, ...] = tuple(name for name in CORRUPTIONS if name not in EXACT)
Z_LIMIT = 4.0  # two-sample standard errors
SLACK = 0.5  # grey levels


def _mean_change(corrupted: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Each image's mean absolute change |corrupted - clean| in grey levels."""
    return np.abs(corrupted.astype(np.float64) - clean.astype(np.float64)).mean(axis=(1, 2, 3))


def compare(
    name: str, clean: np.ndarray, ours: np.ndarray, theirs: np.ndarray
) -> tuple[dict, bool]:
    """TensorFlow's output (`ours`) against the NumPy reference's (`theirs`) for one pair.

    Returns:
        The figures of the comparison, and whether they are within tolerance.
    """
    if name in EXACT:
        max_diff, limit = EXACT[name]
        diff = np.abs(ours.astype(np.int64) - theirs.astype(np.int64))
        figures = {
            "max_abs_diff": int(diff.max()),
            "fraction_differing": float(np.mean(diff > 0)),
            "mean_abs_diff": float(diff.mean()),
        }
        spread = figures["mean_abs_diff" if name == "jpeg_compression" else "fraction_differing"]
        return figures, figures["max_abs_diff"] <= max_diff and spread <= limit
    a, b = _mean_change(ours, clean), _mean_change(theirs, clean)
    error = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    difference = float(a.mean() - b.mean())
    figures = {
        "tensorflow_mean_change": float(a.mean()),
        "numpy_mean_change": float(b.mean()),
        "difference": difference,
        "standard_error": error,
    }
    return figures, abs(difference) <= Z_LIMIT * error + SLACK


def _tolerance(name: str) -> str:
    """The rule `compare` applies to `name`, in words."""
    if name in EXACT:
        max_diff, limit = EXACT[name]
        spread = "mean difference" if name == "jpeg_compression" else "share differing"
        return f"allowed: max difference {max_diff}, {spread} {limit:g}"
    return f"allowed: |difference| <= {Z_LIMIT:g} standard errors + {SLACK:g}"


def _numpy_pass(images: np.ndarray, name: str, severity: int) -> np.ndarray:
    return np.stack([reference(image, name, severity) for image in images])


def check(images: np.ndarray, batch: tf.Tensor, functions: dict) -> dict:
    """One untimed pass of both sides per pair (tracing, warm-up), compared.

    Raises:
        SystemExit: naming every pair whose outputs disagree beyond tolerance.
    """
    np.random.seed(0)
    exact: dict[str, dict] = {}
    statistical: dict[str, dict] = {}
    failures = []
    for name in CORRUPTIONS:
        rows = []
        for severity in SEVERITIES:
            ours = functions[(name, severity)](batch).numpy()
            theirs = _numpy_pass(images, name, severity)
            figures, ok = compare(name, images, ours, theirs)
            rows.append(figures)
            if not ok:
                shown = ", ".join(f"{k} {v:.4g}" for k, v in figures.items())
                failures.append(f"{name} severity {severity}: {shown} ({_tolerance(name)})")
        if name in EXACT:
            max_diff, limit = EXACT[name]
            spread = "mean_abs_diff" if name == "jpeg_compression" else "fraction_differing"
            exact[name] = {
                "max_abs_diff": max(r["max_abs_diff"] for r in rows),
                "max_fraction_differing": round(max(r["fraction_differing"] for r in rows), 6),
                "max_mean_abs_diff": round(max(r["mean_abs_diff"] for r in rows), 6),
                "tolerance": {"max_abs_diff": max_diff, f"max_{spread}": limit},
            }
        else:
            statistical[name] = {
                "max_abs_difference": round(max(abs(r["difference"]) for r in rows), 4),
                "max_abs_z": round(
                    max(abs(r["difference"]) / max(r["standard_error"], 1e-12) for r in rows), 2
                ),
                "mean_change_per_severity": {
                    "tensorflow": [round(r["tensorflow_mean_change"], 3) for r in rows],
                    "numpy": [round(r["numpy_mean_change"], 3) for r in rows],
                },
            }
    if failures:
        raise SystemExit(
            "corruption_throughput: the NumPy reference does not compute what `corrupt` "
            f"computes on the {len(images)} images; nothing was timed:\n  " + "\n  ".join(failures)
        )
    return {
        "images": len(images),
        "passed": True,
        "exact": exact,
        "statistical": statistical,
        "exact_method": "per severity, |TensorFlow - NumPy| in grey levels over all values: "
        "largest difference and share of values that differ (JPEG: mean difference), "
        "tolerances of tests/test_corruptions.py::test_matches_numpy_pil_reference",
        "statistical_method": "per severity, each image's mean |corrupted - clean| in grey "
        "levels; the means over the images must agree within "
        f"{Z_LIMIT:g} two-sample standard errors + {SLACK:g} grey levels",
    }


# ----------------------------------------------------------------- timing ---


def timed_run(images: np.ndarray, batch: tf.Tensor, functions: dict, repeats: int) -> dict:
    """Seconds per corruption (summed over severities) of both sides, timed alike."""
    np.random.seed(0)
    seconds: dict[str, dict[str, float]] = {"tensorflow": {}, "numpy": {}}
    passes = {
        "tensorflow": lambda name, severity: functions[(name, severity)](batch).numpy(),
        "numpy": lambda name, severity: _numpy_pass(images, name, severity),
    }
    for name in CORRUPTIONS:
        for side in seconds:
            seconds[side][name] = 0.0
        for severity in SEVERITIES:
            times: dict[str, list[float]] = {side: [] for side in seconds}
            for repeat in range(repeats):
                for side in ("tensorflow", "numpy") if repeat % 2 == 0 else ("numpy", "tensorflow"):
                    start = time.perf_counter()
                    passes[side](name, severity)
                    times[side].append(time.perf_counter() - start)
            for side in seconds:
                seconds[side][name] += statistics.median(times[side])
    tf_total, np_total = sum(seconds["tensorflow"].values()), sum(seconds["numpy"].values())
    return {
        "tensorflow_images_per_s": round(len(images) / tf_total, 1),
        "numpy_images_per_s": round(len(images) / np_total, 1),
        "speedup_tf_over_numpy": round(np_total / tf_total, 1),
        "tensorflow_s": {k: round(v, 4) for k, v in seconds["tensorflow"].items()},
        "numpy_s": {k: round(v, 4) for k, v in seconds["numpy"].items()},
    }


# ------------------------------------------------------------------- main ---


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="N: images both sides process")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed passes per side and pair; the median counts"
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="whole-suite runs, one after the other; the median"
    )
    add_out_argument(parser, "corruption_throughput")
    args = parser.parse_args(argv)
    for flag, least in (("images", 2), ("repeats", 1), ("runs", 1)):
        if getattr(args, flag) < least:
            parser.error(f"--{flag} must be >= {least}; received {getattr(args, flag)}")
    return args


def main(argv: list[str] | None = None) -> dict:
    """Checks, then times both sides `--runs` times; prints and returns the JSON object."""
    args = parse_args(argv)
    started = time.perf_counter()
    images, _, source = cifar_or_random(args.images)
    if len(images) < args.images:
        raise SystemExit(f"--images {args.images}: only {len(images)} images in {source}")
    batch = tf.constant(images)
    functions = {
        (name, severity): tf.function(lambda x, n=name, s=severity: corrupt(x, n, s, seed=0))
        for name in CORRUPTIONS
        for severity in SEVERITIES
    }
    checks = check(images, batch, functions)
    check_s = time.perf_counter() - started
    runs, run_s = [], []
    for _ in range(args.runs):
        start = time.perf_counter()
        runs.append(timed_run(images, batch, functions, args.repeats))
        run_s.append(round(time.perf_counter() - start, 1))
    ratios = [run["speedup_tf_over_numpy"] for run in runs]
    middle = runs[int(np.argsort(ratios)[len(runs) // 2])]  # the median run's figures
    pairs = len(CORRUPTIONS) * len(SEVERITIES)
    timed = {
        "images": len(images),
        "same_images_both_sides": True,
        "repeats": args.repeats,
        "statistic": f"median of the {args.repeats} repeats per corruption-severity pair, "
        f"for both sides; pair times summed over the {pairs} pairs",
        "tensorflow": f"one call of a traced tf.function of corrupt(batch of {len(images)} "
        "images, name, severity, seed=0), result copied to NumPy",
        "numpy": f"reference(image, name, severity) for each of the same {len(images)} "
        "images, stacked into one array",
        "order": "per pair the repeats alternate sides: TensorFlow first in even repeats, "
        "NumPy first in odd ones",
        "untimed": "one pass of each side per pair before the runs (traces the tf.functions, "
        "warms both up): the checks",
        "throughput": f"images / summed seconds: each image passes through all {pairs} pairs",
    }
    figures = {
        "data": source,
        "images": len(images),
        "corruptions": len(CORRUPTIONS),
        "severities": len(SEVERITIES),
        "timed": timed,
        "checks": checks,
        "runs": args.runs,
        "speedup_per_run": ratios,
        "speedup_median": float(np.median(ratios)),
        "tensorflow_images_per_s_per_run": [r["tensorflow_images_per_s"] for r in runs],
        "numpy_images_per_s_per_run": [r["numpy_images_per_s"] for r in runs],
        "threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "median_run": middle,
        "wall_s": {
            "check": round(check_s, 1),
            "runs": run_s,
            "total": round(time.perf_counter() - started, 1),
        },
    }
    return report("corruption_throughput", figures, args)


if __name__ == "__main__":
    main()
