"""TFDS's CIFAR-10-C (`cifar10_corrupted`): its names, what is prepared, preparing it by hand.

TFDS's builder reads one archive, `CIFAR-10-C.tar` (2,918,471,680 bytes, from
Zenodo), which holds `CIFAR-10-C/<file>.npy` per corruption (the 10,000 CIFAR-10
test images at severities 1..5 stacked: 50,000 x 32 x 32 x 3 uint8) and
`CIFAR-10-C/labels.npy`. Each of its 95 configs `<corruption>_<severity>` is
prepared on its own into `<data_dir>/cifar10_corrupted/<config>/1.0.0/`, and
`tfds.load` reads only prepared configs when downloading is off.

Preparing from a file downloaded by hand (`prepare`, `flatnas-tf prepare`):

1. The archive is checked here first, so that a wrong file fails at once with
   what is wrong: its size against the one TFDS registers for the download
   address, then its tar layout (the `.npy` files the asked configs read).
2. TFDS's own builder prepares each config that is not prepared yet, through
   TFDS's manual-download mechanism: the file is handed over as
   `<manual_dir>/CIFAR-10-C.tar` (a symbolic link when it has another name or
   place). TFDS verifies size and sha256 against its registry, extracts the
   archive once into a temporary directory next to the data (2.9 GB, removed at
   the end), and writes each config atomically (into an incomplete directory,
   renamed when done). No network is used.
3. Configs already prepared are skipped, so an interrupted run resumes.

TFDS verifies the archive for every config (each builder has its own download
manager): a full sha256 pass over the 2.9 GB file per config.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence

from flatnas_tf.data import DatasetUnavailableError, import_tfds
from flatnas_tf.defaults import SEVERITIES

NAME = "cifar10_corrupted"
#: The archive's folder, and the file of every config's labels.
_FOLDER = "CIFAR-10-C"
_LABELS = "labels.npy"

#: The 15 benchmark corruptions (TFDS's names) and the 4 extras.
BENCHMARK = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "frosted_glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic",
    "pixelate",
    "jpeg_compression",
)
EXTRA = ("gaussian_blur", "saturate", "spatter", "speckle_noise")
#: The archive's file names where they differ from TFDS's corruption names.
_FILES = {"frosted_glass_blur": "glass_blur", "elastic": "elastic_transform"}


def corruption_set(corruptions: str | Sequence[str] | None) -> tuple[tuple[str, ...], str]:
    """The corruptions a choice names, and how to call the set in a result.

    Args:
        corruptions: "benchmark" or None (the 15), "all" (the 19), or a list of
            TFDS names.

    Returns:
        (names, set name): e.g. (BENCHMARK, "15 benchmark").

    Raises:
        ValueError: For an empty list or a name TFDS does not have.
    """
    if corruptions in (None, "benchmark"):
        return BENCHMARK, "15 benchmark"
    if corruptions == "all":
        return BENCHMARK + EXTRA, "all 19"
    names = (corruptions,) if isinstance(corruptions, str) else tuple(corruptions)
    unknown = [name for name in names if name not in BENCHMARK + EXTRA]
    if unknown or not names:
        raise ValueError(
            f"Unknown cifar10_corrupted corruptions {unknown}; pass 'benchmark', 'all' or "
            f"TFDS names: {', '.join(BENCHMARK + EXTRA)}."
        )
    return names, "chosen"


def config_names(corruptions: Sequence[str], severities: Sequence[int]) -> list[str]:
    """TFDS config names `<corruption>_<severity>`, corruption-major."""
    return [f"{name}_{severity}" for name in corruptions for severity in severities]


def _builder(config: str, data_dir: str | os.PathLike | None):
    return import_tfds().builder(f"{NAME}/{config}", data_dir=data_dir)


def data_root(data_dir: str | os.PathLike | None) -> pathlib.Path:
    """The TFDS data directory that `data_dir` (None: TFDS's default) stands for."""
    if data_dir is not None:
        data_dir = pathlib.Path(data_dir).expanduser()
    return pathlib.Path(_builder(f"{BENCHMARK[0]}_1", data_dir).data_dir_root)


def missing_configs(configs: Sequence[str], data_dir: str | os.PathLike | None) -> list[str]:
    """The configs among `configs` that are not prepared in `data_dir`."""
    return [config for config in configs if not _builder(config, data_dir).is_prepared()]


def _download_address() -> tuple[str, object]:
    """TFDS's download address of the archive and its registered size and sha256."""
    ((url, info),) = import_tfds().builder_cls(NAME).url_infos.items()
    return url, info


def unprepared_message(missing: Sequence[str], data_dir: str | os.PathLike | None) -> str:
    """What to do when `missing` configs are not prepared and downloading is off.

    Args:
        missing: Config names not prepared.
        data_dir: The TFDS data directory asked for (None: TFDS's default).

    Returns:
        A one-paragraph message naming the directory, the missing configs and
        the `flatnas-tf prepare` command that provides them.
    """
    url, _ = _download_address()
    root = data_root(data_dir)
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    option = f" --data-dir {root}" if data_dir is not None else ""
    return (
        f"TFDS {NAME} is not prepared in {root} ({len(missing)} configs missing: {shown}). "
        f"Download CIFAR-10-C.tar (2.9 GB) from {url}, then run "
        f"`flatnas-tf prepare {NAME} --from CIFAR-10-C.tar{option}` (works offline), "
        "or allow downloading (download=True)."
    )


def check_archive(archive: str | os.PathLike, corruptions: Sequence[str]) -> pathlib.Path:
    """Checks that a file is CIFAR-10-C.tar as TFDS registers it, before TFDS reads it.

    Args:
        archive: Path of the archive downloaded by hand.
        corruptions: The TFDS corruption names whose files must be inside.

    Returns:
        The archive's absolute path.

    Raises:
        ValueError: When the file is missing, has another size than TFDS's
            registered one, is not a tar archive, or lacks a needed file; the
            message says which and what to do.
    """
    path = pathlib.Path(archive).expanduser().absolute()
    url, info = _download_address()
    if not path.is_file():
        raise ValueError(f"{path} is not a file: pass the CIFAR-10-C.tar downloaded from {url}.")
    size = path.stat().st_size
    if size != int(info.size):
        raise ValueError(
            f"{path} has {size:,} bytes; TFDS's {NAME} expects CIFAR-10-C.tar of "
            f"{int(info.size):,} bytes (an incomplete or different download?). "
            f"Download it again from {url}."
        )
    if not tarfile.is_tarfile(path):
        raise ValueError(f"{path} is not a tar archive: pass the CIFAR-10-C.tar from {url}.")
    with tarfile.open(path) as tar:
        members = set(tar.getnames())
    needed = [f"{_FOLDER}/{_FILES.get(name, name)}.npy" for name in corruptions]
    absent = [name for name in [f"{_FOLDER}/{_LABELS}", *needed] if name not in members]
    if absent:
        raise ValueError(
            f"{path} lacks {', '.join(absent)}: it is not the CIFAR-10-C archive from {url}."
        )
    return path


@contextlib.contextmanager
def _manual_dir(archive: pathlib.Path, filename: str, work: pathlib.Path) -> Iterator[str]:
    """A directory where TFDS finds the archive under the name it registers."""
    if archive.name == filename:
        yield str(archive.parent)
        return
    with tempfile.TemporaryDirectory(dir=work, prefix="manual-") as folder:
        os.symlink(archive, pathlib.Path(folder) / filename)
        yield folder


def prepare(
    archive: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    corruptions: str | Sequence[str] | None = "benchmark",
    severities: Sequence[int] = SEVERITIES,
    on_config: Callable[[str, bool], None] | None = None,
) -> list[str]:
    """Prepares TFDS `cifar10_corrupted` configs from CIFAR-10-C.tar, offline.

    Args:
        archive: The CIFAR-10-C.tar downloaded by hand (any name and place).
        data_dir: TFDS data directory to prepare into (None: TFDS's default,
            `$TFDS_DATA_DIR` or ~/tensorflow_datasets).
        corruptions: "benchmark" (default, the 15), "all" (19) or TFDS names.
        severities: Severities to prepare (default 1..5).
        on_config: Called as `on_config(config, prepared_now)` after each
            config (False: it was prepared already).

    Returns:
        The config names now prepared, in order.

    Raises:
        ValueError: For an archive that is not CIFAR-10-C.tar (see
            `check_archive`) or unknown corruptions or severities.
        DatasetUnavailableError: When TFDS fails to prepare a config (its
            message included); configs prepared before it are kept.

    Example:
    ```python
    from flatnas_tf.robustness import cifar10_corrupted

    cifar10_corrupted.prepare("~/Downloads/CIFAR-10-C.tar", data_dir="~/tensorflow_datasets")
    ```
    """
    names, _ = corruption_set(corruptions)
    bad = [s for s in severities if s not in SEVERITIES]
    if bad or not severities:
        raise ValueError(f"Severities must be among 1..5; received {list(severities)}.")
    path = check_archive(archive, names)
    tfds = import_tfds()
    root = data_root(data_dir)
    configs = config_names(names, severities)
    todo = set(missing_configs(configs, root))
    _, info = _download_address()
    work = root / "downloads"
    work.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=work, prefix=f"{NAME}-extracted-") as extract_dir,
        _manual_dir(path, info.filename, work) as manual_dir,
    ):
        download_config = tfds.download.DownloadConfig(
            manual_dir=manual_dir, extract_dir=extract_dir, try_download_gcs=False
        )
        for config in configs:
            if config in todo:
                try:
                    # TFDS prints two lines per config to stdout; on_config reports instead.
                    with contextlib.redirect_stdout(io.StringIO()):
                        builder = _builder(config, root)
                        builder.download_and_prepare(download_config=download_config)
                except Exception as error:  # TFDS raises many kinds; say which config failed
                    raise DatasetUnavailableError(
                        f"TFDS failed to prepare {NAME}/{config} from {path}: {error}"
                    ) from error
            if on_config is not None:
                on_config(config, config in todo)
    return configs
