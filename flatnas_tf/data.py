"""Data sets by name, and the tf.data pipelines that feed them to models.

One string names a data set everywhere, in the library and on the command line:

    digits          scikit-learn's 1,797 real 8x8 handwritten digits, shipped
                    inside scikit-learn: works offline, the default
    npz:PATH        arrays x_train, y_train, x_test, y_test (uint8 images
                    (N, H, W[, C]), integer labels), optional label_names
    folder:PATH     PATH/train/<class>/*.png|jpg and PATH/test/<class>/...
    NAME            a TFDS image classification data set (cifar10, cifar100,
                    mnist, ...): its `train` split is divided into train and
                    validation, its `test` split is kept for final evaluation

Splitting: validation is a seeded random `validation_fraction` of the training
images (for TFDS, each example goes to validation when a stateless uniform draw
keyed by (seed, index) falls below the fraction, so the split streams; the
sizes of both parts are counted from the draws alone, so their pipelines have
known lengths and a trial knows its number of steps); the search never sees
`test`. Digits are split 70 / 10 / 20 (train / validation /
test) by a seeded permutation.

Pixels: every split yields (uint8 image H x W x C, int64 label). Pipelines cast
images to float32 *without rescaling*, pixel values in [0, 255]: scaling to
[0, 1] happens in one place, inside the models (`FlatNASHyperModel` starts
with `Rescaling(1/255)`), so exported models take raw pixels and corruptions
work on uint8 images.

Training pipelines: cache (before augmentation), seeded shuffle, optional
augmentation (random crop from an image padded by H/8 pixels and a horizontal
flip, per-example stateless seeds; off for digits, where flips change the
meaning), batch, cast, prefetch. Evaluation pipelines: batch, cast, cache,
prefetch, in a fixed order.

Both prefetch two batches with tf.data's autotuning switched off: the
training step, not the input, is the bottleneck of a trial, and autotuning's
periodic re-optimisation stalled `fit` for 1.5-2.4 s at about half of the
epoch boundaries of a digits trial on 2 CPU cores (measured: 4 stalls in 8
epochs with it, none without; about 7 s of a 45 s trial).

Offline use of TFDS: GCS probing is switched off; when a data set is neither
prepared in `data_dir` nor downloadable, `DatasetUnavailableError` says which
data set, which `data_dir`, and how to provide the files by hand, at once
instead of after minutes of retries.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import socket
import urllib.parse

import numpy as np
import tensorflow as tf

from flatnas_tf.checks import check_integer
from flatnas_tf.defaults import VALIDATION_FRACTION

DEFAULT_DATASET = "digits"
#: Batches a pipeline prepares ahead of the training step.
PREFETCH_BATCHES = 2
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DatasetUnavailableError(RuntimeError):
    """A named data set cannot be loaded here (not prepared, cannot download)."""


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """An image classification data set, split three ways.

    Attributes:
        name: The spec the data set was loaded from.
        train: Unbatched (uint8 image, int64 label) training examples.
        validation: Unbatched held-out examples from the training data.
        test: Unbatched test examples (final evaluation only).
        input_shape: (height, width, channels).
        num_classes: Number of classes.
        label_names: One name per class.
        augment: Whether crop/flip augmentation suits these images.
    """

    name: str
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    input_shape: tuple[int, int, int]
    num_classes: int
    label_names: tuple[str, ...]
    augment: bool = True

    def batches(
        self,
        split: str,
        batch_size: int = 128,
        training: bool = False,
        seed: int = 0,
        augment: bool | None = None,
    ) -> tf.data.Dataset:
        """A batched pipeline over one split (see the module docstring).

        Args:
            split: "train", "validation" or "test".
            batch_size: Examples per batch.
            training: Shuffle (and augment) for training; otherwise a fixed
                order, cached after the first pass.
            seed: Seed of shuffling and augmentation.
            augment: Override `self.augment` (only used when `training`).

        Returns:
            Batches of (float32 images in [0, 255], int64 labels).

        Example:
        ```python
        data = load_dataset("digits")
        model.fit(data.batches("train", training=True), validation_data=data.batches("validation"))
        ```
        """
        if split not in ("train", "validation", "test"):
            raise ValueError(f"`split` must be train, validation or test; received {split!r}.")
        check_integer(batch_size, "batch_size", 1)
        dataset = getattr(self, split)
        if not training:
            return _steady(dataset.batch(batch_size).map(_to_float).cache())
        dataset = dataset.cache().shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
        if self.augment if augment is None else augment:
            seeds = tf.data.Dataset.random(seed=seed).batch(2)
            dataset = tf.data.Dataset.zip((dataset, seeds)).map(
                _crop_and_flip, num_parallel_calls=tf.data.AUTOTUNE
            )
        return _steady(dataset.batch(batch_size).map(_to_float))


def _to_float(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(images, tf.float32), labels


def _steady(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Prefetches two batches, with tf.data's autotuning off (see the module docstring)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(PREFETCH_BATCHES).with_options(options)


def _crop_and_flip(example, seed: tf.Tensor):
    image, label = example
    shape = tf.shape(image)
    pad = tf.maximum(1, shape[0] // 8)
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = tf.image.stateless_random_crop(padded, shape, seed=crop_seed)
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    return image, label


# -- arrays (digits, npz, folder) ---------------------------------------------


def _check_fraction(validation_fraction: float) -> float:
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(
            f"`validation_fraction` must be in (0, 1); received {validation_fraction!r}."
        )
    return float(validation_fraction)


def _as_images(name: str, x, source: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or len(x) == 0:
        raise ValueError(
            f"{source}: `{name}` must be images of shape (N, H, W) or (N, H, W, 1|3); "
            f"received shape {x.shape}."
        )
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.integer) or x.min() < 0 or x.max() > 255:
            raise ValueError(
                f"{source}: `{name}` must hold uint8 pixel values 0..255; received {x.dtype} "
                f"values in [{x.min()}, {x.max()}]."
            )
        x = x.astype(np.uint8)
    return x


#: The most classes a data set may have (a label of 10**9 would otherwise size a
#: billion-way output layer).
MAX_CLASSES = 100_000


def _as_labels(name: str, y, count: int, source: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != count or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"{source}: `{name}` must be {count} integer labels; received {y.dtype} of shape "
            f"{y.shape}."
        )
    if y.dtype.kind == "u" and y.size and y.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{source}: `{name}` has labels above 2**63; labels must be 0..K-1.")
    if y.size and y.min() < 0:
        raise ValueError(f"{source}: `{name}` has negative labels; labels must be 0..K-1.")
    if y.size and y.max() >= MAX_CLASSES:
        raise ValueError(
            f"{source}: `{name}` has label {int(y.max())}; labels must be 0..K-1 with at most "
            f"{MAX_CLASSES:,} classes (renumber the classes 0, 1, 2, ...)."
        )
    return y.astype(np.int64)


def from_arrays(
    name: str,
    x_train,
    y_train,
    x_test,
    y_test,
    label_names=None,
    validation_fraction: float = VALIDATION_FRACTION,
    seed: int = 0,
    augment: bool = True,
) -> ImageDataset:
    """An `ImageDataset` from in-memory arrays, with a seeded validation split.

    Args:
        name: Name of the data set (used in messages and reports).
        x_train: uint8 images (N, H, W) or (N, H, W, C), C in {1, 3}.
        y_train: Integer labels 0..K-1, shape (N,).
        x_test: Test images, same height/width/channels as `x_train`.
        y_test: Test labels.
        label_names: Optional class names (K of them).
        validation_fraction: Fraction of the training images held out.
        seed: Seed of the split.
        augment: Whether crop/flip augmentation suits these images.

    Returns:
        The data set.

    Example:
    ```python
    data = from_arrays("mine", x_train, y_train, x_test, y_test, label_names=names)
    ```
    """
    validation_fraction = _check_fraction(validation_fraction)
    x_train = _as_images("x_train", x_train, name)
    x_test = _as_images("x_test", x_test, name)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"{name}: train images are {x_train.shape[1:]} but test images are "
            f"{x_test.shape[1:]}; both must have the same shape."
        )
    y_train = _as_labels("y_train", y_train, len(x_train), name)
    y_test = _as_labels("y_test", y_test, len(x_test), name)
    num_classes = int(y_train.max()) + 1
    if label_names is None and y_test.max() >= num_classes:
        raise ValueError(
            f"{name}: `y_test` has label {int(y_test.max())} but the training labels are "
            f"0..{num_classes - 1}; every test class must appear in the training data."
        )
    if label_names is not None:
        label_names = tuple(str(n) for n in np.asarray(label_names).tolist())
        highest = int(max(y_train.max(), y_test.max()))
        if len(label_names) <= highest:
            raise ValueError(
                f"{name}: labels go up to {highest} but only {len(label_names)} "
                "label_names are given; labels must be 0..len(label_names)-1."
            )
        num_classes = len(label_names)
    else:
        label_names = tuple(str(i) for i in range(num_classes))
    if num_classes < 2:
        raise ValueError(f"{name}: the labels hold a single class; need at least 2.")
    order = np.random.default_rng(seed).permutation(len(x_train))
    held_out = max(1, int(round(validation_fraction * len(x_train))))
    if held_out >= len(x_train):
        raise ValueError(f"{name}: {len(x_train)} training images are too few to split.")
    val_index, train_index = order[:held_out], order[held_out:]

    def split(x, y):
        return tf.data.Dataset.from_tensor_slices((x, y))

    return ImageDataset(
        name=name,
        train=split(x_train[train_index], y_train[train_index]),
        validation=split(x_train[val_index], y_train[val_index]),
        test=split(x_test, y_test),
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
        num_classes=num_classes,
        label_names=label_names,
        augment=augment,
    )


def _load_digits(seed: int) -> ImageDataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    order = np.random.default_rng(seed).permutation(len(images))
    test = order[: int(0.2 * len(images))]
    rest = order[len(test) :]
    return from_arrays(
        "digits",
        images[rest],
        digits.target[rest],
        images[test],
        digits.target[test],
        label_names=[str(i) for i in range(10)],
        validation_fraction=1 / 8,  # 10 % of all images
        seed=seed,
        augment=False,
    )


def _load_npz(path: str, validation_fraction: float, seed: int) -> ImageDataset:
    source = f"npz:{path}"
    if not os.path.isfile(path):
        raise ValueError(f"{source}: no such file; pass npz:PATH to an existing .npz file.")
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{source}: not a readable .npz file ({error}).") from None
    with arrays:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
        if missing:
            raise ValueError(
                f"{source}: missing arrays {', '.join(missing)}; an npz data set needs "
                "x_train, y_train, x_test, y_test (and optionally label_names)."
            )
        names = arrays["label_names"] if "label_names" in arrays else None
        return from_arrays(
            source,
            arrays["x_train"],
            arrays["y_train"],
            arrays["x_test"],
            arrays["y_test"],
            label_names=names,
            validation_fraction=validation_fraction,
            seed=seed,
        )


def _read_folder_split(root: pathlib.Path, classes: list[str], source: str):
    images, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        for file in files:
            try:
                image = tf.io.decode_image(tf.io.read_file(str(file)), expand_animations=False)
            except tf.errors.InvalidArgumentError:
                raise ValueError(f"{source}: cannot decode image {file}.") from None
            if images and image.shape != images[0].shape:
                raise ValueError(
                    f"{source}: {file} is {tuple(image.shape)} but {root}'s first image is "
                    f"{tuple(images[0].shape)}; all images must have the same size."
                )
            images.append(image.numpy())
            labels.append(label)
    if not images:
        raise ValueError(f"{source}: no .png/.jpg images under {root}/<class>/.")
    return np.stack(images), np.asarray(labels, np.int64)


def _load_folder(path: str, validation_fraction: float, seed: int) -> ImageDataset:
    source = f"folder:{path}"
    root = pathlib.Path(path)
    train_root, test_root = root / "train", root / "test"
    if not train_root.is_dir() or not test_root.is_dir():
        raise ValueError(
            f"{source}: expected {train_root}/<class>/*.png|jpg and {test_root}/<class>/...; "
            "one of them is missing."
        )
    classes = sorted(p.name for p in train_root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{source}: {train_root} has no class folders.")
    unknown = sorted(p.name for p in test_root.iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise ValueError(f"{source}: test classes {unknown} have no training folder.")
    x_train, y_train = _read_folder_split(train_root, classes, source)
    test_classes = [c for c in classes if (test_root / c).is_dir()]
    x_test, y_test = _read_folder_split(test_root, test_classes, source)
    y_test = np.asarray([classes.index(test_classes[i]) for i in y_test], np.int64)
    return from_arrays(
        source,
        x_train,
        y_train,
        x_test,
        y_test,
        label_names=classes,
        validation_fraction=validation_fraction,
        seed=seed,
    )


# -- TFDS -----------------------------------------------------------------------


class _NoMissingVariantWarning(logging.Filter):
    """Drops TFDS's warning that a data set it looks for is not there yet.

    TFDS warns "Variant folder ... has no dataset_info.json" whenever it checks
    whether a data set is prepared and finds it is not, which is the question
    asked, not a problem (a missing data set gets its own error here).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Variant folder %s has no")


