"""Pieces the benchmark scripts share: the run record, the small CNN, its compilation, data.

Every benchmark ends with `report(name, figures, args)`, which prints one JSON
object (indent 2) made of the run's record and then its figures:

    benchmark   the benchmark's name
    date        when the record was made, UTC, ISO 8601 (seconds)
    git         {"commit": `git rev-parse HEAD` of this repository or "unknown",
                 "dirty": whether `git status --porcelain` lists tracked files
                 with changes, the benchmarks' own outputs (`OUTPUTS`) aside;
                 None when unknown}, read when this module was imported, i.e.
                 when the benchmark started: the code it ran
    machine     platform.machine(), the processor and CPU model (/proc/cpuinfo
                where there is one), os.cpu_count() and the CPUs this process may
                use, the Python version, and the versions of numpy, TensorFlow,
                Keras, KerasTuner, SciPy, Pillow, Optuna among the modules the
                script imported (with TensorFlow: "device" GPU or CPU, and the GPUs)
    settings    the script's parsed command line (its argparse arguments but
                `--out`), as a dict
    ...         the figures, at the top level as before

With `--out PATH` (`add_out_argument`; by convention `docs/benchmarks/<name>.json`)
the same text is also written to PATH, atomically: a temporary file in the same
directory, fsync, then `os.replace` (the parent directory is created if needed).

Importing this module does not import TensorFlow or Keras (`cli_startup.py`
measures the light paths of the command line); `small_cnn` and
`compile_classifier` import Keras when called.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import pathlib
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from flatnas_tf.defaults import DEPTHS

if TYPE_CHECKING:
    import keras

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

#: The keys `report` puts before the figures; a benchmark's figures may not use them.
RECORD_KEYS = ("benchmark", "date", "git", "machine", "settings")

#: Where benchmarks write their results (`--out`, reproduce.py's report): changes
#: there are not changes to the code measured, so they do not make a run dirty
#: (one committed run after another rewrites tracked files there).
OUTPUTS = ("docs/benchmarks", "docs/results")

#: Module name -> label of the versions recorded when the script imported the module.
_VERSIONED = {
    "numpy": "numpy",
    "tensorflow": "tensorflow",
    "keras": "keras",
    "keras_tuner": "keras_tuner",
    "scipy": "scipy",
    "PIL": "pillow",
    "optuna": "optuna",
}


# --------------------------------------------------------------- run record ---


def add_out_argument(parser: argparse.ArgumentParser, name: str | None = None) -> None:
    """Adds `--out PATH`: where `report` also writes the JSON it prints.

    Args:
        parser: The benchmark's argument parser.
        name: The benchmark's name, for the help text's conventional path.
    """
    where = f"docs/benchmarks/{name}.json" if name else "docs/benchmarks/<name>.json"
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=None,
        metavar="PATH",
        help=f"also write the printed JSON to PATH, atomically (committed runs: {where})",
    )


def shown_path(path: str | os.PathLike) -> str:
    """`path` as a record shows it: relative to the repository when inside it.

    A committed JSON then names the same file on any machine (a checkout's
    absolute path is only this machine's); a path outside stays absolute.
    """
    resolved = pathlib.Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(resolved)


def number_list(kind):
    """An argparse type: comma-separated values of `kind` ("0,1,2" -> [0, 1, 2])."""

    def parse(text: str) -> list:
        return [kind(v) for v in text.split(",") if v.strip()]

    return parse


#: The default space's choices of stage depth (`FlatNASHyperModel`'s `depths`).
DEFAULT_DEPTHS = DEPTHS


def add_depths_argument(parser: argparse.ArgumentParser) -> None:
    """`--depths`: the choices of stage depth of the benchmark's space (default: the default's).

    Shallower choices (`--depths 1`) make every candidate cheaper to build and
    trace: what a quick run of a benchmark (a test's) needs.
    """
    parser.add_argument(
        "--depths",
        type=number_list(int),
        default=list(DEFAULT_DEPTHS),
        help="Choices of stage depth, comma-separated (default: the default space's 2,3,4).",
    )


class Chunk:
    """The time budget of one chunk of a study that goes on in chunks (`--max-minutes`).

    A unit of work (a model, a search) starts only when it is expected to end
    within the budget: the time used so far plus the mean duration of the
    units this chunk has finished (before the first, the time used alone).
    A chunk then overruns its budget by about the spread of its units'
    durations, where a check of the time used alone let it overrun by a
    whole unit (a 50-minute chunk of 15-minute models ran 62 minutes).

    Example:
    ```python
    chunk = Chunk(55)
    for model in models:
        if not chunk.room_for_another():
            break
        with chunk.unit():
            train(model)
    ```
    """

    def __init__(self, minutes: float, clock=time.monotonic):
        self.budget_s = 60 * minutes
        self.clock = clock
        self.started = clock()
        self.durations: list[float] = []

    def room_for_another(self) -> bool:
        """Whether another unit, as long as the mean one so far, would end within the budget."""
        expected = sum(self.durations) / len(self.durations) if self.durations else 0.0
        return self.clock() - self.started + expected <= self.budget_s

    def for_other_units(self) -> Chunk:
        """The same budget and start, for units of another kind (their mean starts afresh)."""
        other = Chunk(self.budget_s / 60, self.clock)
        other.started = self.started
        return other

    def add(self, seconds: float) -> None:
        """Counts a finished unit of work timed elsewhere (e.g. by a Keras callback)."""
        self.durations.append(seconds)

    @contextlib.contextmanager
    def unit(self):
        """Times one unit of work (its duration counts only when it finishes)."""
        started = self.clock()
        yield
        self.add(self.clock() - started)


def utc_now() -> str:
    """The current time in UTC, ISO 8601 to the second (e.g. 2026-12-01T10:00:00+00:00)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def git_state(root: str | os.PathLike = ROOT) -> dict[str, Any]:
    """The commit checked out at `root` and whether tracked files differ from it.

    Args:
        root: A directory inside the repository (default: this one).

    Returns:
        {"commit": 40 (or 64) hex digits, "dirty": bool}, or {"commit":
        "unknown", "dirty": None} outside a git repository or without git.
        Untracked files, and changes under `OUTPUTS`, do not make a checkout dirty.
    """
    unknown = {"commit": "unknown", "dirty": None}
    base = ["git", "--no-optional-locks", "-C", str(root)]
    try:
        head = subprocess.run(
            [*base, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30
        )
        if head.returncode != 0:
            return unknown
        commit = head.stdout.strip()
        status = subprocess.run(
            [*base, "status", "--porcelain", "--untracked-files=no", "--", "."]
            + [f":(exclude){path}" for path in OUTPUTS],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return unknown
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        return unknown
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return {"commit": commit, "dirty": dirty}


#: This checkout's git state when the benchmark started (the code that runs).
GIT_AT_START = git_state()


def _cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo, or None where there is none."""
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    for key in ("model name", "Hardware", "Processor", "cpu model", "cpu"):
        for line in text.splitlines():
            label, _, value = line.partition(":")
            if label.strip() == key and value.strip():
                return value.strip()
    return None


def _usable_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def machine_info() -> dict[str, Any]:
    """The machine and software a benchmark ran on, without importing anything heavy.

    Library versions are those of the modules already imported (the script's
    own imports); TensorFlow's device list is read only when the script
    imported TensorFlow.
    """
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": _usable_cpus(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {
            label: str(getattr(sys.modules[module], "__version__", "unknown"))
            for module, label in _VERSIONED.items()
            if module in sys.modules
        },
    }
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        try:
            gpus = tf.config.list_physical_devices("GPU")
            names = []
            for gpu in gpus:
                details = tf.config.experimental.get_device_details(gpu)
                names.append(details.get("device_name", gpu.name))
        except Exception as error:  # a broken GPU set-up must not lose the figures
            gpus, names = [], [f"unknown ({type(error).__name__})"]
        info["device"] = "GPU" if gpus else "CPU"
        info["gpus"] = names
    return info


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a setting: paths as strings, sets sorted, others as text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        items = [_plain(v) for v in value]
        try:
            return sorted(items)
        except TypeError:  # mixed types
            return sorted(items, key=repr)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return _plain(value.item())
    return str(value)


def settings_of(
    args: argparse.Namespace | Mapping | None, exclude: tuple[str, ...] = ("out",)
) -> dict[str, Any]:
    """A script's parsed arguments as a JSON-safe dict, without `exclude` (`--out`)."""
    if args is None:
        return {}
    items = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    return {key: _plain(value) for key, value in items.items() if key not in exclude}


def run_record(
    name: str,
    settings: argparse.Namespace | Mapping | None = None,
    exclude: tuple[str, ...] = ("out",),
) -> dict[str, Any]:
    """The record `report` puts before the figures: name, date, git, machine, settings.

    Args:
        name: The benchmark's name.
        settings: Its parsed arguments (Namespace or dict), or None.
        exclude: Arguments left out of the settings (`report`'s own `--out`).
    """
    return {
        "benchmark": name,
        "date": utc_now(),
        "git": dict(GIT_AT_START),
        "machine": machine_info(),
        "settings": settings_of(settings, exclude),
    }


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to `path` so that a reader sees the old file or the new one, whole.

    A temporary file in the same directory is written, flushed and fsynced,
    then renamed over `path` (`os.replace`); the directory is fsynced after.
    The parent directory is created if it is missing.

    Args:
        path: The file to write.
        text: Its new content (UTF-8).
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(handle, 0o666 & ~umask)  # as an ordinary new file, not mkstemp's 0600
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # the rename itself, durable where supported
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def report(
    name: str,
    figures: Mapping[str, Any],
    settings: argparse.Namespace | Mapping | None = None,
    out: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Prints a benchmark's figures with its run record, and writes them to `out`.

    Args:
        name: The benchmark's name (its script's name without `.py`).
        figures: What it measured; none of its keys may be one of `RECORD_KEYS`.
        settings: Its parsed arguments (an `argparse.Namespace` or a dict);
            `out` is left out of the recorded settings.
        out: Where to write the same JSON as well; default `settings.out`
            when `settings` is a Namespace with one (`add_out_argument`).

    Returns:
        The printed object: the run record, then the figures.

    Raises:
        ValueError: if a figure's key is one of the record's keys.
    """
    clash = sorted(set(figures) & set(RECORD_KEYS))
    if clash:
        raise ValueError(f"figures may not use the run record's keys: {', '.join(clash)}")
    if out is None and isinstance(settings, argparse.Namespace):
        out = getattr(settings, "out", None)
    payload = {**run_record(name, settings), **figures}
    text = json.dumps(payload, indent=2)
    print(text, flush=True)
    if out is not None:
        write_atomic(out, text + "\n")  # byte for byte what was printed
    return payload


def safe_name(text: str) -> str:
    """`text` as a file name: every run of other characters than letters, digits, _ . - is one _."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def check_work_settings(work: pathlib.Path, settings: Mapping[str, Any]) -> None:
    """Keeps a resumable run's settings in `work`/settings.json; refuses other ones.

    The first call writes them (atomically); a later call with other settings
    exits with status 2 and a one-line error that names them, so a run never
    mixes figures measured under other settings into one report.

    Args:
        work: The run's directory (created if missing).
        settings: The settings that define its figures (JSON-safe).
    """
    settings = json.loads(json.dumps(settings))  # as saved
    path = pathlib.Path(work) / "settings.json"
    saved = json.loads(path.read_text()) if path.exists() else None
    if saved is None:
        write_atomic(path, json.dumps(settings, indent=1, sort_keys=True) + "\n")
    elif saved != settings:
        changed = sorted(k for k in {**saved, **settings} if saved.get(k) != settings.get(k))
        print(
            f"error: {work} holds records measured with other settings ({', '.join(changed)}); "
            "pass another --work or restore the settings.",
            file=sys.stderr,
        )
        raise SystemExit(2)


def append_json_line(path: str | os.PathLike, record: Mapping[str, Any], **dumps: Any) -> None:
    """Appends `record` to a JSON-lines file atomically (`write_atomic`).

    The file is rewritten whole, its earlier lines byte for byte, so that a
    crash at any moment leaves either the old lines or the old lines and the
    new one, never a torn line that would stop a resumed run from reading it.

    Args:
        path: The JSONL file (created with its directory if missing).
        record: The new line's object.
        **dumps: Passed on to `json.dumps` (e.g. `sort_keys=True`).
    """
    path = pathlib.Path(path)
    earlier = path.read_text() if path.exists() else ""
    if earlier and not earlier.endswith("\n"):
        earlier += "\n"
    write_atomic(path, earlier + json.dumps(record, **dumps) + "\n")


# ------------------------------------------------------------ shared models ---


def small_cnn(model_class: type | None = None, **kwargs) -> keras.Model:
    """A 32x32x3 CNN of four conv/BatchNorm/ReLU blocks and a dense head (67k params).

    Args:
        model_class: The model class to build (default `keras.Model`).
        **kwargs: Passed on to `model_class`.
    """
    import keras

    model_class = model_class or keras.Model
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
    import keras

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
