"""Out-of-distribution evaluation: accuracy per corruption and severity, and mCE.

For a model and a set of corruptions C with severities s = 1..5:

    A(c, s)   = top-1 accuracy on the test images corrupted by c at severity s
    E(c, s)   = 100 * (1 - A(c, s))                      (error, percent)
    mean corruption accuracy = mean over the |C| x 5 cells of A
    mCE       = mean over the cells of E = 100 * (1 - mean corruption accuracy)
                (unnormalised, the CIFAR convention: RobustBench, AugMix, FlatNAS;
                 ImageNet-C's AlexNet normalisation has no CIFAR counterpart)
    relative mCE = mean over c of sum_s (E(c, s) - E_clean) / 5   (needs clean)

Two sources of corrupted images:

- `"cifar10_corrupted"`: TFDS's CIFAR-10-C, config `<corruption>_<severity>`,
  the 15 benchmark corruptions (TFDS names `frosted_glass_blur`, `elastic`),
  or all 19 with `corruptions="all"`. Clean accuracy needs `clean=` data.
- any data set (an `ImageDataset`, or arrays `(x, y)` of uint8 images): its
  test images corrupted on the fly by `flatnas_tf.robustness.corruptions` (17 built-in
  corruptions, and frost when its photographs are given: `frost_dir` or
  `$FLATNAS_FROST_DIR`; otherwise the result lists it as skipped), batch-wise
  seeded.
- a corrupted set written once by `flatnas_tf.robustness.corrupted_set` (a directory or
  a `CorruptedSet`): the same images as on the fly, read instead of computed,
  for studies that evaluate many models.

Every result states how many corruptions were averaged, and which.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from flatnas_tf.checks import check_integer
from flatnas_tf.data import DatasetUnavailableError, import_tfds, tfds_unavailable_reason
from flatnas_tf.persistence import storage
from flatnas_tf.robustness import cifar10_corrupted
from flatnas_tf.robustness.corrupted_set import (
    SEVERITIES,
    CorruptedSet,
    builtin_plan,
    check_severities,
    corrupted_batches,
    is_corrupted_set,
    load_corrupted_set,
    test_split_arrays,
)

#: TFDS cifar10_corrupted's 15 benchmark corruptions (its names) and 4 extras.
TFDS_BENCHMARK, TFDS_EXTRA = cifar10_corrupted.BENCHMARK, cifar10_corrupted.EXTRA


@dataclasses.dataclass(frozen=True)
class OODResult:
    """Accuracy per corruption and severity, and the figures derived from it.

    Accuracies are fractions in [0, 1]; errors, mCE and relative mCE are in
    percent, as the CIFAR-C literature reports them.

    Attributes:
        source: "cifar10_corrupted" or "builtin".
        accuracy: Corruption name -> accuracies at `severities`.
        severities: The severities evaluated.
        examples: Test images per cell.
        clean_accuracy: Accuracy on the clean test images, if measured.
        set_name: Which corruption set was averaged ("15 benchmark", ...).
        skipped: Corruptions of the set left out of the table and the means,
            each with the reason.
    """

    source: str
    accuracy: dict[str, tuple[float, ...]]
    severities: tuple[int, ...]
    examples: int
    clean_accuracy: float | None = None
    set_name: str = ""
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def corruptions(self) -> tuple[str, ...]:
        """The corruptions evaluated, in table order."""
        return tuple(self.accuracy)

    @property
    def averaged_over(self) -> str:
        """A sentence saying what the means average over."""
        label = f" ({self.set_name})" if self.set_name else ""
        reasons: dict[str, list[str]] = {}
        for name, why in self.skipped.items():
            reasons.setdefault(why, []).append(name)
        left_out = "".join(f"; {', '.join(n)} skipped ({why})" for why, n in reasons.items())
        return (
            f"{len(self.accuracy)} corruptions{label} x {len(self.severities)} severities, "
            f"{self.examples} images per cell, source {self.source}{left_out}"
        )

    def _table(self) -> np.ndarray:
        return np.asarray([self.accuracy[c] for c in self.corruptions], dtype=np.float64)

    @property
    def mean_corruption_accuracy(self) -> float:
        """Mean accuracy over all corruption x severity cells."""
        return float(self._table().mean())

    @property
    def mce(self) -> float:
        """Unnormalised mean corruption error, percent."""
        return 100.0 * (1.0 - self.mean_corruption_accuracy)

    @property
    def relative_mce(self) -> float | None:
        """Mean over corruptions of the mean error increase over clean, percent."""
        if self.clean_accuracy is None:
            return None
        errors = 100.0 * (1.0 - self._table())
        clean_error = 100.0 * (1.0 - self.clean_accuracy)
        return float(np.mean(np.mean(errors - clean_error, axis=1)))

    def by_severity(self) -> dict[int, float]:
        """Mean accuracy over corruptions at each severity."""
        means = self._table().mean(axis=0)
        return {s: float(m) for s, m in zip(self.severities, means, strict=True)}

    def by_corruption(self) -> dict[str, float]:
        """Mean accuracy over severities for each corruption."""
        return {c: float(np.mean(a)) for c, a in self.accuracy.items()}

    def to_dict(self) -> dict:
        """Plain JSON-ready summary: the table and every derived figure."""
        return {
            "source": self.source,
            "averaged_over": self.averaged_over,
            "corruption_set": self.set_name,
            "skipped": dict(self.skipped),
            "severities": list(self.severities),
            "examples_per_cell": self.examples,
            "clean_accuracy": self.clean_accuracy,
            "mean_corruption_accuracy": self.mean_corruption_accuracy,
            "mce": self.mce,
            "relative_mce": self.relative_mce,
            "accuracy_by_severity": {str(s): a for s, a in self.by_severity().items()},
            "accuracy_by_corruption": self.by_corruption(),
            "accuracy": {c: list(a) for c, a in self.accuracy.items()},
        }

    def to_json(self) -> str:
        """The summary as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        """One row per cell: corruption, severity, accuracy, error (percent)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["corruption", "severity", "accuracy", "error_percent"])
        for corruption, accuracies in self.accuracy.items():
            for severity, accuracy in zip(self.severities, accuracies, strict=True):
                writer.writerow(
                    [corruption, severity, f"{accuracy:.6f}", f"{100 * (1 - accuracy):.4f}"]
                )
        return buffer.getvalue()

    def write(self, stem: str | os.PathLike) -> list[Path]:
        """Writes the result as `<stem>.json`, `.csv` and `.md`, each atomically.

        Args:
            stem: The files' path without a suffix (its directory is made).

        Returns:
            The three paths written.

        Example:
        ```python
        evaluate_ood(model, data).write("runs/digits/ood/trial_003")
        ```
        """
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        paths = []
        for suffix, text in (
            (".json", self.to_json()),
            (".csv", self.to_csv()),
            (".md", self.to_markdown()),
        ):
            path = stem.with_suffix(suffix)
            storage.write_text(path, text)
            paths.append(path)
        return paths

    def to_markdown(self) -> str:
        """A Markdown table of accuracy (percent) with means, and the summary figures."""
        header = "| corruption | " + " | ".join(f"s{s}" for s in self.severities) + " | mean |"
        lines = [header, "|---" * (len(self.severities) + 2) + "|"]
        for corruption, accuracies in self.accuracy.items():
            cells = " | ".join(f"{100 * a:.1f}" for a in accuracies)
            lines.append(f"| {corruption} | {cells} | {100 * np.mean(accuracies):.1f} |")
        means = " | ".join(f"{100 * a:.1f}" for a in self.by_severity().values())
        lines.append(f"| **mean** | {means} | **{100 * self.mean_corruption_accuracy:.1f}** |")
        lines.append("")
        if self.clean_accuracy is not None:
            lines.append(f"- clean accuracy: {100 * self.clean_accuracy:.2f} %")
        lines.append(f"- mean corruption accuracy: {100 * self.mean_corruption_accuracy:.2f} %")
        lines.append(f"- mCE (unnormalised): {self.mce:.2f} %")
        if self.relative_mce is not None:
            lines.append(f"- relative mCE: {self.relative_mce:.2f} %")
        lines.append(f"- averaged over {self.averaged_over}")
        return "\n".join(lines) + "\n"


def _accuracy(model: keras.Model, images: tf.data.Dataset, labels: np.ndarray) -> float:
    logits = model.predict(images, verbose=0)
    predicted = np.argmax(logits, axis=-1) if logits.shape[-1] > 1 else logits[:, 0] > 0
    return float(np.mean(predicted.astype(np.int64) == labels.astype(np.int64)))


def _array_accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    images = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    return _accuracy(model, _images_only(images), y)


def _images_only(dataset: tf.data.Dataset) -> tf.data.Dataset:
    return dataset.map(lambda x, y: tf.cast(x, tf.float32)).prefetch(tf.data.AUTOTUNE)


def _evaluate_builtin(
    model, data, corruptions, severities, max_examples, batch_size, seed, frost_dir
) -> OODResult:
    plan = builtin_plan(data, corruptions, severities, max_examples, seed, frost_dir)
    clean = tf.data.Dataset.from_tensor_slices((plan.x, plan.y)).batch(batch_size)
    clean_accuracy = _accuracy(model, _images_only(clean), plan.y)
    table = {}
    for name in plan.names:
        table[name] = tuple(
            _accuracy(
                model,
                _images_only(corrupted_batches(clean, name, severity, seed, frost_dir)),
                plan.y,
            )
            for severity in severities
        )
    return OODResult(
        "builtin", table, severities, len(plan.x), clean_accuracy, plan.set_name, plan.skipped
    )


def _evaluate_corrupted_set(
    model, corrupted: CorruptedSet, corruptions, severities, max_examples, batch_size
) -> OODResult:
    if corruptions not in (None, "builtin", "all"):
        raise ValueError(
            f"{corrupted.directory} holds the corruptions it was written with "
            f"({', '.join(corrupted.corruptions)}); leave `corruptions` unset."
        )
    missing = sorted(set(severities) - set(corrupted.severities))
    if missing:
        raise ValueError(
            f"{corrupted.directory} holds severities {list(corrupted.severities)}; "
            f"{missing} are not in it."
        )
    x, y = corrupted.clean()
    n = len(y) if max_examples is None else min(max_examples, len(y))
    clean_accuracy = _array_accuracy(model, x[:n], y[:n], batch_size)
    cells: dict[str, dict[int, float]] = {}
    for name, severity, images in corrupted.cells():
        if severity in severities:
            accuracy = _array_accuracy(model, images[:n], y[:n], batch_size)
            cells.setdefault(name, {})[severity] = accuracy
    return OODResult(
        f"corrupted set {corrupted.directory}",
        {name: tuple(row[s] for s in severities) for name, row in cells.items()},
        severities,
        n,
        clean_accuracy,
        corrupted.set_name,
        corrupted.skipped,
    )


def _evaluate_tfds(
    model, corruptions, severities, max_examples, batch_size, clean, data_dir, download
) -> OODResult:
    tfds = import_tfds()
    names, set_name = cifar10_corrupted.corruption_set(corruptions)
    if download:
        builder = tfds.builder(f"cifar10_corrupted/{names[0]}_{severities[0]}", data_dir=data_dir)
        reason = tfds_unavailable_reason(builder, download)
        if reason:
            raise DatasetUnavailableError(reason)
    else:
        configs = cifar10_corrupted.config_names(names, severities)
        missing = cifar10_corrupted.missing_configs(configs, data_dir)
        if missing:
            raise DatasetUnavailableError(cifar10_corrupted.unprepared_message(missing, data_dir))
    split = "test" if max_examples is None else f"test[:{max_examples}]"
    config = tfds.download.DownloadConfig(try_download_gcs=False)
    table, examples = {}, None
    for name in names:
        row = []
        for severity in severities:
            cell = tfds.load(
                f"cifar10_corrupted/{name}_{severity}",
                split=split,
                data_dir=data_dir,
                as_supervised=True,
                download=download,
                try_gcs=False,
                download_and_prepare_kwargs={"download_config": config},
            )
            # One pass decodes the cell's images (PNG in TFDS's files) for both uses.
            batches = list(cell.batch(batch_size).as_numpy_iterator())
            x = np.concatenate([images for images, _ in batches])
            y = np.concatenate([labels for _, labels in batches])
            examples = len(y)
            row.append(_array_accuracy(model, x, y, batch_size))
        table[name] = tuple(row)
    clean_accuracy = None
    if clean is not None:
        clean_accuracy = _array_accuracy(model, *test_split_arrays(clean, max_examples), batch_size)
    return OODResult("cifar10_corrupted", table, severities, examples, clean_accuracy, set_name)


def evaluate_ood(
    model: keras.Model,
    data,
    corruptions: str | Sequence[str] | None = None,
    severities: Sequence[int] | None = None,
    max_examples: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    clean=None,
    data_dir: str | None = None,
    download: bool = False,
    frost_dir: str | None = None,
) -> OODResult:
    """Accuracy of a classifier under corruptions, per corruption and severity.

    Args:
        model: A classifier taking pixels in [0, 255] and returning logits or
            probabilities (as `FlatNASHyperModel` builds them).
        data: "cifar10_corrupted" (TFDS CIFAR-10-C); the directory of a
            corrupted set (`flatnas_tf.robustness.corrupted_set`) or a `CorruptedSet`,
            whose images are read, not computed; or an `ImageDataset` or
            arrays `(x, y)` whose test images get the built-in corruptions.
        corruptions: For CIFAR-10-C: "benchmark" (default, 15) or "all" (19)
            or a list of TFDS names. For built-in: "builtin"/"all" (default,
            the 17 of `CORRUPTIONS` and frost when its photographs are
            given), "benchmark" (15 with frost, else 14) or a list.
        severities: Severities to evaluate (default 1..5; for a corrupted set,
            the ones it holds).
        max_examples: Use only the first `max_examples` test images per cell.
        batch_size: Prediction batch size.
        seed: Seed of the built-in corruptions' randomness.
        clean: For CIFAR-10-C, clean test data (an `ImageDataset` or arrays)
            for the clean accuracy and the relative mCE.
        data_dir: TFDS data directory.
        download: Whether TFDS may download CIFAR-10-C (2.9 GB).
        frost_dir: Built-in: the directory of the frost photographs (default
            `$FLATNAS_FROST_DIR`); without them frost is skipped, and the
            result says so.

    Returns:
        An `OODResult` (table, mean corruption accuracy, mCE, relative mCE).

    Example:
    ```python
    result = evaluate_ood(model, load_dataset("digits"))
    print(result.to_markdown())
    result = evaluate_ood(model, "cifar10_corrupted", clean=load_dataset("cifar10"))
    result = evaluate_ood(model, "digits-c")  # written once by write_corrupted_set
    ```
    """
    max_examples = check_integer(max_examples, "max_examples", 1, optional=True)
    if isinstance(data, (str, os.PathLike)) and is_corrupted_set(data):
        data = load_corrupted_set(data)
    if isinstance(data, CorruptedSet):
        severities = check_severities(data.severities if severities is None else severities)
        return _evaluate_corrupted_set(
            model, data, corruptions, severities, max_examples, batch_size
        )
    severities = check_severities(SEVERITIES if severities is None else severities)
    if isinstance(data, (str, os.PathLike)):
        if data != "cifar10_corrupted":
            raise ValueError(
                f"Unknown OOD source {str(data)!r}: pass 'cifar10_corrupted', the directory of "
                "a corrupted set (flatnas-tf prepare corrupted), or the data set whose test "
                "images should be corrupted with the built-in corruptions."
            )
        return _evaluate_tfds(
            model, corruptions, severities, max_examples, batch_size, clean, data_dir, download
        )
    return _evaluate_builtin(
        model, data, corruptions, severities, max_examples, batch_size, seed, frost_dir
    )
