"""A data set's test images under the built-in corruptions: computed once, read many times.

The built-in corruptions cost about 200 images/s on 2 CPU cores, so
evaluating 75 corruption x severity cells of 2,000 test images costs minutes
for every model. A study that evaluates many models on the same corrupted
images writes them once, as CIFAR-10-C is written once, and reads them back:

    plan     = corruptions, severities, seed, batch size, test images x, y
               (a corruption that moves no pixel of x by more than one grey
               level at any severity is left out, with the reason)
    cell c,s = for batch b of x (batch_size images, b = 0, 1, ...):
                   corrupt(b, c, s, seed=(seed, b))
    written  = DIR/clean.npy     uint8 [N, H, W, C]   the test images
               DIR/labels.npy    int64 [N]
               DIR/<c>.npy       uint8 [S * N, H, W, C], severities stacked in
                                 order (CIFAR-10-C's layout)
               DIR/corrupted.json  settings, what was left out and why, the
                                 SHA-256 of every file, and `complete`

Each file is written atomically, and `corrupted.json` is rewritten after
each corruption, so an interrupted write resumes with the corruptions it
finished (their checksums verified). Reading checks the checksums and that
the set is complete. A cell read back holds exactly the images that
`evaluate_ood(model, data)` computes on the fly with the same seed and batch
size, so both give the same table.

Example:
```python
data = fn.load_dataset("digits")
corrupted = write_corrupted_set(data, "digits-c")      # once
result = fn.evaluate_ood(model, "digits-c")            # per model: no corruption computed
```
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import pathlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from flatnas_tf._version import __version__
from flatnas_tf.checks import check_integer
from flatnas_tf.data import ImageDataset
from flatnas_tf.defaults import SEVERITIES
from flatnas_tf.persistence import storage
from flatnas_tf.robustness import corruptions as builtin
from flatnas_tf.robustness import frost

#: Test images on which a built-in corruption is checked to change anything.
PROBE_IMAGES = 256
#: The manifest's name, and the format it declares.
MANIFEST = "corrupted.json"
FORMAT = "flatnas-tf corrupted set"
FORMAT_VERSION = 1


class CorruptedSetError(ValueError):
    """A directory that is not a complete, intact corrupted set (or holds other settings)."""


@dataclasses.dataclass(frozen=True)
class BuiltinPlan:
    """Which built-in corruptions of which test images, and what was left out.

    Attributes:
        x: The test images, uint8 [N, H, W, C].
        y: Their labels.
        names: The corruptions to apply, in table order.
        set_name: What the set is called in reports ("all 17 built-in", ...).
        skipped: Corruptions left out, each with the reason.
    """

    x: np.ndarray
    y: np.ndarray
    names: tuple[str, ...]
    set_name: str
    skipped: dict[str, str]


def check_severities(severities: Sequence[int]) -> tuple[int, ...]:
    """Validates severities (values in 1..5); returns them as a tuple."""
    severities = tuple(severities)
    if not severities or any(s not in SEVERITIES for s in severities):
        raise ValueError(f"`severities` must be values in 1..5; received {severities!r}.")
    return severities


def test_split_arrays(data, max_examples: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The test images (uint8, [N, H, W, C]) and labels of a data set or of arrays."""
    if isinstance(data, ImageDataset):
        dataset = data.test if max_examples is None else data.test.take(max_examples)
        images, labels = [], []
        for image, label in dataset.as_numpy_iterator():
            images.append(image)
            labels.append(label)
        if not images:
            raise ValueError(f"Data set {data.name!r} has an empty test split.")
        return np.stack(images), np.asarray(labels)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (np.asarray(a) for a in data)
        if x.ndim == 3:
            x = x[..., None]
        if x.dtype != np.uint8 or x.ndim != 4 or len(x) != len(y) or len(x) == 0:
            raise ValueError(
                "`data` arrays must be uint8 images (N, H, W[, C]) and N labels; received "
                f"{x.dtype} images of shape {x.shape} and {len(y)} labels."
            )
        return (x, y) if max_examples is None else (x[:max_examples], y[:max_examples])
    raise TypeError(
        "`data` must be 'cifar10_corrupted', a corrupted set's directory, an ImageDataset or "
        f"a tuple (x, y) of uint8 images and labels; received {type(data).__name__}."
    )


