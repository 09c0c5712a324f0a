"""Batched, seeded TensorFlow image corruptions with CIFAR-10-C severities.

Hendrycks & Dietterich's corruptions, written as TensorFlow ops on whole
batches, so that they run inside `tf.data` (graph mode) and on a GPU:

    corrupt(images, name, severity, seed):
        images uint8 [N, H, W, C], C in {1, 3}; severity 0 -> images unchanged
        x      = images / 255                        # float32 in [0, 1]
        x      = CORRUPTION[name](x, params[name][severity - 1], rng(seed, name))
        return uint8(trunc(clip(x, 0, 1) * 255))     # as make_cifar_c.py

The parameters are those of the CIFAR (32 x 32) script `make_cifar_c.py`
(see `_PARAMS`). Like the original, every result is clipped to [0, 1], scaled
to [0, 255] and *truncated* to uint8 (not rounded); a guard of 1/1000 grey
level absorbs float32 rounding so that an exact grey level k never truncates
to k - 1. Where the original's result was already 8-bit (ImageMagick's motion
blur of the image, PIL's pixelate and JPEG) it was rounded, and so is ours.

Randomness is stateless (`tf.random.stateless_*`): the result is a
deterministic function of (images, name, severity, seed), each image in a
batch draws its own noise, and the random numbers of one corruption do not
depend on its severity (so severities differ only in their parameters).
`seed` is a Python int, an int scalar tensor or an int tensor of shape [2];
pass a tensor to vary it per batch inside `tf.data`.

Image size. The parameters are for 32 x 32 images. For an H x W image the
spatial ones scale with s = min(H, W) / 32: every blur sigma and radius
(gaussian, glass, defocus disk and its alias blur, motion and snow streaks),
the elastic alpha, sigma and affine jitter (fractions of the image size, as in
the original), and glass blur's pixel shift (max(1, round(s))). Relative
parameters do not scale: zoom factors, the pixelate fraction, the snow zoom,
noise amounts, JPEG quality. The fog map is the smallest power of two >=
max(H, W) (32 at 32 x 32), cropped to H x W. Kernel widths follow from the
scaled sigmas with the original rules and are at least 1, so 8 x 8 images work.

Grayscale (C = 1) batches: brightness adds c to the grey level (V of a grey
pixel is its value); snow uses the grey level as its luminance; saturate
returns a grey image unchanged (a grey pixel has saturation 0, and the
original's offset c1 would tint it red through hue 0: there is no colour to
saturate); JPEG encodes one channel. Everything else is per channel.

Deviations from `make_cifar_c.py`, each deliberate:

- Motion blur (of the image and of the snow layer) reimplements ImageMagick's
  MotionBlurImage instead of calling it: a one-sided streak of width
  2 ceil(radius) + 1, weights exp(-i^2 / (2 sigma^2)), tap i at offset
  round(i (cos a, sin a)), edge pixels repeated. Taps whose normalised weight
  is below 1e-6 are dropped (< 3e-4 grey levels).
- Glass blur's "swap" in the original assigns through NumPy views, so it
  copies pixel (h + dy, w + dx) into (h, w) with dy, dx in {-1, 0}
  (`randint(-1, 1)`), reading only pixels not yet visited: one parallel
  gather per iteration, which is what is implemented. For a scaled shift
  d > 1 the gather stays parallel (the original would chain copies).
- Elastic: OpenCV's warpAffine uses 1/32-pixel fixed-point bilinear weights;
  we use exact float weights. Affine points are (column, row), which only
  matters for non-square images.
- Impulse noise follows scikit-image >= 0.19 `random_noise(mode="s&p")`: each
  value is replaced with probability `amount`, by 0 or 1 with equal odds.
- JPEG uses libjpeg through `tf.io.encode_jpeg` / `decode_jpeg`
  (INTEGER_ACCURATE), the original PIL; both are libjpeg with 4:2:0 chroma.
- The defocus disk for radii > 8 (only for images > 170 pixels) uses the
  integer grid -ceil(r)..ceil(r) instead of the original's
  `arange(-r, r + 1)`, which is off-grid for fractional r.
- Frost blends in crops of Hendrycks' frost photographs, which cannot ship
  with this package: `corrupt(..., "frost", ..., frost_dir=DIR)` or
  `$FLATNAS_FROST_DIR` (see `flatnas_tf.robustness.frost`), otherwise a clear error.
  It is the 18th corruption, outside `CORRUPTIONS` (the 17 that need
  nothing). Spatter is not implemented.

Reference:
    D. Hendrycks, T. Dietterich. Benchmarking Neural Network Robustness to
    Common Corruptions and Perturbations. ICLR 2019. arXiv:1903.12261.
    Code: github.com/hendrycks/robustness, `ImageNet-C/create_c/make_cifar_c.py`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from flatnas_tf.checks import check_integer
from flatnas_tf.robustness import frost as frost_photos

CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "gaussian_blur",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "fog",
    "brightness",
    "contrast",
    "saturate",
    "pixelate",
    "jpeg_compression",
    "elastic_transform",
    "snow",
)

#: The corruption that needs frost photographs (`flatnas_tf.robustness.frost`).
FROST = "frost"
_EXTRA = ("speckle_noise", "gaussian_blur", "saturate")
BENCHMARK_CORRUPTIONS: tuple[str, ...] = tuple(c for c in CORRUPTIONS if c not in _EXTRA)
"""The 14 of the 15 CIFAR-10-C benchmark corruptions that need no photographs (all but frost)."""

# make_cifar_c.py's severity 1..5 parameters at 32 x 32.
_PARAMS: dict[str, tuple] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "speckle_noise": (0.06, 0.10, 0.12, 0.16, 0.20),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    # The original's np.arange(1, 1.06, .01) etc., floating-point lengths included
    # (7, 12, 16, 21 and 26 zoom factors).
    "zoom_blur": tuple(
        tuple(float(z) for z in np.arange(1, stop, 0.01)) for stop in (1.06, 1.11, 1.16, 1.21, 1.26)
    ),
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),
    # (alpha, sigma, affine jitter) as fractions of the image size.
    "elastic_transform": (
        (0, 0, 0.08),
        (0.05, 0.2, 0.07),
        (0.08, 0.06, 0.06),
        (0.1, 0.04, 0.05),
        (0.1, 0.03, 0.03),
    ),
    "snow": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
    # (image weight, frost weight).
    FROST: ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
}

_GUARD = 1e-3  # grey levels; see the module docstring
_MIN_TAP = 1e-6


# ---------------------------------------------------------------- helpers ---


def _seed_pair(seed) -> tf.Tensor:
    """A stateless-RNG seed of shape [2], int64, from an int or int tensor."""
    if isinstance(seed, bool):
        raise ValueError(
            f"`seed` must be an int or an int tensor of shape [] or [2]; got {seed!r}."
        )
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer:
        raise ValueError(f"`seed` must be an int or an int tensor; got dtype {seed.dtype.name}.")
    seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        return tf.stack([seed, tf.constant(0, tf.int64)])
    if seed.shape.as_list() != [2]:
        raise ValueError(f"`seed` must have shape [] or [2]; got shape {seed.shape}.")
    return seed


def _fold(seed: tf.Tensor, data: int | tf.Tensor) -> tf.Tensor:
    return tf.random.experimental.stateless_fold_in(seed, data)


def _pad_index(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source indices of a 1-D padding; any pad length, modes as in OpenCV/SciPy.

    "edge" repeats the border (scipy "nearest"), "reflect101" mirrors about the
    border pixel (OpenCV's default, scipy "mirror", tf "REFLECT"), "symmetric"
    mirrors with the border repeated (scipy "reflect", tf "SYMMETRIC").
    """
    idx = np.arange(-before, n + after)
    if mode == "edge" or n == 1:
        return np.clip(idx, 0, n - 1)
    if mode == "reflect101":
        period = 2 * (n - 1)
        idx = np.mod(idx, period)
        return np.where(idx > n - 1, period - idx, idx)
    if mode == "symmetric":
        idx = np.mod(idx, 2 * n)
        return np.where(idx >= n, 2 * n - 1 - idx, idx)
    raise ValueError(f"unknown padding mode {mode!r}")


