"""The frost photographs of CIFAR-10-C's frost corruption: found, loaded, cropped.

`make_cifar_c.py` blends a crop of a frost photograph into each image:

    c       = (image weight, frost weight) of the severity
    photo   = one of frost1.png, frost2.png, frost3.png, frost4.jpg, frost5.jpg,
              uniformly (its `randint(5)`: the sixth file, frost6.jpg, is never used)
    small   = cv2.resize(photo, fx=0.2, fy=0.2)      # bilinear, OpenCV's pixel centres
    crop    = small[i:i + 32, j:j + 32], i uniform in [0, rows(small) - 32), j likewise
    output  = uint8(clip(c0 * image + c1 * crop, 0, 255))   # grey levels, truncated

The photographs ship with Hendrycks' code (github.com/hendrycks/robustness,
`ImageNet-C/create_c/`), not with this package. They are found in the directory
passed as `frost_dir`, else in `$FLATNAS_FROST_DIR`; without them frost is not
available and OOD evaluation says it skipped it.

Downscaling: OpenCV's INTER_LINEAR samples source coordinate
(d + 0.5) / fx - 0.5 for output pixel d; at fx = 0.2 that is the whole number
5 d + 2, so the CIFAR result is exactly `photo[2::5, 2::5]` (the output size
rounded as OpenCV does). For images of other sizes the factor scales like every
spatial parameter, 0.2 * min(H, W) / 32, with the same bilinear rule (float
weights where OpenCV uses 11-bit fixed point). Photos are read as OpenCV reads
them: 8-bit RGB, alpha dropped, JPEG with the accurate integer DCT. Grey images
blend in the crop's luminance (0.299 R + 0.587 G + 0.114 B).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib

import numpy as np
import tensorflow as tf

#: The photographs `make_cifar_c.py` draws from, in its order.
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
#: Environment variable naming the directory of the photographs.
FROST_ENV = "FLATNAS_FROST_DIR"
#: make_cifar_c.py's resize factor for 32 x 32 images.
_FACTOR_AT_32 = 0.2
_SOURCE = "github.com/hendrycks/robustness (ImageNet-C/create_c/frost1.png ... frost5.jpg)"


def _read(path: pathlib.Path) -> np.ndarray:
    data = tf.io.read_file(str(path))
    if path.suffix.lower() == ".png":
        image = tf.io.decode_png(data, channels=3)
    else:
        image = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")
    return image.numpy()


def _linear_taps(n_in: int, n_out: int, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV INTER_LINEAR's two source indices and weight of the second, per output."""
    source = (np.arange(n_out) + 0.5) * (1.0 / factor) - 0.5
    low = np.floor(source)
    weight = source - low
    low = low.astype(np.int64)
    weight = np.where(low < 0, 0.0, weight)
    weight = np.where(low >= n_in - 1, 0.0, weight)
    low = np.clip(low, 0, n_in - 1)
    return low, np.minimum(low + 1, n_in - 1), weight


