"""How the `flatnas-tf` commands fail and start: one-line errors, TensorFlow's start-up held back.

`fail_cleanly` turns the library's errors into Click's one-line errors: exit
code 2 for bad input, 1 for a failure (a data set that cannot be had, a
search whose trials all failed, a full disk, a chief that does not answer),
never a traceback for either. `quiet_tensorflow` imports TensorFlow before a
command runs with its C++ start-up lines held back.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from collections.abc import Callable

import click

from flatnas_tf.app import runs
from flatnas_tf.persistence import storage

#: (module, class) of the library's errors that are bad input, and of those that are
#: failures to report in one line; looked up only in modules already imported (an
#: error of a module never imported was not raised), so `report` stays TensorFlow-free.
_USAGE_ERRORS = (
    ("flatnas_tf.robustness.corrupted_set", "CorruptedSetError"),
    ("flatnas_tf.space.sandwich", "SupernetStateError"),
    ("flatnas_tf.tuners.records", "SearchFilesError"),
    ("flatnas_tf.tuners.access", "TokenError"),
    ("flatnas_tf.training.config", "TrainingConfigError"),
)
_FAILURES = (
    ("flatnas_tf.data", "DatasetUnavailableError"),
    ("flatnas_tf.training.regime", "TrainingDivergedError"),
    ("flatnas_tf.tuners.tuner", "SearchFailedError"),
)


def _loaded(errors: tuple[tuple[str, str], ...]) -> tuple[type, ...]:
    return tuple(getattr(sys.modules[m], name) for m, name in errors if m in sys.modules)


def fail_cleanly(command: Callable) -> Callable:
    """Turns the library's errors into one-line Click errors.

    Exit code 2 for bad input (a busy --out included; a trial the search
    does not hold, or cannot rebuild, is a --trial error), 1 for a data set that
    cannot be had, training that diverged, a search whose trials all failed,
    or a full disk (the state written before it is intact: rerunning resumes).
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except runs.TrialError as error:
            raise click.BadParameter(str(error), param_hint="--trial") from None
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


def quiet_tensorflow(command: Callable) -> Callable:
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
