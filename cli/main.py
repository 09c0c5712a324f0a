"""The `flatnas-tf` command group: search, supernet, train, evaluate, export, report, prepare.

Commands parse and check options, lay out the output directory (`runs.py`),
print progress, and call the library; no algorithm lives here. Bad input ends
with a one-line `Error: ...` naming the option and exit code 2; nothing a
finished trial produced is deleted unless `--overwrite` is given.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import os
import pathlib
import re
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any

import click

from flatnas_tf import storage
from flatnas_tf._version import __version__
from flatnas_tf.cli import runs
from flatnas_tf.defaults import MAX_WIDTH, SCHEDULES, VALIDATION_FRACTION

# Python 3.11+ ships tomllib; 3.10 uses the tomli backport it was taken from.
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

OOD_CHOICES = ("none", "builtin", "cifar10_corrupted")
DEFAULT_EPOCHS = 8
#: Fine-tuning epochs of a candidate that inherits a supernet's weights.
DEFAULT_FINE_TUNE_EPOCHS = 2
DEFAULT_SUPERNET_EPOCHS = 30
#: The defaults of the training options (`runs.Training`, the one place they are set).
_TRAINING = runs.Training()


class FiniteFloatRange(click.FloatRange):
    """`click.FloatRange` that also refuses nan and inf (which pass every range check)."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class OODSource(click.Path):
    """--ood: one of `OOD_CHOICES`, or an existing directory: a corrupted set (read when used)."""

    def __init__(self) -> None:
        super().__init__(exists=True, file_okay=False)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(OOD_CHOICES) + "|DIR]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if value in OOD_CHOICES:
            return value
        return super().convert(value, param, ctx)


def _ood_source(choice: str, data, split: dict[str, Any]):
    """What `evaluate_ood` reads for --ood (not "none"): CIFAR-10-C, a corrupted set or `data`.

    A corrupted set written by `prepare corrupted` records its data set and
    split; one of another data set or split is refused, since its test images
    may be this model's training images.
    """
    if choice == "builtin":
        return data
    if choice == "cifar10_corrupted":
        return choice
    from flatnas_tf.corrupted_set import load_corrupted_set

    corrupted = load_corrupted_set(choice)  # CorruptedSetError: a one-line exit 2
    recorded = {key: corrupted.manifest["description"].get(key) for key in split}
    if None not in recorded.values() and recorded != split:
        written = ", ".join(f"{key} {value}" for key, value in recorded.items())
        asked = ", ".join(f"{key} {value}" for key, value in split.items())
        raise click.BadParameter(
            f"{choice} was written from {written}; this run uses {asked}: its test images may "
            "be training images here. Write a set for this data (`flatnas-tf prepare corrupted`).",
            param_hint="--ood",
        )
    return corrupted


def _split(spec: str, seed: int, validation_fraction: float) -> dict[str, Any]:
    """The data set and split a corrupted set must have been written from."""
    return {"data": spec, "seed": seed, "validation_fraction": validation_fraction}


#: (module, class) of the library's errors that are bad input, and of those that are
#: failures to report in one line; looked up only in modules already imported (an
#: error of a module never imported was not raised), so `report` stays TensorFlow-free.
_USAGE_ERRORS = (
    ("flatnas_tf.corrupted_set", "CorruptedSetError"),
    ("flatnas_tf.sandwich", "SupernetStateError"),
    ("flatnas_tf.tuners.records", "SearchFilesError"),
    ("flatnas_tf.tuners.access", "TokenError"),
)
_FAILURES = (
    ("flatnas_tf.data", "DatasetUnavailableError"),
    ("flatnas_tf.tuners.tuner", "SearchFailedError"),
)


def _loaded(errors: tuple[tuple[str, str], ...]) -> tuple[type, ...]:
    return tuple(getattr(sys.modules[m], name) for m, name in errors if m in sys.modules)