def import_tfds():
    """Imports tensorflow_datasets with the metadata-server probe switched off."""
    os.environ.setdefault("NO_GCE_CHECK", "true")  # no metadata-server probe offline
    import tensorflow_datasets as tfds

    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, _NoMissingVariantWarning) for f in absl_logger.filters):
        absl_logger.addFilter(_NoMissingVariantWarning())
    return tfds


def _default_data_dir() -> str:
    return os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))


def _reachable(url: str, timeout: float = 3.0) -> bool:
    parsed = urllib.parse.urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def tfds_unavailable_reason(builder, download: bool) -> str | None:
    """Why a TFDS data set cannot be loaded here, or None if it can.

    It can when it is prepared in the builder's `data_dir`, when its archive
    sits in the manual directory, or when downloading is allowed and its first
    download address answers within 3 seconds.

    Args:
        builder: A `tfds.core.DatasetBuilder`.
        download: Whether downloading is allowed.

    Returns:
        A one-paragraph explanation with what to do, or None.
    """
    if builder.is_prepared():
        return None
    root = pathlib.Path(builder.data_dir_root)
    manual_dir = root / "downloads" / "manual"
    if manual_dir.is_dir() and any(manual_dir.iterdir()):
        return None
    urls = list(builder.url_infos or {})
    if download and urls and _reachable(urls[0]):
        return None
    prepared_dir = pathlib.Path(builder.data_dir)
    why = "downloading is off" if not download else "its download address cannot be reached"
    return (
        f"TFDS data set {builder.name!r} is not prepared in {root} and "
        f"{why}. Provide it by hand: copy a prepared copy to {prepared_dir}/, or put its "
        f"archive in {manual_dir}/ (TFDS checks size and sha256), then run again"
        + ("." if not download else ", or retry with network access.")
    )