def _pad(x: tf.Tensor, pad_h: int, pad_w: int, mode: str) -> tf.Tensor:
    """Pads [N, H, W, C] by pad_h rows and pad_w columns on each side."""
    h, w = x.shape[1], x.shape[2]
    if pad_h:
        x = tf.gather(x, _pad_index(h, pad_h, pad_h, mode), axis=1)
    if pad_w:
        x = tf.gather(x, _pad_index(w, pad_w, pad_w, mode), axis=2)
    return x


def _depthwise(x: tf.Tensor, kernel: np.ndarray, mode: str) -> tf.Tensor:
    """Correlates every channel of [N, H, W, C] with a 2-D kernel (odd sides)."""
    kh, kw = kernel.shape
    if kh == 1 and kw == 1:
        return x * float(kernel[0, 0])
    x = _pad(x, kh // 2, kw // 2, mode)
    channels = x.shape[-1]
    filt = np.tile(kernel.astype(np.float32)[:, :, None, None], (1, 1, channels, 1))
    return tf.nn.depthwise_conv2d(x, filt, strides=[1, 1, 1, 1], padding="VALID")


def _separable(x: tf.Tensor, kernel: np.ndarray, mode: str) -> tf.Tensor:
    """Filters rows and columns of [N, H, W, C] with the same 1-D kernel."""
    if kernel.size == 1:
        return x
    return _depthwise(_depthwise(x, kernel[:, None], mode), kernel[None, :], mode)


def _gaussian_kernel(sigma: float, truncate: float) -> np.ndarray:
    """scipy.ndimage.gaussian_filter1d's kernel (radius int(truncate sigma + .5))."""
    radius = int(truncate * sigma + 0.5) if sigma > 0 else 0
    if radius == 0:
        return np.ones(1)
    t = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 * (t / sigma) ** 2)
    return phi / phi.sum()