def _builtin_set(corruptions, frost_dir) -> tuple[tuple[str, ...], str, dict[str, str]]:
    """The built-in corruptions a choice names, the set's name, and what was skipped why."""
    frost_here = frost.load_frost(frost_dir) is not None
    with_frost = (builtin.FROST,) if frost_here else ()
    skipped = {} if frost_here else {builtin.FROST: frost.unavailable_reason()}
    if corruptions in (None, "builtin", "all"):
        names = builtin.CORRUPTIONS + with_frost
        return names, f"all {len(names)} built-in", skipped
    if corruptions == "benchmark":
        names = builtin.BENCHMARK_CORRUPTIONS + with_frost
        return names, f"{len(names)} of the 15 CIFAR-10-C benchmark corruptions", skipped
    names = (corruptions,) if isinstance(corruptions, str) else tuple(corruptions)
    known = builtin.CORRUPTIONS + (builtin.FROST,)
    unknown = [c for c in names if c not in known]
    if unknown or not names:
        raise ValueError(f"Unknown corruptions {unknown}; built-in ones are {', '.join(known)}.")
    if builtin.FROST in names and not frost_here:
        raise ValueError(f"frost is chosen but has {frost.unavailable_reason()}.")
    return names, "chosen", {}


def _not_applicable(x: np.ndarray, names, severities, seed: int, frost_dir) -> dict[str, str]:
    """The corruptions that leave these images as they are, with the reason.

    A corruption is not applicable when, on up to `PROBE_IMAGES` of the test
    images, no severity moves any pixel by more than one grey level: saturate
    on grey images (a grey pixel has no saturation), blurs whose kernel is
    below a pixel at this resolution (defocus and Gaussian blur on 8 x 8
    digits). Its cells would equal the clean accuracy and inflate the means.
    """
    probe = x[:PROBE_IMAGES].astype(np.int64)

    def largest_change(name: str, severity: int) -> int:
        corrupted = builtin.corrupt(x[:PROBE_IMAGES], name, severity, seed, frost_dir)
        return int(np.abs(corrupted.numpy().astype(np.int64) - probe).max())

    found = {}
    for name in names:  # the first severity that moves a pixel settles it (usually the first)
        if not any(largest_change(name, s) > 1 for s in severities):
            found[name] = (
                f"not applicable: moves no pixel of these {x.shape[1]}x{x.shape[2]}x"
                f"{x.shape[3]} images by more than one grey level at any severity"
            )
    return found


def builtin_plan(
    data, corruptions, severities: Sequence[int], max_examples: int | None, seed: int, frost_dir
) -> BuiltinPlan:
    """Resolves a choice of built-in corruptions for a data set's test images.

    Args:
        data: An `ImageDataset` or arrays `(x, y)` of uint8 images.
        corruptions: "builtin"/"all"/None, "benchmark" or a list of names.
        severities: The severities that will be applied.
        max_examples: Use only the first `max_examples` test images.
        seed: Seed of the corruptions' randomness (the applicability probe uses it).
        frost_dir: Directory of the frost photographs, if any.

    Returns:
        A `BuiltinPlan`.

    Raises:
        ValueError: for unknown corruptions, or when none changes these images.
    """
    names, set_name, skipped = _builtin_set(corruptions, frost_dir)
    x, y = test_split_arrays(data, max_examples)
    identity = _not_applicable(x, names, severities, seed, frost_dir)
    names = tuple(name for name in names if name not in identity)
    if not names:
        raise ValueError(
            f"None of the chosen corruptions changes these images: {', '.join(identity)}."
        )
    return BuiltinPlan(x, y, names, set_name, {**skipped, **identity})


def corrupted_batches(
    clean: tf.data.Dataset, name: str, severity: int, seed: int, frost_dir
) -> tf.data.Dataset:
    """The batches of `clean` ((images, labels)) with one corruption applied.

    Batch b is corrupted with the seed pair (seed, b): the images depend on
    the seed and on the batch size, which is why a corrupted set records both.
    """

    def corrupted(index, batch):
        images, labels = batch
        pair = tf.stack([tf.constant(seed, tf.int64), index])
        return builtin.corrupt(images, name, severity, pair, frost_dir), labels

    return clean.enumerate().map(corrupted)