def _load_tfds(
    name: str, data_dir: str | None, validation_fraction: float, seed: int, download: bool
) -> ImageDataset:
    tfds = import_tfds()
    data_dir = data_dir or _default_data_dir()
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"Unknown data set {name!r}: use digits, npz:PATH, folder:PATH or a TFDS image "
            "classification name such as cifar10."
        ) from None
    reason = tfds_unavailable_reason(builder, download)
    if reason:
        raise DatasetUnavailableError(reason)
    supervised = builder.info.supervised_keys
    features = builder.info.features
    if not supervised or "label" not in features:
        raise ValueError(f"TFDS data set {name!r} is not an image classification data set.")
    label_feature = features["label"]
    config = tfds.download.DownloadConfig(try_download_gcs=False)
    try:
        train, test = tfds.load(
            name,
            split=["train", "test"],
            data_dir=data_dir,
            as_supervised=True,
            download=download,
            try_gcs=False,
            download_and_prepare_kwargs={"download_config": config},
        )
    except Exception as error:  # TFDS raises many kinds; say which data set failed
        raise DatasetUnavailableError(
            f"Loading TFDS data set {name!r} from {data_dir} failed: {error}"
        ) from error

    def draw(index):
        return tf.random.stateless_uniform([], seed=tf.stack([tf.cast(seed, tf.int64), index]))

    indexed = train.enumerate().map(lambda index, example: (draw(index), example))
    held_out = indexed.filter(lambda u, _: u < validation_fraction).map(lambda _, e: e)
    kept = indexed.filter(lambda u, _: u >= validation_fraction).map(lambda _, e: e)
    total = int(train.cardinality())
    if total > 0:  # the split sizes from the draws alone (no image is read): known lengths
        held = int(
            tf.data.Dataset.range(total)
            .filter(lambda index: draw(index) < validation_fraction)
            .reduce(tf.constant(0, tf.int64), lambda count, _: count + 1)
        )
        held_out = held_out.apply(tf.data.experimental.assert_cardinality(held))
        kept = kept.apply(tf.data.experimental.assert_cardinality(total - held))

    def typed(image, label):
        return tf.cast(image, tf.uint8), tf.cast(label, tf.int64)

    image_shape = tuple(int(d) for d in features[supervised[0]].shape)
    return ImageDataset(
        name=name,
        train=kept.map(typed),
        validation=held_out.map(typed),
        test=test.map(typed),
        input_shape=image_shape,
        num_classes=int(label_feature.num_classes),
        label_names=tuple(label_feature.names),
        augment=True,
    )