def resize_linear(image: np.ndarray, factor: float) -> np.ndarray:
    """`cv2.resize(image, (0, 0), fx=factor, fy=factor)` (INTER_LINEAR) of uint8 [H, W, C].

    Args:
        image: uint8 array [H, W, C].
        factor: Scale of both sides (0.2 at 32 x 32 images).

    Returns:
        uint8 array [round(H * factor), round(W * factor), C], rounded as OpenCV does.
    """
    h, w = image.shape[:2]
    out_h, out_w = max(1, int(np.rint(h * factor))), max(1, int(np.rint(w * factor)))
    x = image.astype(np.float64)
    low, high, weight = _linear_taps(h, out_h, factor)
    x = x[low] * (1 - weight)[:, None, None] + x[high] * weight[:, None, None]
    low, high, weight = _linear_taps(w, out_w, factor)
    x = x[:, low] * (1 - weight)[None, :, None] + x[:, high] * weight[None, :, None]
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True, eq=False)
class FrostPhotos:
    """The five frost photographs as RGB uint8 arrays, and where they came from."""

    directory: str
    photos: tuple[np.ndarray, ...]

    @functools.lru_cache(maxsize=8)  # noqa: B019 (a handful of image sizes per process)
    def layers(self, height: int, width: int) -> tuple[tf.Tensor, np.ndarray]:
        """The downscaled photos for H x W images, stacked, and their sizes.

        Args:
            height: Image height H.
            width: Image width W.

        Returns:
            (float32 tensor [5, rows, cols, 3] of grey levels, zero-padded to the
            largest photo; int array [5, 2] of each photo's own rows and cols).

        Raises:
            ValueError: When a downscaled photo has no H x W crop.
        """
        factor = _FACTOR_AT_32 * min(height, width) / 32
        small = [resize_linear(photo, factor) for photo in self.photos]
        sizes = np.asarray([s.shape[:2] for s in small], np.int64)
        too_small = [FROST_FILES[k] for k, (r, c) in enumerate(sizes) if r <= height or c <= width]
        if too_small:
            raise ValueError(
                f"Frost photos {', '.join(too_small)} in {self.directory}, downscaled by "
                f"{factor:g}, are not larger than the {height} x {width} images: use "
                f"the originals from {_SOURCE}."
            )
        stack = np.zeros((len(small), *sizes.max(axis=0), 3), np.float32)
        for k, s in enumerate(small):
            stack[k, : s.shape[0], : s.shape[1]] = s
        return tf.constant(stack), sizes


@functools.lru_cache(maxsize=4)
def _load(directory: str) -> FrostPhotos:
    root = pathlib.Path(directory)
    missing = [name for name in FROST_FILES if not (root / name).is_file()]
    if missing:
        raise ValueError(
            f"The frost directory {root} lacks {', '.join(missing)}: it must hold "
            f"{', '.join(FROST_FILES)} from {_SOURCE}."
        )
    return FrostPhotos(str(root), tuple(_read(root / name) for name in FROST_FILES))


def load_frost(directory: str | os.PathLike | None = None) -> FrostPhotos | None:
    """The frost photographs from `directory`, else from `$FLATNAS_FROST_DIR`.

    Args:
        directory: A directory holding `FROST_FILES`, or None.

    Returns:
        The photos (read once per directory and process), or None when neither
        a directory nor the environment variable is given.

    Raises:
        ValueError: When the directory lacks one of the files.

    Example:
    ```python
    photos = load_frost("~/robustness/ImageNet-C/create_c")
    ```
    """
    directory = directory if directory is not None else os.environ.get(FROST_ENV) or None
    if directory is None:
        return None
    return _load(str(pathlib.Path(directory).expanduser().absolute()))


def unavailable_reason() -> str:
    """Why frost is skipped when no photographs are given, and how to provide them."""
    return f"no frost photographs: pass frost_dir (--frost-dir) or set {FROST_ENV}; {_SOURCE}"


def frost_crops(photos: FrostPhotos, count, height: int, width: int, seed: tf.Tensor):
    """One random crop of a random photo per image, as make_cifar_c.py draws them.

    Args:
        photos: The photographs.
        count: Number of images N (an int or a scalar tensor).
        height: Image height H.
        width: Image width W.
        seed: Stateless-RNG seed of shape [2].

    Returns:
        float32 tensor [N, H, W, 3] of grey levels in [0, 255].
    """
    stack, sizes = photos.layers(height, width)
    draws = tf.random.stateless_uniform([3, count], seed)
    choice = tf.minimum(tf.cast(draws[0] * len(FROST_FILES), tf.int32), len(FROST_FILES) - 1)
    # randint(0, size - H): offsets 0 .. size - H - 1.
    spans = tf.gather(tf.constant(sizes - [height, width], tf.float32), choice)
    top = tf.cast(tf.floor(draws[1] * spans[:, 0]), tf.int32)
    left = tf.cast(tf.floor(draws[2] * spans[:, 1]), tf.int32)
    rows = top[:, None] + tf.range(height)[None]  # [N, H]
    cols = left[:, None] + tf.range(width)[None]  # [N, W]
    index = tf.stack(
        [
            tf.broadcast_to(choice[:, None, None], [count, height, width]),
            tf.broadcast_to(rows[:, :, None], [count, height, width]),
            tf.broadcast_to(cols[:, None, :], [count, height, width]),
        ],
        axis=-1,
    )
    return tf.gather_nd(stack, index)