# ------------------------------------------------------- on disk ---


@dataclasses.dataclass(frozen=True)
class CorruptedSet:
    """A corrupted test set on disk, read back (see the module docstring).

    Attributes:
        directory: Where it lives.
        manifest: The parsed `corrupted.json`.
    """

    directory: pathlib.Path
    manifest: dict

    @property
    def corruptions(self) -> tuple[str, ...]:
        """The corruptions written, in table order."""
        return tuple(self.manifest["corruptions"])

    @property
    def severities(self) -> tuple[int, ...]:
        """The severities of every corruption, in the order they are stacked."""
        return tuple(self.manifest["severities"])

    @property
    def skipped(self) -> dict[str, str]:
        """Corruptions left out when the set was written, each with the reason."""
        return dict(self.manifest["skipped"])

    @property
    def set_name(self) -> str:
        """The corruption set's name, as reports give it."""
        return self.manifest["set_name"]

    @property
    def examples(self) -> int:
        """Test images per cell."""
        return int(self.manifest["examples"])

    def clean(self) -> tuple[np.ndarray, np.ndarray]:
        """The uncorrupted test images and their labels."""
        return self._array("clean.npy"), self._array("labels.npy")

    def cells(self) -> Iterator[tuple[str, int, np.ndarray]]:
        """(corruption, severity, images) for every cell, in table order."""
        n = self.examples
        for name in self.corruptions:
            stacked = self._array(f"{name}.npy")
            for index, severity in enumerate(self.severities):
                yield name, severity, stacked[index * n : (index + 1) * n]

    def _array(self, file: str) -> np.ndarray:
        data = (self.directory / file).read_bytes()
        if _sha256(data) != self.manifest["files"].get(file):
            raise CorruptedSetError(
                f"{self.directory / file} does not match the checksum in {MANIFEST}: the "
                "file changed after it was written; write the set again."
            )
        return np.load(io.BytesIO(data), allow_pickle=False)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_manifest(directory: pathlib.Path) -> dict | None:
    path = directory / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CorruptedSetError(f"{path} is not readable JSON ({error}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptedSetError(f"{path} is not a flatnas-tf corrupted set's manifest.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CorruptedSetError(
            f"{path} has format version {manifest.get('format_version')!r}; this flatnas-tf "
            f"reads version {FORMAT_VERSION}: write the set again."
        )
    return manifest


def is_corrupted_set(path) -> bool:
    """Whether `path` is a directory holding a corrupted set's manifest."""
    try:
        return (pathlib.Path(path) / MANIFEST).is_file()
    except TypeError:
        return False


def load_corrupted_set(directory: str | pathlib.Path) -> CorruptedSet:
    """Opens a corrupted set written by `write_corrupted_set` (or `flatnas-tf prepare corrupted`).

    Args:
        directory: The set's directory.

    Returns:
        The `CorruptedSet`; each array's checksum is verified when it is read.

    Raises:
        CorruptedSetError: when the directory holds no manifest, a foreign or
            damaged one, or an incomplete set (an interrupted write).

    Example:
    ```python
    corrupted = load_corrupted_set("digits-c")
    for name, severity, images in corrupted.cells():
        ...
    ```
    """
    directory = pathlib.Path(directory)
    manifest = _read_manifest(directory)
    if manifest is None:
        raise CorruptedSetError(
            f"{directory} holds no {MANIFEST}: write the set with write_corrupted_set or "
            "`flatnas-tf prepare corrupted --data SPEC --out DIR`."
        )
    if not manifest.get("complete"):
        raise CorruptedSetError(
            f"{directory} holds an incomplete corrupted set ({len(manifest['files']) - 2} of "
            f"{len(manifest['corruptions'])} corruptions written): run the same write again "
            "to finish it."
        )
    return CorruptedSet(directory, manifest)