def load_dataset(
    spec: str = DEFAULT_DATASET,
    data_dir: str | None = None,
    validation_fraction: float = VALIDATION_FRACTION,
    seed: int = 0,
    download: bool = True,
) -> ImageDataset:
    """Loads a data set by name (see the module docstring for the names).

    Args:
        spec: "digits", "npz:PATH", "folder:PATH" or a TFDS name.
        data_dir: TFDS data directory (default `$TFDS_DATA_DIR` or
            ~/tensorflow_datasets).
        validation_fraction: Fraction of the training data held out for
            validation (digits: fixed 70/10/20 split).
        seed: Seed of the validation split.
        download: Whether TFDS may download.

    Returns:
        The `ImageDataset`.

    Raises:
        ValueError: An unknown name, a missing file, malformed arrays or folders.
        DatasetUnavailableError: A TFDS data set that is not here and cannot
            be downloaded.

    Example:
    ```python
    data = load_dataset("npz:../shared/data/cifar10_subset_dev.npz")
    data.input_shape, data.num_classes     # (32, 32, 3), 10
    ```
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"A data set spec must be a non-empty string; received {spec!r}.")
    _check_fraction(validation_fraction)
    if spec == "digits":
        return _load_digits(seed)
    if spec.startswith("npz:"):
        return _load_npz(spec[4:], validation_fraction, seed)
    if spec.startswith("folder:"):
        return _load_folder(spec[7:], validation_fraction, seed)
    return _load_tfds(spec, data_dir, validation_fraction, seed, download)