def _fail_cleanly(command: Callable) -> Callable:
    """Turns the library's errors into one-line Click errors.

    Exit code 2 for bad input (a busy --out included), 1 for a data set that
    cannot be had, a search whose trials all failed, or a full disk (the state
    written before it is intact: rerunning resumes).
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except Exception as error:
            usage = (runs.RunError, storage.DirectoryLockedError, *_loaded(_USAGE_ERRORS))
            if isinstance(error, usage):
                raise click.UsageError(str(error)) from None
            if _chief_call_failed(error, "UNAUTHENTICATED"):
                raise click.UsageError(error.details()) from None
            if _chief_call_failed(error, "DEADLINE_EXCEEDED"):
                address = ":".join(
                    os.environ.get(f"KERASTUNER_ORACLE_{k}", "?") for k in ("IP", "PORT")
                )
                raise click.ClickException(
                    f"the chief at {address} did not answer within --chief-timeout; its "
                    "search keeps every finished trial. Start this worker again once the chief "
                    "runs."
                ) from None
            if isinstance(error, _loaded(_FAILURES)):
                raise click.ClickException(str(error)) from None
            if isinstance(error, OSError) and storage.is_disk_full(error):
                raise click.ClickException(
                    f"the disk is full (writing {error.filename or 'a file'}); what was written "
                    "before is intact. Free some space and run the same command again to resume."
                ) from None
            raise

    return wrapper


def _chief_call_failed(error: Exception, status: str) -> bool:
    """Whether `error` is a worker's call to the chief that ended with gRPC `status`.

    UNAUTHENTICATED: the chief refused a call without the search's token;
    DEADLINE_EXCEEDED: no chief answered within --chief-timeout.
    """
    grpc = sys.modules.get("grpc")
    return (
        grpc is not None
        and isinstance(error, grpc.RpcError)
        and error.code() == getattr(grpc.StatusCode, status)
    )


def _quiet_tensorflow(command: Callable) -> Callable:
    """Imports TensorFlow before the command runs, holding back its C++ start-up lines.

    TensorFlow and XLA write about eight lines to file descriptor 2 from C++ when
    imported and when the runtime starts (the oneDNN notice, CPU features, "Could
    not find cuda drivers", and on every machine without a GPU "failed call to
    cuInit", which reads like an error and is not); `TF_CPP_MIN_LOG_LEVEL` does
    not reach those logged before absl is set up. They go to a temporary file
    and are shown with `--verbose`, or when the import fails. Later warnings
    (TensorFlow's own at level 2 and above) still show.
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        if "tensorflow" not in sys.modules:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            _held_back_stderr(_start_tensorflow, show=kwargs.get("verbose", False))
        return command(*args, **kwargs)

    return wrapper


def _start_tensorflow() -> None:
    import tensorflow as tf

    tf.config.list_physical_devices()  # starts the runtime: the CUDA probe logs here


def _held_back_stderr(function: Callable[[], None], show: bool) -> None:
    """Runs `function` with file descriptor 2 captured; replays it if asked or on failure."""
    sys.stderr.flush()
    saved = os.dup(2)
    failed = True
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            function()
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if show or failed:
                capture.seek(0)
                sys.stderr.write(capture.read().decode(errors="replace"))
                sys.stderr.flush()


def _read_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Loads a TOML config whose keys mirror the command's options (flags win)."""
    if value is None:
        return
    try:
        data = tomllib.loads(pathlib.Path(value).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise click.BadParameter(f"cannot read {value}: {error}", ctx, param) from None
    section = data.get(ctx.info_name, data)
    if not isinstance(section, dict):
        raise click.BadParameter(f"[{ctx.info_name}] in {value} must be a table.", ctx, param)
    allowed = {p.name for p in ctx.command.params if p.name not in ("config", "help")}
    values = {key.replace("-", "_"): v for key, v in section.items() if key != ctx.info_name}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise click.BadParameter(
            f"unknown keys {', '.join(unknown)} in {value}; allowed: {', '.join(sorted(allowed))}.",
            ctx,
            param,
        )
    ctx.default_map = {**(ctx.default_map or {}), **values}


def _widths(value: str | list) -> list[float]:
    try:
        widths = [float(v) for v in (value.split(",") if isinstance(value, str) else value)]
    except ValueError:
        widths = []
    if not widths or any(not 0 < w <= MAX_WIDTH for w in widths):
        raise click.BadParameter(
            f"{value!r}: pass comma-separated numbers in (0, {MAX_WIDTH:g}], e.g. 0.5,0.75,1.0.",
            param_hint="--widths",
        )
    return widths


def _load_data(spec: str, data_dir: str | None, validation_fraction: float, seed: int):
    from flatnas_tf.data import load_dataset

    try:
        return load_dataset(spec, data_dir, validation_fraction, seed=seed)
    except (ValueError, TypeError) as error:
        raise click.BadParameter(str(error), param_hint="--data") from None


def _check_frost_dir(path: str | None) -> None:
    """Reads the frost photographs now, so that a wrong directory fails before any work."""
    if path is None:
        return
    from flatnas_tf.frost import load_frost

    try:
        load_frost(path)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--frost-dir") from None


def _config_option(command: Callable) -> Callable:
    return click.option(
        "--config",
        type=click.Path(dir_okay=False),
        callback=_read_config,
        is_eager=True,
        expose_value=False,
        help="TOML file whose keys mirror these options (a table named after the command, "
        "or top-level keys); flags given on the command line override it.",
    )(command)


#: Options several commands share, declared once.
_BATCH_SIZE = click.option(
    "--batch-size", type=click.IntRange(min=1), default=64, help="Examples per training step."
)
_VERBOSE = click.option("--verbose", is_flag=True, help="Show Keras' progress bars.")
_DATA_DIR = click.option("--data-dir", default=None, help="TFDS data directory.")
_FROST_DIR = click.option(
    "--frost-dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Directory of the frost photographs (frost1.png ... frost5.jpg of Hendrycks' "
    "robustness code) for the built-in frost corruption; default $FLATNAS_FROST_DIR, "
    "else frost is skipped.",
)


def _seed_option(help: str, default: int | None = 0) -> Callable:  # noqa: A002 (Click's name)
    """--seed, an integer; what it seeds differs per command."""
    return click.option("--seed", type=int, default=default, help=help)


def _data_options(command: Callable) -> Callable:
    """--data, --data-dir and --validation-fraction: the data set and its split."""
    for option in reversed(
        (
            click.option(
                "--data",
                default="digits",
                help="Data set: digits (bundled, offline), npz:PATH, folder:PATH or a TFDS "
                "name such as cifar10.",
            ),
            _DATA_DIR,
            click.option(
                "--validation-fraction",
                type=FiniteFloatRange(0, 1, min_open=True, max_open=True),
                default=VALIDATION_FRACTION,
                help="Fraction of the training data held out for validation.",
            ),
        )
    ):
        command = option(command)
    return command


def _search_dir(path: str) -> runs.RunDirectory:
    run = runs.RunDirectory(pathlib.Path(path))
    run.settings()  # raises RunError for a foreign directory
    return run


def _find_trial(result, trial_id: str):
    try:
        return result.trial(trial_id)
    except KeyError as error:
        raise click.BadParameter(error.args[0], param_hint="--trial") from None


def _trial_model(result, trial):
    try:
        return result.load_model(trial)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--trial") from None


def _exported_model(target: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path, dict[str, Any]]:
    """The model file, its directory and the manifest's data settings of an evaluate TARGET.

    TARGET is an export directory (`models/trial_<id>`: its model.keras is
    used), its `saved_model/` or `model.keras`, or any SavedModel or .keras
    file. The manifest.json of an export names the data set and its split;
    without one the settings are empty. Results go to the export directory
    (the one holding manifest.json), else beside the model.
    """
    if (
        target.is_dir()
        and (target / "manifest.json").is_file()
        and (target / "model.keras").is_file()
    ):
        target = target / "model.keras"
    home = (
        target.parent if target.is_file() or (target.parent / "manifest.json").is_file() else target
    )
    manifest = _read_manifest(home)
    keys = ("data", "data_dir", "seed", "validation_fraction")
    return target, home, {k: manifest[k] for k in keys if manifest.get(k) is not None}


def _read_manifest(directory: pathlib.Path) -> dict[str, Any]:
    """The manifest.json of an export directory; empty when missing or unreadable."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):  # ValueError: bad UTF-8 or JSON
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _write_result(result, stem: pathlib.Path) -> list[pathlib.Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, text in (
        (".json", result.to_json()),
        (".csv", result.to_csv()),
        (".md", result.to_markdown()),
    ):
        path = stem.with_suffix(suffix)
        storage.write_text(path, text)
        paths.append(path)
    return paths


def _enable_determinism() -> None:
    """TensorFlow op determinism for the whole process (see README: its cost)."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()


def _distributed(role: str | None, host: str, port: int, worker_id: int) -> None:
    """Maps --role onto KerasTuner's environment variables."""
    if role is None:
        return
    os.environ["KERASTUNER_TUNER_ID"] = "chief" if role == "chief" else f"tuner{worker_id}"
    os.environ["KERASTUNER_ORACLE_IP"] = host
    os.environ["KERASTUNER_ORACLE_PORT"] = str(port)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, "--version", prog_name="flatnas-tf")
def main() -> None:
    """FlatNAS: search networks for accuracy, flatness and size.

    flatnas-tf trains candidate architectures with Sharpness-Aware
    Minimization, scores them by validation accuracy, by the robustness of
    that accuracy to weight perturbations and by parameter count, and keeps
    the Pareto front of the three.
    """


# -- search ---------------------------------------------------------------------


@main.command()
@_config_option
@_data_options
@click.option(
    "--out",
    default=None,
    help="Output directory (default runs/<data set>); see README for its layout.",
)
@click.option(
    "--mode",
    type=click.Choice(["flatnas", "pareto"]),
    default="flatnas",
    help="flatnas: alpha*err + alpha_norm*(1-alpha)*R and params; pareto: accuracy, "
    "R and params as three objectives.",
)
@click.option(
    "--alpha",
    type=FiniteFloatRange(0, 1),
    default=0.5,
    help="Error/flatness trade-off of --mode flatnas (1 = accuracy only).",
)
@click.option(
    "--max-trials",
    type=click.IntRange(min=1),
    default=10,
    help="Trials in all (over-budget and failed ones count).",
)
@click.option(
    "--widths",
    default="0.25,0.5",
    callback=lambda ctx, param, value: _widths(value),
    help="Width multipliers the search may choose, comma-separated (the paper's space: "
    "0.5,0.75,1.0; the default keeps the quick digits search to minutes).",
)
@click.option(
    "--population", type=click.IntRange(min=2), default=5, help="NSGA-II population size."
)
@click.option(
    "--surrogate",
    is_flag=True,
    help="Surrogate-assisted search: after --surrogate-initial trials, predict validation "
    "accuracy and R from the trained ones and train only the candidates an NSGA-II search on "
    "the predictions chooses (--surrogate-candidates per refit).",
)
@click.option(
    "--surrogate-initial",
    type=click.IntRange(min=4),
    default=None,
    help="With --surrogate: trials before the first prediction (default: one --population).",
)
@click.option(
    "--surrogate-candidates",
    type=click.IntRange(min=1),
    default=None,
    help="With --surrogate: candidates trained per refit (default: --population).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=0),
    default=None,
    help=f"Training epochs per trial, from random weights (default {DEFAULT_EPOCHS}), or "
    f"fine-tuning epochs with --supernet (default {DEFAULT_FINE_TUNE_EPOCHS}; 0: inherited "
    "weights only); then BatchNorm statistics are recalibrated and validation accuracy and "
    "R measured once.",
)
@click.option(
    "--supernet",
    "supernet_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A trained supernet (`flatnas-tf supernet --out DIR`, same --data, "
    "--validation-fraction and --seed): candidates inherit its weights and are fine-tuned "
    "for --epochs instead of trained from scratch; the width is the supernet's.",
)
@_BATCH_SIZE
@click.option(
    "--learning-rate",
    type=FiniteFloatRange(min=0, min_open=True),
    default=None,
    help=f"Peak SGD learning rate (momentum 0.9, weight decay 5e-4); default "
    f"{_TRAINING.learning_rate}, or {runs.Training.FINE_TUNE_LEARNING_RATE} with --supernet.",
)
@click.option(
    "--schedule",
    type=click.Choice(SCHEDULES),
    default=_TRAINING.schedule,
    help="Learning rate over a trial: linear warm-up then cosine decay to 0 (from-scratch "
    "trials), or constant (FlatNAS's fine-tuning regime).",
)
@click.option(
    "--warmup",
    type=FiniteFloatRange(0, 1, max_open=True),
    default=_TRAINING.warmup,
    help="Fraction of a trial's steps spent warming the learning rate up (cosine).",
)
@click.option(
    "--sam",
    type=click.Choice(runs.SAM_CHOICES),
    default=_TRAINING.sam,
    help="Training: adaptive SAM, SAM, or off (plain SGD: the accuracy-only baseline, same "
    "schedule and measurement).",
)
@click.option(
    "--rho",
    type=FiniteFloatRange(min=0),
    default=_TRAINING.rho,
    help="SAM/ASAM radius. ASAM 0.5 suits training from scratch (ASAM's CIFAR value); "
    "FlatNAS fine-tunes pretrained weights with 2.0. SAM: ~0.05.",
)
@click.option(
    "--sigma",
    type=FiniteFloatRange(min=0),
    default=0.05,
    help="Weight-noise scale of the flatness measure R.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=10,
    help="Weight perturbations per R measurement.",
)
@click.option(
    "--max-params",
    type=FiniteFloatRange(min=0, min_open=True),
    default=5e6,
    help="Parameter limit: larger candidates are recorded, never trained.",
)
@_seed_option("Seed of the split and the search.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Delete a previous search in --out and start afresh (default: resume it).",
)
@click.option(
    "--ood",
    type=OODSource(),
    default="none",
    help="After the search, evaluate the front under corruptions: built-in ones of --data, "
    "TFDS CIFAR-10-C, or a corrupted set's directory (`flatnas-tf prepare corrupted`).",
)
@click.option(
    "--ood-examples",
    type=click.IntRange(min=1),
    default=500,
    help="Test images per corruption and severity in --ood.",
)
@_FROST_DIR
@click.option(
    "--export/--no-export",
    default=True,
    help="Export the front's models (SavedModel, .keras) to OUT/models/.",
)
@click.option(
    "--role",
    type=click.Choice(["chief", "worker"]),
    default=None,
    help="Distributed search: the chief serves the oracle, workers run trials; all share --out.",
)
@click.option(
    "--oracle-host",
    default="127.0.0.1",
    help="Chief's address (with --role); the chief listens on it. Calls need the search's "
    "token but travel unencrypted: use a loopback or private address on a trusted network.",
)
@click.option(
    "--oracle-port", type=click.IntRange(1, 65535), default=8000, help="Chief's port (with --role)."
)
@click.option(
    "--worker-timeout",
    type=FiniteFloatRange(min=0, min_open=True),
    default=1800,
    help="With --role chief: seconds a worker may go without a heartbeat (it sends one per "
    "epoch and every few seconds of training) before its trial is handed to another worker. "
    "Make it longer than a trial's measurement.",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="With --role: a file holding the token every call to the chief presents (default: "
    "$FLATNAS_TF_TOKEN, else the token file the chief writes in OUT/search/).",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="With --role chief: serve over TLS with this certificate (PEM; its names must include "
    "--oracle-host), with --tls-key.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="With --role chief: the private key of --tls-cert (PEM).",
)
@click.option(
    "--tls-ca",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="With --role worker: connect over TLS, trusting this CA (or the chief's self-signed "
    "certificate; PEM).",
)
@click.option(
    "--chief-timeout",
    type=FiniteFloatRange(min=0, min_open=True),
    default=600,
    help="With --role worker: seconds a call waits for a chief that is not there (restarted "
    "after a preemption, say) before the worker gives up; it trains on meanwhile.",
)
@click.option(
    "--worker-id",
    type=click.IntRange(min=0),
    default=0,
    help="This worker's number (with --role worker).",
)
@click.option(
    "--tensorboard",
    "tensorboard_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="TensorBoard log directory: each trial's training curves, and HParams with every "
    'figure as a metric. Needs `pip install "flatnas-tf[tensorboard]"`.',
)
@click.option(
    "--deterministic",
    is_flag=True,
    help="TensorFlow op determinism: one seed gives one result on one machine.",
)
@_VERBOSE
@_fail_cleanly
@_quiet_tensorflow
def search(**options: Any) -> None:
    """Search architectures: the Pareto front of accuracy, flatness and size.

    With no options: a small real search on the bundled digits data set that
    runs offline in minutes on a laptop CPU.
    """
    out = options["out"] or os.path.join("runs", re.sub(r"[^A-Za-z0-9_.-]+", "_", options["data"]))
    _distributed(
        options["role"], options["oracle_host"], options["oracle_port"], options["worker_id"]
    )
    if options["deterministic"]:
        _enable_determinism()
    if options["ood"] == "builtin":
        _check_frost_dir(options["frost_dir"])
    elif options["ood"] not in OOD_CHOICES:
        split = _split(options["data"], options["seed"], options["validation_fraction"])
        _ood_source(options["ood"], None, split)  # a wrong or unfinished set fails at once
    if options["tensorboard_dir"] and find_spec("tensorboard") is None:
        raise click.BadParameter(
            'needs the tensorboard package: pip install "flatnas-tf[tensorboard]".',
            param_hint="--tensorboard",
        )
    data = _load_data(
        options["data"], options["data_dir"], options["validation_fraction"], options["seed"]
    )
    supernet_state = _supernet_for_search(options)
    training = runs.Training(**{name: options[name] for name in runs.Training.names()})
    settings = {key: options[key] for key in runs.DEFINING if key in options}
    settings.update(
        **training.to_settings(),
        surrogate=_surrogate_settings(options),
        data_dir=options["data_dir"],
        max_trials=options["max_trials"],
        input_shape=list(data.input_shape),
        num_classes=data.num_classes,
        label_names=list(data.label_names),
        flatnas_tf_version=__version__,
    )
    if supernet_state is not None:
        settings["supernet"] = {
            "path": str(pathlib.Path(options["supernet_dir"]).resolve()),
            "weights": supernet_state["weights"],
        }
    run = runs.RunDirectory(pathlib.Path(out))
    if options["role"] == "worker":
        run.settings()  # the chief lays the directory out and holds its lock; workers join it
        _search_in(run, settings, training, data, options, supernet_state)
        return
    with run.lock():
        _search_in(run, settings, training, data, options, supernet_state)


def _search_in(
    run: runs.RunDirectory,
    settings: dict[str, Any],
    training: runs.Training,
    data,
    options: dict[str, Any],
    supernet_state: dict[str, Any] | None,
) -> None:
    """The search itself, once the options are checked (under the directory's lock)."""
    started = time.monotonic()
    if options["role"] != "worker":
        resumed = run.prepare(settings, overwrite=options["overwrite"])
        ended = _ended_trials(run) if resumed else 0
        through = ""
        if supernet_state is not None:
            through = (
                f" through the supernet in {options['supernet_dir']} "
                f"({supernet_state['epochs_done']} epochs, width {supernet_state['width']:g})"
            )
        if ended >= options["max_trials"]:
            click.echo(
                f"The search in {run.root} is finished ({ended} of {options['max_trials']} "
                "trials ran): nothing to train; its report is rebuilt. A larger --max-trials "
                "extends it."
            )
        else:
            click.echo(("Resuming" if resumed else "Starting") + f" search in {run.root}{through}")

    from flatnas_tf.cli import models

    if supernet_state is None:
        from flatnas_tf.tuners import FlatNASTuner

        first = (FlatNASTuner, models.hypermodel(settings, training))
    else:
        from flatnas_tf.sandwich import load_supernet
        from flatnas_tf.tuners import SupernetTuner

        space = models.hypermodel(settings, training)
        supernet, _ = load_supernet(options["supernet_dir"], space)
        first = (SupernetTuner, supernet)
    with _without_reload_line():  # the line above said whether the search resumes
        tuner = first[0](
            first[1],
            regime=training.regime(),
            mode=options["mode"],
            alpha=options["alpha"],
            max_params=options["max_params"],
            population_size=options["population"],
            max_trials=options["max_trials"],
            seed=options["seed"],
            sigma=options["sigma"],
            samples=options["samples"],
            trial_lease_s=options["worker_timeout"] if options["role"] == "chief" else None,
            surrogate=_surrogate(settings),
            token_file=options["token_file"],
            chief_timeout_s=options["chief_timeout"],
            tls=_tls(options),
            directory=str(run.root),
            project_name=runs.PROJECT,
            overwrite=False,
        )
    tuner.oracle.max_trials = options["max_trials"]  # a resumed search may be extended
    train = data.batches("train", options["batch_size"], training=True, seed=options["seed"])
    validation = data.batches("validation", options["batch_size"])
    callbacks = []
    if options["tensorboard_dir"]:
        import keras

        callbacks.append(keras.callbacks.TensorBoard(options["tensorboard_dir"]))
    try:
        tuner.search(
            train,
            validation_data=validation,
            epochs=options["epochs"],
            verbose=2 if options["verbose"] else 1,  # a line per trial start and end; bars
            shuffle=False,  # the pipeline shuffles; Keras would warn at every trial
            callbacks=callbacks,
        )
    except KeyboardInterrupt:
        tuner.save()
        click.echo(
            f"\nInterrupted: finished trials are saved in {run.project_dir}. Run the "
            "same command again to resume.",
            err=True,
        )
        sys.exit(130)
    if options["role"] is not None and os.environ["KERASTUNER_TUNER_ID"] != "chief":
        click.echo("Worker finished: the chief holds the results.")
        return
    _finish(run, settings, data, options, tuner, started)


def _tls(options: dict[str, Any]):
    """--tls-cert/--tls-key (chief) and --tls-ca (worker) as the tuner's TLS files, or None."""
    if not (options["tls_cert"] or options["tls_key"] or options["tls_ca"]):
        return None
    from flatnas_tf.tuners.access import TLS

    return TLS(options["tls_cert"], options["tls_key"], trusted=options["tls_ca"])


def _surrogate_settings(options: dict[str, Any]) -> dict[str, int] | None:
    """run.json's record of --surrogate (None without it)."""
    if not options["surrogate"]:
        for name in ("surrogate_initial", "surrogate_candidates"):
            if options[name] is not None:
                flag = "--" + name.replace("_", "-")
                raise click.BadParameter("needs --surrogate.", param_hint=flag)
        return None
    return {
        "initial_trials": options["surrogate_initial"] or options["population"],
        "candidates": options["surrogate_candidates"] or options["population"],
    }


def _surrogate(settings: dict[str, Any]):
    """The tuner's SurrogateSettings of a run's settings (None for plain NSGA-II)."""
    if not settings.get("surrogate"):
        return None
    from flatnas_tf.tuners import SurrogateSettings

    return SurrogateSettings(**settings["surrogate"])


@contextlib.contextmanager
def _without_reload_line():
    """Drops KerasTuner's "Reloading Tuner from ..." line; other output passes (e.g. recoveries)."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if not line.startswith("Reloading Tuner from "):
                click.echo(line)


def _ended_trials(run: runs.RunDirectory) -> int:
    """How many trials of the search in `run` have ended (completed or failed).

    Read from the trial files as the oracle's reload reads them, so a search
    that a crash left damaged (oracle.json missing or half written, a trial
    file lost) is counted, not refused: the tuner repairs it next. A lost
    trial file counts as ended, as the oracle keeps its trial as FAILED.
    """
    from flatnas_tf.tuners import records
    from flatnas_tf.tuners.result import TrialRecord

    if not run.project_dir.is_dir():
        return 0
    files = records.read_project(run.project_dir, TrialRecord.from_state)
    ended = sum(t.status in records.ENDED for t in files.trials.values())
    return ended + len(files.lost)


def _already_exported(target: pathlib.Path, trial_id: str) -> bool:
    """Whether `target` holds a finished export of trial `trial_id` (its manifest is last)."""
    return _read_manifest(target).get("trial_id") == trial_id


def _supernet_for_search(options: dict[str, Any]) -> dict[str, Any] | None:
    """Checks --supernet against the search's options; resolves --epochs and --widths.

    Returns:
        The supernet's state, or None for a from-scratch search.
    """
    ctx = click.get_current_context()
    if options["supernet_dir"] is None:
        if options["epochs"] == 0:
            raise click.BadParameter(
                "0 epochs trains nothing: from scratch a trial needs at least 1 (0 is for "
                "--supernet, whose candidates inherit trained weights).",
                param_hint="--epochs",
            )
        options["epochs"] = options["epochs"] or DEFAULT_EPOCHS
        options["learning_rate"] = options["learning_rate"] or _TRAINING.learning_rate
        return None
    from flatnas_tf.sandwich import read_supernet_state

    state = read_supernet_state(options["supernet_dir"])
    split = {key: options[key] for key in ("data", "validation_fraction", "seed")}
    trained_on = state.get("data") or {}
    if {key: trained_on.get(key) for key in split} != split:
        raise click.UsageError(
            f"the supernet in {options['supernet_dir']} was trained on "
            f"{trained_on or 'unknown data'}; this search uses {split}. Its training images "
            "could be in this search's validation split: pass the same --data, "
            "--validation-fraction and --seed, or train a supernet for these "
            "(`flatnas-tf supernet`)."
        )
    width = float(state["width"])
    source = ctx.get_parameter_source("widths")
    if source not in (None, click.core.ParameterSource.DEFAULT) and options["widths"] != [width]:
        raise click.BadParameter(
            f"the supernet has width {width:g}: leave --widths out, or pass {width:g}.",
            param_hint="--widths",
        )
    options["widths"] = [width]
    if options["epochs"] is None:
        options["epochs"] = DEFAULT_FINE_TUNE_EPOCHS
    options["learning_rate"] = options["learning_rate"] or runs.Training.FINE_TUNE_LEARNING_RATE
    return state


def _finish(
    run: runs.RunDirectory, settings: dict, data, options: dict, tuner, started: float
) -> None:
    from flatnas_tf.cli import models
    from flatnas_tf.tuners import report
    from flatnas_tf.tuners.progress import clock

    result = models.search_result(run, settings)
    written = report.write_report(result, run.report_dir, ood=run.ood_results())
    front = result.front()
    click.echo(f"\nPareto front ({len(front)} of {len(result.trials)} trials):")
    click.echo(tuner.results_table([tuner.oracle.trials[t.trial_id] for t in front]))
    if not front:
        click.echo(
            "No trial is on the front: report.md says why each was excluded (networks not "
            "clearly above chance usually need more --epochs)."
        )
    metadata = models.export_metadata(settings)
    kept = []  # front members exported by an earlier run of this search
    for trial in front:
        model = None
        if options["ood"] != "none":
            from flatnas_tf.ood import evaluate_ood

            click.echo(f"Evaluating trial {trial.trial_id} under corruptions ...")
            model = result.load_model(trial)
            ood = evaluate_ood(
                model,
                _ood_source(
                    options["ood"],
                    data,
                    _split(options["data"], options["seed"], options["validation_fraction"]),
                ),
                max_examples=options["ood_examples"],
                clean=data,
                data_dir=options["data_dir"],
                frost_dir=options["frost_dir"],
            )
            _write_result(ood, run.ood_dir / f"trial_{trial.trial_id}")
            click.echo(
                f"OOD trial {trial.trial_id}: mean corruption accuracy "
                f"{100 * ood.mean_corruption_accuracy:.1f}%, mCE {ood.mce:.1f}"
            )
        if options["export"]:
            target = run.model_dir(trial.trial_id)
            if _already_exported(target, trial.trial_id):
                kept.append(trial.trial_id)
                continue
            click.echo(f"Exporting trial {trial.trial_id} to {target} ...")
            for note in result.export(trial, target, metadata=metadata, model=model):
                click.echo(note)
    if options["ood"] != "none" and front:  # again, now with the front's OOD section
        written = report.write_report(result, run.report_dir, ood=run.ood_results())
    if kept:
        click.echo(
            f"Kept the exports of trial{'s' if len(kept) > 1 else ''} {', '.join(kept)} from an "
            f"earlier run (`flatnas-tf export {run.root}` writes them again)."
        )
    click.echo(f"Report: {written['report.md']}")
    if options["export"] and front:
        click.echo(f"Models: {run.root / 'models'}")
    if options["ood"] != "none" and front:
        click.echo(f"OOD: {run.ood_dir}")
    exported = ""
    if options["export"] and front:
        exported = f", {len(front) - len(kept)} exported" + (f", {len(kept)} kept" if kept else "")
    click.echo(
        f"Done in {clock(time.monotonic() - started)}: {len(result.trials)} trials, "
        f"{len(front)} on the Pareto front{exported}."
    )


# -- supernet -------------------------------------------------------------------


def _epoch_line_callback(epochs: int):
    import keras

    class EpochLine(keras.callbacks.Callback):
        """One line per finished supernet epoch (the state is already saved)."""

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            click.echo(
                f"epoch {epoch + 1:>3}/{epochs}  largest: loss {logs.get('loss', float('nan')):.3f}"
                f", accuracy {100 * logs.get('accuracy', float('nan')):5.1f}%  smallest: loss "
                f"{logs.get('smallest_loss', float('nan')):.3f}"
            )

    return EpochLine()


@main.command()
@_config_option
@_data_options
@click.option(
    "--out",
    default=None,
    help="Run directory (default runs/<data set>-supernet); an unfinished run there resumes.",
)
@click.option(
    "--width",
    type=FiniteFloatRange(0, 4, min_open=True),
    default=0.25,
    help="Width multiplier of the supernet (every candidate searched through it has it).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=DEFAULT_SUPERNET_EPOCHS)
@_BATCH_SIZE
@click.option(
    "--learning-rate",
    type=FiniteFloatRange(min=0, min_open=True),
    default=0.1,
    help="Peak SGD learning rate (warm-up 5 %, cosine decay; momentum 0.9, weight decay 5e-4).",
)
@click.option(
    "--random-subnets",
    type=click.IntRange(min=0),
    default=2,
    help="Random sub-networks per step, besides the largest and the smallest (sandwich rule).",
)
@click.option(
    "--distillation",
    type=FiniteFloatRange(0, 1),
    default=0.0,
    help="Weight of in-place distillation from the largest sub-network (0: labels only).",
)
@_seed_option("Seed of the data split (pass the search's) and of the training.")
@_VERBOSE
@_fail_cleanly
@_quiet_tensorflow
def supernet(**options: Any) -> None:
    """Train (or resume) a weight-sharing supernet of the search space.

    Trains the space at one width as a Once-For-All supernet with the
    sandwich rule, on the training split only, writing its state after every
    epoch. Then `flatnas-tf search --supernet OUT` evaluates candidates
    through it in seconds.
    """
    import keras

    from flatnas_tf import FlatNASHyperModel
    from flatnas_tf.sandwich import SupernetSettings, train_supernet
    from flatnas_tf.supernet import Supernet
    from flatnas_tf.tuners.progress import clock

    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", options["data"])
    out = pathlib.Path(options["out"] or os.path.join("runs", f"{name}-supernet"))
    data = _load_data(
        options["data"], options["data_dir"], options["validation_fraction"], options["seed"]
    )
    settings = SupernetSettings(
        epochs=options["epochs"],
        learning_rate=options["learning_rate"],
        random_subnets=options["random_subnets"],
        distillation=options["distillation"],
        seed=options["seed"],
    )
    keras.utils.set_random_seed(options["seed"])
    space = FlatNASHyperModel(
        data.input_shape, data.num_classes, width_multipliers=(options["width"],)
    )
    network = Supernet(space, width=options["width"])
    click.echo(
        f"Training a supernet of {network.count_params():,} parameters (width "
        f"{options['width']:g}) in {out} for {options['epochs']} epochs"
    )
    description = {key: options[key] for key in ("data", "validation_fraction", "seed")}
    try:
        state = train_supernet(
            network,
            data.batches("train", options["batch_size"], training=True, seed=options["seed"]),
            settings,
            out,
            verbose=1 if options["verbose"] else 0,
            callbacks=[_epoch_line_callback(options["epochs"])],
            data_description=description,
        )
    except KeyboardInterrupt:
        click.echo(
            f"\nInterrupted: finished epochs are saved in {out}. Run the same command again "
            "to resume.",
            err=True,
        )
        sys.exit(130)
    seconds = sum(entry["seconds"] for entry in state["history"])
    click.echo(
        f"Supernet: {out} ({state['epochs_done']} epochs, {clock(seconds)} of training). "
        f"Search through it: flatnas-tf search --supernet {out}"
        + ("" if options["data"] == "digits" else f" --data {options['data']}")
    )


# -- report ---------------------------------------------------------------------


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--alpha",
    type=FiniteFloatRange(0, 1),
    default=None,
    help="Re-rank under another alpha (mode flatnas) without retraining.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for the report. Default DIRECTORY/report, or with another --alpha "
    "DIRECTORY/report/alpha-<A> (the search's own report stays as it is).",
)
@_fail_cleanly
def report(directory: str, alpha: float | None, out: str | None) -> None:
    """Rebuild the report of a search directory (also while it runs), and print its front."""
    from flatnas_tf.tuners.report import write_report
    from flatnas_tf.tuners.result import SearchResult

    run = _search_dir(directory)
    result = SearchResult.load(run.project_dir)
    reranked = alpha is not None and alpha != result.alpha
    if out is not None:
        target = pathlib.Path(out)
    else:
        target = run.report_dir / f"alpha-{alpha:g}" if reranked else run.report_dir
    written = write_report(result, target, alpha=alpha, ood=run.ood_results())
    for name, path in written.items():
        click.echo(f"{name}: {path}")
    ranking = result.rank(alpha)
    front = ranking.front()
    under = f", re-ranked with alpha {alpha:g}" if reranked else ""
    click.echo(f"\nPareto front: {len(front)} of {len(result.completed)} completed trials{under}")
    for trial in front:
        figures = trial.figures
        click.echo(
            f"  trial {trial.trial_id}  val_acc {100 * figures['val_accuracy']:5.1f}%  "
            f"R {figures['robustness']:5.2f}  params {int(figures['params']):>10,}"
        )


# -- export ---------------------------------------------------------------------


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--trial",
    "trial_ids",
    multiple=True,
    help="Trial id to export (repeatable); default: the Pareto front.",
)
@click.option("--tflite", is_flag=True, help="Also convert to TFLite, when it converts cleanly.")
@_fail_cleanly
@_quiet_tensorflow
def export(directory: str, trial_ids: tuple[str, ...], tflite: bool) -> None:
    """Export models of a search: SavedModel, .keras and manifest.json."""
    from flatnas_tf.cli import models

    run = _search_dir(directory)
    settings = run.settings()
    result = models.search_result(run, settings)
    trials = [_find_trial(result, t) for t in trial_ids] or result.front()
    if not trials:
        raise click.UsageError(f"{directory} has no finished trial on a Pareto front yet.")
    metadata = models.export_metadata(settings)
    for trial in trials:
        model = _trial_model(result, trial)
        target = run.model_dir(trial.trial_id)
        for note in result.export(trial, target, tflite, metadata, model):
            click.echo(note)
        click.echo(f"trial {trial.trial_id}: {target}")


# -- train ----------------------------------------------------------------------


@main.command()
@click.option(
    "--search",
    "search_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A search directory to take the architecture from.",
)
@click.option("--trial", "trial_id", default=None, help="Trial id in --search.")
@click.option(
    "--hyperparameters",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="JSON file of hyperparameter values (instead of --search/--trial).",
)
@click.option(
    "--data",
    default=None,
    help="Data set (default: the search's; required with --hyperparameters).",
)
@_DATA_DIR
@click.option("--epochs", type=click.IntRange(min=1), default=10)
@_BATCH_SIZE
@click.option(
    "--learning-rate",
    type=FiniteFloatRange(min=0, min_open=True),
    default=None,
    help=f"Default: the search's, else {_TRAINING.learning_rate}.",
)
@click.option(
    "--sam",
    type=click.Choice(runs.SAM_CHOICES),
    default=None,
    help=f"Default: the search's, else {_TRAINING.sam}.",
)
@click.option(
    "--rho",
    type=FiniteFloatRange(min=0),
    default=None,
    help=f"Default: the search's, else {_TRAINING.rho}.",
)
@click.option(
    "--schedule",
    type=click.Choice(SCHEDULES),
    default=None,
    help=f"Learning rate schedule. Default: the search's, else {_TRAINING.schedule}.",
)
@click.option(
    "--warmup",
    type=FiniteFloatRange(0, 1, max_open=True),
    default=None,
    help=f"Warm-up fraction of the steps. Default: the search's, else {_TRAINING.warmup}.",
)
@_seed_option("Seed of the data split and of the training.")
@click.option("--out", required=True, help="Directory for model.keras and manifest.json.")
@click.option(
    "--deterministic",
    is_flag=True,
    help="TensorFlow op determinism: one seed gives one result on one machine.",
)
@_VERBOSE
@_fail_cleanly
@_quiet_tensorflow
def train(**options: Any) -> None:
    """Train one architecture as a search's trial does (longer if asked) and save it.

    After training, BatchNorm statistics are recalibrated on training images;
    validation and test accuracy are then measured in inference mode.
    """
    import keras
    import keras_tuner

    from flatnas_tf.cli import models

    if options["deterministic"]:
        _enable_determinism()
    settings: dict[str, Any] = {}
    if options["search_dir"]:
        if not options["trial_id"]:
            raise click.UsageError("--search needs --trial ID (see the search's report).")
        run = _search_dir(options["search_dir"])
        settings.update(run.settings())
        from flatnas_tf.tuners.result import SearchResult

        values = dict(_find_trial(SearchResult.load(run.project_dir), options["trial_id"]).values)
    elif options["hyperparameters"]:
        try:
            values = json.loads(pathlib.Path(options["hyperparameters"]).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise click.BadParameter(str(error), param_hint="--hyperparameters") from None
        if not isinstance(values, dict):
            raise click.BadParameter(
                "must hold a JSON object of name: value.", param_hint="--hyperparameters"
            )
        if not options["data"]:
            raise click.UsageError("--hyperparameters needs --data.")
    else:
        raise click.UsageError(
            "pass --search DIR --trial ID, or --hyperparameters FILE --data SPEC."
        )
    training = runs.Training.from_settings(settings).override(
        **{name: options[name] for name in runs.Training.names()}
    )
    data = _load_data(
        options["data"] or settings["data"],
        options["data_dir"] or settings.get("data_dir"),
        settings.get("validation_fraction", VALIDATION_FRACTION),
        options["seed"],
    )
    settings.update(
        input_shape=list(data.input_shape),
        num_classes=data.num_classes,
        label_names=list(data.label_names),
        data=options["data"] or settings["data"],
    )
    keras.utils.set_random_seed(options["seed"])
    space = models.hypermodel(settings, training)
    hp = keras_tuner.HyperParameters()
    space.declare_hyperparameters(hp)
    unknown = sorted(set(values) - {p.name for p in hp.space})
    if unknown:
        raise click.BadParameter(
            f"unknown hyperparameters {unknown} for this search space.",
            param_hint="--hyperparameters",
        )
    hp.values.update(values)
    model = space.build(hp)
    training.regime().fit(
        model,
        data.batches("train", options["batch_size"], training=True, seed=options["seed"]),
        epochs=options["epochs"],
        verbose=1 if options["verbose"] else 2,
    )
    _, val_accuracy = model.evaluate(data.batches("validation", options["batch_size"]), verbose=0)
    _, accuracy = model.evaluate(data.batches("test", options["batch_size"]), verbose=0)
    out = pathlib.Path(options["out"])
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    manifest = {
        "hyperparameters": hp.values,
        "val_accuracy": val_accuracy,
        "test_accuracy": accuracy,
        "epochs": options["epochs"],
        "input_shape": list(data.input_shape),
        "label_names": list(data.label_names),
        "data": settings["data"],
        # The split its data was loaded with: `evaluate` of this directory reuses it.
        "data_dir": options["data_dir"] or settings.get("data_dir"),
        "seed": options["seed"],
        "validation_fraction": settings.get("validation_fraction", VALIDATION_FRACTION),
        "training": training.to_settings(),
        "flatnas_tf_version": __version__,
    }
    storage.write_json(out / "manifest.json", manifest)
    click.echo(
        f"validation accuracy {100 * val_accuracy:.2f}%, test accuracy {100 * accuracy:.2f}%; "
        f"saved {out / 'model.keras'}"
    )


# -- evaluate -------------------------------------------------------------------


@main.command()
@click.argument("target", type=click.Path(exists=True))
@click.option(
    "--trial",
    "trial_id",
    default=None,
    help="With a search directory as TARGET: the trial to evaluate.",
)
@click.option(
    "--data",
    default=None,
    help="Data set for ID accuracy and built-in corruptions (default: the search's).",
)
@_DATA_DIR
@click.option(
    "--ood",
    type=OODSource(),
    default="builtin",
    help="Corruption benchmark: built-in corruptions of --data, TFDS CIFAR-10-C, a corrupted "
    "set's directory (`flatnas-tf prepare corrupted`: read, not computed), or none.",
)
@_FROST_DIR
@click.option(
    "--max-examples",
    type=click.IntRange(min=1),
    default=None,
    help="Test images per cell (default: all).",
)
@_seed_option(
    "Seed of the data split (default: the search's, else 0): use the one the model was "
    "trained with, or its test images may include training images.",
    default=None,
)
@click.option(
    "--out", default=None, help="Directory for evaluation.json/.csv/.md (default: next to TARGET)."
)
@_fail_cleanly
@_quiet_tensorflow
def evaluate(**options: Any) -> None:
    """ID accuracy and the OOD table (mCE) of a SavedModel, a .keras file or a trial.

    TARGET is a SavedModel directory, a .keras file, or a search directory with --trial.
    A .keras file is loaded in Keras' safe mode (no code in it runs); a SavedModel is a
    TensorFlow program that runs its own ops: evaluate only SavedModels you trust.
    """
    import numpy as np

    from flatnas_tf.cli import models
    from flatnas_tf.export import load_model
    from flatnas_tf.ood import evaluate_ood

    target = pathlib.Path(options["target"])
    if options["ood"] == "builtin":
        _check_frost_dir(options["frost_dir"])
    settings: dict[str, Any] = {}
    from_search = (target / runs.RUN_FILE).is_file()
    if from_search:
        if not options["trial_id"]:
            raise click.UsageError("TARGET is a search directory: pass --trial ID.")
        run = _search_dir(str(target))
        settings = run.settings()
        result = models.search_result(run, settings)
        trial = _find_trial(result, options["trial_id"])
        model = _trial_model(result, trial)
        out = pathlib.Path(options["out"] or run.root / "evaluate" / f"trial_{trial.trial_id}")
    else:
        target, manifest_dir, settings = _exported_model(target)
        out = pathlib.Path(options["out"] or manifest_dir)
    spec = options["data"] or settings.get("data")
    if spec is None:
        raise click.UsageError(
            "pass --data: the data set to evaluate on (no manifest.json beside TARGET says it)."
        )
    seed = options["seed"] if options["seed"] is not None else settings.get("seed", 0)
    if not from_search and options["data"] is None:
        click.echo(f"Data set from {manifest_dir / 'manifest.json'}: {spec}, split seed {seed}")
    validation_fraction = settings.get("validation_fraction", VALIDATION_FRACTION)
    data_dir = options["data_dir"] or settings.get("data_dir")
    data = _load_data(spec, data_dir, validation_fraction, seed)
    ood_source = None
    if options["ood"] != "none":
        ood_source = _ood_source(options["ood"], data, _split(spec, seed, validation_fraction))
    if not from_search:
        try:
            model = load_model(target, data.input_shape)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="TARGET") from None
    x, y = zip(*data.test.as_numpy_iterator(), strict=True)
    accuracy = float(np.mean(np.argmax(model.predict(np.stack(x), verbose=0), -1) == np.array(y)))
    click.echo(f"test accuracy ({spec}): {100 * accuracy:.2f}%")
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "target": str(target),
        "trial": options["trial_id"],
        "data": spec,
        "test_accuracy": accuracy,
    }
    if ood_source is not None:
        result = evaluate_ood(
            model,
            ood_source,
            max_examples=options["max_examples"],
            clean=data,
            data_dir=options["data_dir"],
            frost_dir=options["frost_dir"],
        )
        click.echo(result.to_markdown())
        _write_result(result, out / "ood")
        summary["ood"] = result.to_dict()
    storage.write_json(out / "evaluation.json", summary)
    click.echo(f"Written: {out / 'evaluation.json'}")


# -- prepare --------------------------------------------------------------------


def _severities(value: str) -> tuple[int, ...]:
    try:
        severities = tuple(int(v) for v in value.split(","))
    except ValueError:
        severities = ()
    if not severities or any(not 1 <= v <= 5 for v in severities):
        raise click.BadParameter(
            f"{value!r}: pass severities 1..5 separated by commas, e.g. 1,2,3,4,5.",
            param_hint="--severities",
        )
    return severities


@main.command()
@click.argument("dataset", type=click.Choice(["cifar10_corrupted", "corrupted"]))
@click.option(
    "--from",
    "archive",
    type=click.Path(dir_okay=False),
    default=None,
    help="cifar10_corrupted: the archive downloaded by hand, CIFAR-10-C.tar (2.9 GB, Zenodo).",
)
@_data_options
@_seed_option("corrupted: seed of the data split (use the search's).")
@click.option(
    "--corruptions",
    default=None,
    help="cifar10_corrupted: benchmark (the 15; default) or all (19). corrupted: builtin (all "
    "17 built-in and frost with --frost-dir; default), benchmark, all, or a comma list.",
)
@click.option(
    "--severities",
    default="1,2,3,4,5",
    callback=lambda ctx, param, value: _severities(value),
    help="corrupted: the severities to write.",
)
@click.option(
    "--max-examples",
    type=click.IntRange(min=1),
    default=None,
    help="corrupted: the first N test images only (default: all).",
)
@_FROST_DIR
@click.option("--out", default=None, help="corrupted: the directory to write the set to.")
@_fail_cleanly
@_quiet_tensorflow
def prepare(dataset: str, **options: Any) -> None:
    """Prepare corrupted test images once, for every later evaluation.

    cifar10_corrupted: TFDS's CIFAR-10-C from its archive downloaded by hand, offline
    (--from CIFAR-10-C.tar); `evaluate --ood cifar10_corrupted` then reads it from the TFDS
    data directory. TFDS verifies the archive's sha256 for each of the 75 (or 95) configs.

    corrupted: the test images of --data under the built-in corruptions, written to --out
    with their settings and checksums; `evaluate --ood DIR` and `search --ood DIR` read
    them instead of computing them (the same images: corruption seed 0, batches of 256).

    An interrupted run resumes where it stopped.
    """
    if dataset == "cifar10_corrupted":
        _prepare_cifar10_corrupted(options)
    else:
        _prepare_corrupted(options)


def _unused(options: dict[str, Any], names: tuple[str, ...], dataset: str) -> None:
    for name in names:
        if options[name] is not None:
            flag = "--" + ("from" if name == "archive" else name.replace("_", "-"))
            raise click.UsageError(f"{flag} is not an option of `prepare {dataset}`.")


def _prepare_cifar10_corrupted(options: dict[str, Any]) -> None:
    from flatnas_tf import cifar10_corrupted
    from flatnas_tf.data import import_tfds
    from flatnas_tf.tuners.progress import clock

    dataset = "cifar10_corrupted"
    _unused(options, ("out", "max_examples", "frost_dir"), dataset)
    if options["archive"] is None:
        raise click.UsageError("prepare cifar10_corrupted needs --from CIFAR-10-C.tar.")
    corruptions = options["corruptions"] or "benchmark"
    if corruptions not in ("benchmark", "all"):
        raise click.BadParameter(
            f"{corruptions!r}: cifar10_corrupted has benchmark or all.", param_hint="--corruptions"
        )
    data_dir = options["data_dir"]
    import_tfds().disable_progress_bar()  # one line per config instead
    names, _ = cifar10_corrupted.corruption_set(corruptions)
    total = len(names) * len(cifar10_corrupted.SEVERITIES)
    done = []
    start = time.monotonic()

    def on_config(config: str, prepared_now: bool) -> None:
        done.append(config)
        state = "prepared" if prepared_now else "already prepared"
        elapsed = clock(time.monotonic() - start)
        click.echo(f"[{len(done)}/{total}] {dataset}/{config} {state} ({elapsed})")

    try:
        cifar10_corrupted.prepare(options["archive"], data_dir, corruptions, on_config=on_config)
    except ValueError as error:  # the archive is not CIFAR-10-C.tar: says what is wrong
        raise click.BadParameter(str(error), param_hint="--from") from None
    root = cifar10_corrupted.data_root(data_dir)
    option = "" if data_dir is None else f" --data-dir {root}"
    click.echo(
        f"{dataset}: {total} configs ready in {root}. "
        f"Evaluate with: flatnas-tf evaluate TARGET --ood {dataset}{option}"
    )


def _prepare_corrupted(options: dict[str, Any]) -> None:
    from flatnas_tf.corrupted_set import write_corrupted_set
    from flatnas_tf.tuners.progress import clock

    _unused(options, ("archive",), "corrupted")
    if options["out"] is None:
        raise click.UsageError("prepare corrupted needs --out DIR: where to write the set.")
    _check_frost_dir(options["frost_dir"])
    corruptions = options["corruptions"] or "builtin"
    if corruptions not in ("builtin", "benchmark", "all"):
        corruptions = [c.strip() for c in corruptions.split(",") if c.strip()]
    data = _load_data(
        options["data"], options["data_dir"], options["validation_fraction"], options["seed"]
    )
    description = {
        "data": options["data"],
        "data_dir": options["data_dir"],
        "validation_fraction": options["validation_fraction"],
        "seed": options["seed"],
    }
    start = time.monotonic()
    done: list[str] = []

    def on_corruption(name: str, written_now: bool) -> None:
        done.append(name)
        state = "written" if written_now else "already written"
        click.echo(f"[{len(done)}] {name} {state} ({clock(time.monotonic() - start)})")

    try:
        corrupted = write_corrupted_set(
            data,
            options["out"],
            corruptions,
            options["severities"],
            max_examples=options["max_examples"],
            frost_dir=options["frost_dir"],
            description=description,
            on_corruption=on_corruption,
        )
    except ValueError as error:  # CorruptedSetError is a usage error of its own
        if type(error) is not ValueError:
            raise
        raise click.BadParameter(str(error), param_hint="--corruptions") from None
    for name, why in corrupted.skipped.items():
        click.echo(f"{name} left out: {why}")
    click.echo(
        f"{len(corrupted.corruptions)} corruptions x {len(corrupted.severities)} severities of "
        f"{corrupted.examples} test images ready in {corrupted.directory}. "
        f"Evaluate with: flatnas-tf evaluate TARGET --ood {corrupted.directory}"
    )