def _write_array(directory: pathlib.Path, file: str, array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    data = buffer.getvalue()
    storage.write_bytes(directory / file, data)
    return _sha256(data)


def write_corrupted_set(
    data,
    directory: str | pathlib.Path,
    corruptions: str | Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    max_examples: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    frost_dir: str | None = None,
    description: dict | None = None,
    on_corruption: Callable[[str, bool], None] | None = None,
) -> CorruptedSet:
    """Corrupts a data set's test images once and writes them (see the module docstring).

    Args:
        data: An `ImageDataset` or arrays `(x, y)` of uint8 images: its test
            images are corrupted.
        directory: Where to write; created if needed. A directory holding a set
            of the same settings is finished (or left as it is, if complete).
        corruptions: "builtin"/"all"/None (the 17 built-in, and frost with its
            photographs), "benchmark" or a list of names, as `evaluate_ood`.
        severities: Severities to write (default 1..5).
        max_examples: Use only the first `max_examples` test images.
        seed: Seed of the corruptions' randomness.
        batch_size: Images per corruption call; with `seed` it fixes the
            images (use `evaluate_ood`'s batch size to reproduce its table).
        frost_dir: The frost photographs' directory (default
            `$FLATNAS_FROST_DIR`); without them frost is left out, and the
            manifest says why.
        description: What the data is (data set spec, split seed, ...),
            recorded in the manifest as given.
        on_corruption: Called with (name, written_now) after each corruption.

    Returns:
        The written `CorruptedSet`.

    Raises:
        CorruptedSetError: when `directory` holds a set of other settings or
            a foreign manifest.
        ValueError: for invalid corruptions, severities or counts.

    Example:
    ```python
    write_corrupted_set(fn.load_dataset("digits"), "digits-c", description={"data": "digits"})
    ```
    """
    severities = check_severities(severities)
    check_integer(max_examples, "max_examples", 1, optional=True)
    check_integer(batch_size, "batch_size", 1)
    check_integer(seed, "seed", 0)
    directory = pathlib.Path(directory)
    plan = builtin_plan(data, corruptions, severities, max_examples, seed, frost_dir)
    settings = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "description": dict(description or {}),
        "corruptions": list(plan.names),
        "set_name": plan.set_name,
        "skipped": plan.skipped,
        "severities": list(severities),
        "seed": seed,
        "batch_size": batch_size,
        "examples": len(plan.x),
        "image_shape": list(plan.x.shape[1:]),
    }
    directory.mkdir(parents=True, exist_ok=True)
    with storage.directory_lock(directory):
        storage.remove_partial_files(directory)
        files = _resumable_files(directory, settings, plan)
        manifest = {**settings, "flatnas_tf_version": __version__, "files": files}
        clean = tf.data.Dataset.from_tensor_slices((plan.x, plan.y)).batch(batch_size)
        for name in plan.names:
            written_now = f"{name}.npy" not in files
            if written_now:
                stacked = np.concatenate(
                    [
                        np.concatenate(
                            [
                                images
                                for images, _ in corrupted_batches(
                                    clean, name, severity, seed, frost_dir
                                ).as_numpy_iterator()
                            ]
                        )
                        for severity in severities
                    ]
                )
                files[f"{name}.npy"] = _write_array(directory, f"{name}.npy", stacked)
                storage.write_json(directory / MANIFEST, {**manifest, "complete": False})
            if on_corruption is not None:
                on_corruption(name, written_now)
        storage.write_json(directory / MANIFEST, {**manifest, "complete": True})
    return load_corrupted_set(directory)


def _resumable_files(directory: pathlib.Path, settings: dict, plan: BuiltinPlan) -> dict:
    """The files of an earlier write of the same settings that are intact; writes the rest.

    The clean images and labels are (re)written when missing or damaged; a
    corruption's file is kept only when its checksum matches the manifest.
    """
    earlier = _read_manifest(directory)
    files: dict[str, str] = {}
    if earlier is not None:
        same = {key: earlier.get(key) for key in settings} == settings
        if not same:
            raise CorruptedSetError(
                f"{directory} holds a corrupted set of other settings; choose another "
                "directory, or delete this one to write it anew."
            )
        for file, digest in earlier.get("files", {}).items():
            path = directory / file
            if path.is_file() and _sha256(path.read_bytes()) == digest:
                files[file] = digest
    elif any(not path.name.startswith(".") for path in directory.iterdir()):
        raise CorruptedSetError(
            f"{directory} is not empty and holds no {MANIFEST}: choose an empty or new "
            "directory for the corrupted set."
        )
    for file, array in (("clean.npy", plan.x), ("labels.npy", plan.y.astype(np.int64))):
        if file not in files:
            files[file] = _write_array(directory, file, array)
    return files