def _gaussian_blur(x: tf.Tensor, sigma: float, mode: str = "edge", truncate: float = 4.0):
    """skimage.filters.gaussian (default mode "nearest", truncate 4) per channel."""
    return _separable(x, _gaussian_kernel(sigma, truncate), mode)


@functools.lru_cache(maxsize=64)
def _disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """make_cifar_c.py's anti-aliased disk, trimmed to its non-zero support."""
    if radius <= 8:
        grid, ksize = np.arange(-8, 8 + 1), 3
    else:
        r = math.ceil(radius)
        grid, ksize = np.arange(-r, r + 1), 5
    xx, yy = np.meshgrid(grid, grid)
    disk = np.asarray(xx**2 + yy**2 <= radius**2, dtype=np.float64)
    disk /= disk.sum()
    # cv2.GaussianBlur(disk, (ksize, ksize), sigmaX=alias_blur), BORDER_REFLECT_101.
    t = np.arange(ksize) - (ksize - 1) / 2
    g = np.exp(-(t**2) / (2 * max(alias_blur, 1e-12) ** 2))
    g /= g.sum()
    pad = ksize // 2
    for axis in (0, 1):
        padded = np.take(disk, _pad_index(disk.shape[axis], pad, pad, "reflect101"), axis=axis)
        disk = sum(
            g[i] * np.take(padded, np.arange(i, i + disk.shape[axis]), axis=axis)
            for i in range(ksize)
        )
    rows = np.flatnonzero(np.abs(disk).sum(axis=1) > 0)
    half = max(abs(rows[0] - len(grid) // 2), abs(rows[-1] - len(grid) // 2))
    centre = len(grid) // 2
    return disk[centre - half : centre + half + 1, centre - half : centre + half + 1]


def _gather_pixels(x: tf.Tensor, rows: tf.Tensor, cols: tf.Tensor) -> tf.Tensor:
    """x[n, rows[n, i, j], cols[n, i, j], :] for int32 index maps [N, H', W']."""
    n = tf.shape(x)[0]
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    flat = tf.reshape(x, [n, h * w, c])
    index = tf.reshape(rows * w + cols, [n, -1])
    out = tf.gather(flat, index, batch_dims=1)
    return tf.reshape(out, [n, rows.shape[1], rows.shape[2], c])


def _fold_coordinate(t: tf.Tensor, n: int, mode: str) -> tf.Tensor:
    """Maps continuous pixel coordinates into range under a mirroring border."""
    if n == 1:
        return tf.zeros_like(t)
    if mode == "reflect101":
        period = 2.0 * (n - 1)
        t = tf.math.floormod(t, period)
        return tf.where(t > n - 1, period - t, t)
    # "symmetric": half-sample mirror about -0.5 and n - 0.5.
    t = tf.math.floormod(t + 0.5, 2.0 * n)
    return tf.where(t >= n, 2.0 * n - t, t) - 0.5


def _bilinear(x: tf.Tensor, rows: tf.Tensor, cols: tf.Tensor, mode: str) -> tf.Tensor:
    """Bilinear samples of [N, H, W, C] at float coordinates [N, H, W]."""
    h, w = x.shape[1], x.shape[2]
    rows = _fold_coordinate(rows, h, mode)
    cols = _fold_coordinate(cols, w, mode)
    r0, c0 = tf.floor(rows), tf.floor(cols)
    wr, wc = (rows - r0)[..., None], (cols - c0)[..., None]
    r0, c0 = tf.cast(r0, tf.int32), tf.cast(c0, tf.int32)
    r1 = tf.clip_by_value(r0 + 1, 0, h - 1)
    c1 = tf.clip_by_value(c0 + 1, 0, w - 1)
    r0 = tf.clip_by_value(r0, 0, h - 1)
    c0 = tf.clip_by_value(c0, 0, w - 1)
    top = _gather_pixels(x, r0, c0) * (1 - wc) + _gather_pixels(x, r0, c1) * wc
    bottom = _gather_pixels(x, r1, c0) * (1 - wc) + _gather_pixels(x, r1, c1) * wc
    return top * (1 - wr) + bottom * wr


def _zoom_taps(n: int, zoom: float) -> tuple[np.ndarray, np.ndarray]:
    """make_cifar_c.py's clipped_zoom along one axis as 2 taps per output pixel.

    Centre crop of ceil(n / zoom) pixels, scipy.ndimage.zoom(order=1) (corner-
    aligned linear interpolation) to round(crop * zoom), centre trim back to n.
    """
    crop = int(np.ceil(n / zoom))
    top = (n - crop) // 2
    out = int(round(crop * zoom))
    trim = (out - n) // 2
    o = np.arange(trim, trim + n, dtype=np.float64)
    t = o * (crop - 1) / (out - 1) if out > 1 else np.zeros(n)
    i0 = np.minimum(np.floor(t).astype(np.int64), crop - 1)
    frac = t - i0
    i1 = np.minimum(i0 + 1, crop - 1)
    return np.stack([i0, i1], 1) + top, np.stack([1 - frac, frac], 1)


@functools.lru_cache(maxsize=64)
def _zoom_operator(h: int, w: int, zooms: tuple[float, ...], with_identity: bool):
    """Sparse [H*W, H*W] matrix of mean(identity?, clipped_zoom(., z) for z)."""
    keys, values = [], []
    count = len(zooms) + int(with_identity)
    if with_identity:
        keys.append(np.arange(h * w) * (h * w + 1))
        values.append(np.ones(h * w))
    out = (np.arange(h)[:, None] * w + np.arange(w)[None, :])[:, :, None, None]
    for z in zooms:
        ri, rw = _zoom_taps(h, z)
        ci, cw = _zoom_taps(w, z)
        src = ri[:, None, :, None] * w + ci[None, :, None, :]
        weight = rw[:, None, :, None] * cw[None, :, None, :]
        keys.append(np.broadcast_to(out * (h * w) + src, weight.shape).ravel())
        values.append(weight.ravel())
    keys = np.concatenate(keys)
    unique, inverse = np.unique(keys, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=np.concatenate(values)) / count
    keep = summed != 0
    indices = np.stack([unique[keep] // (h * w), unique[keep] % (h * w)], 1)
    return indices.astype(np.int64), summed[keep].astype(np.float32)


def _apply_pixel_operator(x: tf.Tensor, operator) -> tf.Tensor:
    """out[n, p, c] = sum_q M[p, q] x[n, q, c] for a sparse pixel operator M."""
    n = tf.shape(x)[0]
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    indices, values = operator
    matrix = tf.sparse.SparseTensor(indices, values, [h * w, h * w])
    cols = tf.reshape(tf.transpose(tf.reshape(x, [n, h * w, c]), [1, 0, 2]), [h * w, -1])
    out = tf.sparse.sparse_dense_matmul(matrix, cols)
    return tf.reshape(tf.transpose(tf.reshape(out, [h * w, n, c]), [1, 0, 2]), [n, h, w, c])


def _clipped_zoom(x: tf.Tensor, zoom: float) -> tf.Tensor:
    if zoom == 1:
        return x
    return _apply_pixel_operator(x, _zoom_operator(x.shape[1], x.shape[2], (zoom,), False))


def _motion_blur(x: tf.Tensor, radius: float, sigma: float, angles: tf.Tensor) -> tf.Tensor:
    """ImageMagick's MotionBlurImage with a per-image angle (degrees), edge pixels."""
    width = 2 * math.ceil(radius) + 1 if radius > 0 else 1
    i = np.arange(width, dtype=np.float64)
    weights = np.exp(-(i**2) / (2 * max(sigma, 1e-12) ** 2))
    weights /= weights.sum()
    taps = np.flatnonzero(weights >= _MIN_TAP)
    weights = weights[taps] / weights[taps].sum()
    h, w = x.shape[1], x.shape[2]
    theta = tf.cast(angles, tf.float64) * (math.pi / 180)
    taps_f = tf.constant(taps, tf.float64)
    dx = tf.cast(tf.math.ceil(taps_f[None, :] * tf.cos(theta)[:, None] - 0.5), tf.int32)
    dy = tf.cast(tf.math.ceil(taps_f[None, :] * tf.sin(theta)[:, None] - 0.5), tf.int32)
    row_base, col_base = tf.range(h)[None, :], tf.range(w)[None, :]
    out = 0.0
    for k, weight in enumerate(weights):
        rows = tf.clip_by_value(row_base + dy[:, k : k + 1], 0, h - 1)
        cols = tf.clip_by_value(col_base + dx[:, k : k + 1], 0, w - 1)
        shifted = tf.gather(tf.gather(x, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
        out += float(weight) * shifted
    return out


def _round_to_8bit(x: tf.Tensor) -> tf.Tensor:
    """Quantises [0, 1] values to k / 255 by rounding (what an 8-bit PNG stores)."""
    return tf.floor(tf.clip_by_value(x, 0.0, 1.0) * 255 + 0.5) / 255


def _luminance(x: tf.Tensor) -> tf.Tensor:
    """OpenCV's RGB2GRAY (0.299 R + 0.587 G + 0.114 B); grey images are their own."""
    if x.shape[-1] == 1:
        return x
    return tf.tensordot(x, tf.constant([0.299, 0.587, 0.114]), 1)[..., None]


def _plasma_fractal(n: tf.Tensor, mapsize: int, decay: float, seed: tf.Tensor) -> tf.Tensor:
    """make_cifar_c.py's diamond-square heightmap, one per image: [N, M, M] in [0, 1]."""
    grid = tf.zeros([n, 1, 1])
    wibble = 100.0
    level = 0
    while grid.shape[1] < mapsize:
        k = grid.shape[1]

        def noisy_mean(total, draw, wibble=wibble, level=level, k=k):
            noise = tf.random.stateless_uniform(
                [n, k, k], _fold(seed, 3 * level + draw), -wibble, wibble
            )
            return total / 4 + wibble * noise

        corners = grid
        centres = noisy_mean(
            corners
            + tf.roll(corners, -1, axis=1)
            + tf.roll(corners, -1, axis=2)
            + tf.roll(tf.roll(corners, -1, axis=1), -1, axis=2),
            0,
        )
        # Midpoints of top edges (row i, column j + 1/2) and left edges.
        top = noisy_mean(
            centres + tf.roll(centres, 1, axis=1) + corners + tf.roll(corners, -1, axis=2), 1
        )
        left = noisy_mean(
            centres + tf.roll(centres, 1, axis=2) + corners + tf.roll(corners, -1, axis=1), 2
        )
        even_rows = tf.reshape(tf.stack([corners, top], -1), [n, k, 2 * k])
        odd_rows = tf.reshape(tf.stack([left, centres], -1), [n, k, 2 * k])
        grid = tf.reshape(tf.stack([even_rows, odd_rows], 2), [n, 2 * k, 2 * k])
        wibble /= decay
        level += 1
    grid -= tf.reduce_min(grid, axis=[1, 2], keepdims=True)
    return grid / tf.reduce_max(grid, axis=[1, 2], keepdims=True)


def _pil_box_weights(n_in: int, n_out: int) -> np.ndarray:
    """Pillow's BOX resampling along one axis as a dense [n_out, n_in] matrix."""
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    matrix = np.zeros((n_out, n_in))
    for xx in range(n_out):
        centre = (xx + 0.5) * scale
        xmin = max(int(centre - support + 0.5), 0)
        xmax = min(int(centre + support + 0.5), n_in)
        t = (np.arange(xmin, xmax) - centre + 0.5) / filterscale
        weights = ((t > -0.5) & (t <= 0.5)).astype(np.float64)
        if weights.sum():
            matrix[xx, xmin:xmax] = weights / weights.sum()
    return matrix


def _pil_resize_box(x: tf.Tensor, h_out: int, w_out: int) -> tf.Tensor:
    """PIL `resize(..., BOX)` of [N, H, W, C] grey levels: columns then rows, each rounded."""
    h, w = x.shape[1], x.shape[2]
    if w_out != w:
        x = tf.einsum("vw,nhwc->nhvc", _pil_box_weights(w, w_out).astype(np.float32), x)
        x = tf.floor(x + 0.5)
    if h_out != h:
        x = tf.einsum("uh,nhwc->nuwc", _pil_box_weights(h, h_out).astype(np.float32), x)
        x = tf.floor(x + 0.5)
    return x


# ------------------------------------------------------------ corruptions ---
# Each takes x float32 [N, H, W, C] in [0, 1], its parameters, a seed of shape
# [2] and the size scale s, and returns float32 values to clip to [0, 1].


def _gaussian_noise(x, c, seed, s):
    return x + c * tf.random.stateless_normal(tf.shape(x), seed)


def _shot_noise(x, c, seed, s):
    return tf.random.stateless_poisson(tf.shape(x), seed, x * c, dtype=tf.float32) / c


def _impulse_noise(x, c, seed, s):
    flipped = tf.random.stateless_uniform(tf.shape(x), _fold(seed, 0)) < c
    salted = tf.random.stateless_uniform(tf.shape(x), _fold(seed, 1)) < 0.5
    return tf.where(flipped, tf.cast(salted, x.dtype), x)


def _speckle_noise(x, c, seed, s):
    return x + x * c * tf.random.stateless_normal(tf.shape(x), seed)


def _gaussian_blur_corruption(x, c, seed, s):
    return _gaussian_blur(x, c * s)


def _defocus_blur(x, c, seed, s):
    return _depthwise(x, _disk_kernel(c[0] * s, c[1] * s), "reflect101")


def _glass_blur(x, c, seed, s):
    sigma, shift, iterations = c[0] * s, max(1, round(c[1] * s)), c[2]
    # np.uint8(gaussian(x) * 255): truncated grey levels.
    x = tf.floor(tf.clip_by_value(_gaussian_blur(x, sigma), 0, 1) * 255 + _GUARD)
    n = tf.shape(x)[0]
    h, w = x.shape[1], x.shape[2]
    # Pixels h in range(H - shift, shift, -1) (same for w) copy from (h+dy, w+dx).
    inner_rows = (np.arange(h) > shift) & (np.arange(h) <= h - shift)
    inner_cols = (np.arange(w) > shift) & (np.arange(w) <= w - shift)
    inner = tf.constant((inner_rows[:, None] & inner_cols[None, :]).astype(np.int32))
    rows, cols = tf.meshgrid(tf.range(h), tf.range(w), indexing="ij")
    for it in range(iterations):
        offsets = tf.random.stateless_uniform(
            [2, n, h, w], _fold(seed, it), -shift, shift, dtype=tf.int32
        )
        x = _gather_pixels(x, rows + offsets[0] * inner, cols + offsets[1] * inner)
    return _gaussian_blur(x / 255, sigma)


def _motion_blur_corruption(x, c, seed, s):
    angles = tf.random.stateless_uniform([tf.shape(x)[0]], seed, -45, 45)
    # ImageMagick writes 8-bit pixels (rounded): + 1/2 level before truncation.
    return _motion_blur(x, c[0] * s, c[1] * s, angles) + 0.5 / 255


def _zoom_blur(x, c, seed, s):
    return _apply_pixel_operator(x, _zoom_operator(x.shape[1], x.shape[2], tuple(c), True))


def _fog(x, c, seed, s):
    h, w = x.shape[1], x.shape[2]
    mapsize = 1 << max(1, math.ceil(math.log2(max(h, w))))
    fractal = _plasma_fractal(tf.shape(x)[0], mapsize, c[1], seed)[:, :h, :w, None]
    max_val = tf.reduce_max(x, axis=[1, 2, 3], keepdims=True)
    return (x + c[0] * fractal) * max_val / (max_val + c[0])


def _brightness(x, c, seed, s):
    if x.shape[-1] == 1:
        return x + c
    hsv = tf.image.rgb_to_hsv(x)
    hsv = tf.concat([hsv[..., :2], tf.clip_by_value(hsv[..., 2:] + c, 0, 1)], -1)
    return tf.image.hsv_to_rgb(hsv)


def _contrast(x, c, seed, s):
    means = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    return (x - means) * c + means


def _saturate(x, c, seed, s):
    if x.shape[-1] == 1:
        return x
    hsv = tf.image.rgb_to_hsv(x)
    saturation = tf.clip_by_value(hsv[..., 1:2] * c[0] + c[1], 0, 1)
    return tf.image.hsv_to_rgb(tf.concat([hsv[..., :1], saturation, hsv[..., 2:]], -1))


def _pixelate(x, c, seed, s):
    h, w = x.shape[1], x.shape[2]
    levels = tf.floor(x * 255 + 0.5)
    small = _pil_resize_box(levels, max(1, int(h * c)), max(1, int(w * c)))
    return (_pil_resize_box(small, h, w) + _GUARD) / 255


def _jpeg_compression(x, c, seed, s):
    levels = tf.cast(tf.floor(x * 255 + 0.5), tf.uint8)

    def round_trip(image):
        encoded = tf.io.encode_jpeg(image, quality=int(c))
        return tf.io.decode_jpeg(encoded, channels=image.shape[-1], dct_method="INTEGER_ACCURATE")

    out = tf.map_fn(round_trip, levels, fn_output_signature=tf.TensorSpec(x.shape[1:], tf.uint8))
    return (tf.cast(out, tf.float32) + _GUARD) / 255


def _elastic_transform(x, c, seed, s):
    n = tf.shape(x)[0]
    h, w = x.shape[1], x.shape[2]
    size = min(h, w)
    alpha, sigma, jitter = c[0] * size, c[1] * size, c[2] * size
    # Random affine: three points around the centre, each moved by U(-jitter, jitter).
    centre = np.float32([w, h]) // 2
    half = size // 3
    pts1 = np.float32([centre + half, [centre[0] + half, centre[1] - half], centre - half]).astype(
        np.float64
    )
    pts2 = pts1 + tf.random.stateless_uniform(
        [n, 3, 2], _fold(seed, 0), -jitter, jitter, tf.float64
    )
    # Forward map M: [x y 1] @ M^T = pts2; warpAffine samples src at M^-1 (dst).
    m_t = tf.linalg.matmul(np.linalg.inv(np.concatenate([pts1, np.ones((3, 1))], 1)), pts2)
    a, b, tx = m_t[:, 0, 0], m_t[:, 1, 0], m_t[:, 2, 0]
    cc, d, ty = m_t[:, 0, 1], m_t[:, 1, 1], m_t[:, 2, 1]
    det = a * d - b * cc
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    u = cols[None] - tx[:, None, None]
    v = rows[None] - ty[:, None, None]
    bc = lambda t: t[:, None, None]  # noqa: E731
    src_cols = (bc(d) * u - bc(b) * v) / bc(det)
    src_rows = (-bc(cc) * u + bc(a) * v) / bc(det)
    x = _bilinear(x, tf.cast(src_rows, tf.float32), tf.cast(src_cols, tf.float32), "reflect101")
    if alpha == 0:
        return x
    noise = tf.random.stateless_uniform([n, h, w, 2], _fold(seed, 1), -1, 1)
    field = _gaussian_blur(noise, sigma, mode="symmetric", truncate=3) * alpha
    rows_f, cols_f = tf.constant(rows, tf.float32), tf.constant(cols, tf.float32)
    return _bilinear(x, rows_f + field[..., 1], cols_f + field[..., 0], "symmetric")


def _snow(x, c, seed, s):
    n = tf.shape(x)[0]
    h, w = x.shape[1], x.shape[2]
    layer = tf.random.stateless_normal([n, h, w, 1], _fold(seed, 0), c[0], c[1])
    layer = _clipped_zoom(layer, c[2])
    layer = tf.where(layer < c[3], 0.0, layer)
    layer = tf.floor(tf.clip_by_value(layer, 0, 1) * 255) / 255  # uint8 PNG for ImageMagick
    angles = tf.random.stateless_uniform([n], _fold(seed, 1), -135, -45)
    layer = _round_to_8bit(_motion_blur(layer, c[4] * s, c[5] * s, angles))
    x = c[6] * x + (1 - c[6]) * tf.maximum(x, _luminance(x) * 1.5 + 0.5)
    return x + layer + tf.reverse(layer, axis=[1, 2])


def _frost(x, c, seed, photos):
    crops = frost_photos.frost_crops(photos, tf.shape(x)[0], x.shape[1], x.shape[2], seed)
    crops = crops / 255 if x.shape[-1] == 3 else _luminance(crops / 255)
    return c[0] * x + c[1] * crops


_FUNCTIONS: dict[str, Callable] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "speckle_noise": _speckle_noise,
    "gaussian_blur": _gaussian_blur_corruption,
    "defocus_blur": _defocus_blur,
    "glass_blur": _glass_blur,
    "motion_blur": _motion_blur_corruption,
    "zoom_blur": _zoom_blur,
    "fog": _fog,
    "brightness": _brightness,
    "contrast": _contrast,
    "saturate": _saturate,
    "pixelate": _pixelate,
    "jpeg_compression": _jpeg_compression,
    "elastic_transform": _elastic_transform,
    "snow": _snow,
}


# ------------------------------------------------------------- public API ---


def _check_name(name: str) -> None:
    if name not in _FUNCTIONS and name != FROST:
        allowed = ", ".join((*CORRUPTIONS, FROST))
        raise ValueError(f"`name` must be one of {allowed}; got {name!r}.")


def _photos(name: str, frost_dir) -> frost_photos.FrostPhotos | None:
    """The frost photographs when `name` is frost (an error without them), else None."""
    if name != FROST:
        return None
    photos = frost_photos.load_frost(frost_dir)
    if photos is None:
        reason = frost_photos.unavailable_reason()
        raise ValueError(f"The frost corruption needs photographs: {reason}.")
    return photos


def _check_severity(severity: int) -> None:
    check_integer(severity, "severity", 0, 5)  # 0 = clean


def _check_images(images) -> tf.Tensor:
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.uint8:
        raise ValueError(f"`images` must be uint8 in [0, 255]; got dtype {images.dtype.name}.")
    if images.shape.rank != 4:
        raise ValueError(f"`images` must have shape [N, H, W, C]; got shape {images.shape}.")
    h, w, c = images.shape[1:]
    if h is None or w is None or c not in (1, 3):
        raise ValueError(
            "`images` must have static height and width and C = 1 or 3 channels; "
            f"got shape {images.shape}."
        )
    return images


def _corrupt_with(images: tf.Tensor, name: str, params, seed, photos=None) -> tf.Tensor:
    """Applies corruption `name` with explicit parameters (the severity's, or any)."""
    images = _check_images(images)
    seed = _fold(_seed_pair(seed), (*CORRUPTIONS, FROST).index(name))
    scale = min(images.shape[1], images.shape[2]) / 32
    x = tf.cast(images, tf.float32) / 255
    if name == FROST:
        y = _frost(x, params, seed, photos)
    else:
        y = _FUNCTIONS[name](x, params, seed, scale)
    y = tf.floor(tf.clip_by_value(y, 0.0, 1.0) * 255 + _GUARD)
    return tf.ensure_shape(tf.cast(tf.minimum(y, 255.0), tf.uint8), images.shape)


def corrupt(
    images, name: str, severity: int, seed: int | tf.Tensor = 0, frost_dir: str | None = None
) -> tf.Tensor:
    """Applies one CIFAR-10-C corruption at one severity to a batch of images.

    Args:
        images: uint8 tensor or array [N, H, W, C] with C = 3 (RGB) or 1 (grey)
            and static H, W; N may be unknown (inside `tf.data`).
        name: One of `CORRUPTIONS`, or "frost".
        severity: 0 (return `images` unchanged) or 1..5, make_cifar_c.py's
            parameters, with spatial ones scaled by min(H, W) / 32.
        seed: Python int, int scalar tensor or int tensor of shape [2]. The
            result is deterministic for a seed; each image draws its own noise.
        frost_dir: For frost: the directory of the frost photographs (default
            `$FLATNAS_FROST_DIR`); see `flatnas_tf.robustness.frost`.

    Returns:
        uint8 tensor of the same shape: clip(corrupted, 0, 1) * 255, truncated.

    Raises:
        ValueError: for an unknown name, a severity outside 0..5, images that
            are not uint8 [N, H, W, 1 or 3], a seed of the wrong type/shape, or
            frost without its photographs.

    Example:
    >>> x = tf.fill([2, 32, 32, 3], tf.constant(100, tf.uint8))
    >>> y = corrupt(x, "contrast", severity=3, seed=0)
    >>> y.shape, y.dtype.name, int(y[0, 0, 0, 0])
    (TensorShape([2, 32, 32, 3]), 'uint8', 100)
    """
    _check_name(name)
    _check_severity(severity)
    images = _check_images(images)
    if severity == 0:
        return images
    photos = _photos(name, frost_dir)
    return _corrupt_with(images, name, _PARAMS[name][severity - 1], seed, photos)


def corruption_fn(
    name: str, severity: int, seed: int | tf.Tensor = 0, frost_dir: str | None = None
) -> Callable:
    """A function for `tf.data.Dataset.map` that corrupts the first element.

    The returned `fn(images, *rest)` returns `(corrupt(images, ...), *rest)`
    (or just the corrupted images when there is nothing else). Its seed is
    `seed` combined with a fingerprint of the batch's pixels, so every batch
    gets different noise while the pipeline stays deterministic, with no
    counter to thread through.

    Args:
        name: One of `CORRUPTIONS`, or "frost".
        severity: 0..5, as in `corrupt`.
        seed: Base seed, as in `corrupt`.
        frost_dir: For frost, as in `corrupt`.

    Returns:
        A function of (images, *rest), traceable in graph mode.

    Example:
    >>> ds = tf.data.Dataset.from_tensor_slices(
    ...     (tf.zeros([8, 32, 32, 3], tf.uint8), tf.range(8))).batch(4)
    >>> ds = ds.map(corruption_fn("gaussian_noise", 2, seed=1))
    >>> [tuple(x.shape) for x, _ in ds]
    [(4, 32, 32, 3), (4, 32, 32, 3)]
    """
    _check_name(name)
    _check_severity(severity)
    base = _seed_pair(seed)
    _photos(name, frost_dir)  # frost without photographs fails here, not inside tf.data

    def fn(images, *rest):
        images = _check_images(images)
        fingerprint = tf.fingerprint(tf.reshape(images, [1, -1]))  # [1, 8] uint8
        words = tf.bitcast(tf.reshape(fingerprint, [2, 4]), tf.int32)
        batch_seed = _fold(_fold(base, words[0]), words[1])
        out = corrupt(images, name, severity, batch_seed, frost_dir)
        return (out, *rest) if rest else out

    return fn
