"""Files that are either wholly written or not there: a crash never leaves half of one.

Every write goes to a temporary file in the destination's directory, is
flushed to the disk (fsync), and then replaces the destination in one
`os.replace`; the directory is synced too, so the new name survives a power
loss. A reader sees the old file or the new one, never a mix, and a crash or
a full disk leaves at most a hidden temporary file behind (removed when the
write fails in Python).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "write_bytes", "write_json", "write_text"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system can sync a directory
        handle = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary path to write to; it replaces `path` when the block ends without error.

    Args:
        path: The destination.
        suffix: Ending the temporary name must have (e.g. ".weights.h5", which
            Keras requires of weight files).

    Yields:
        The temporary path, in the destination's directory.

    Example:
    ```python
    with atomic_path("run/supernet.weights.h5", suffix=".weights.h5") as temporary:
        model.save_weights(temporary)
    ```
    """
    path = Path(path)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # as a plain open() would create it
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _sync_directory(path.parent)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replaces `path` with `data` atomically (see the module docstring).

    Args:
        path: The destination.
        data: The new contents.
    """
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        file.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Replaces `path` with UTF-8 `text` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(
    path: str | os.PathLike, value: Any, default: Callable[[Any], Any] | None = None
) -> None:
    """Replaces `path` with `value` as indented JSON, atomically."""
    write_text(path, json.dumps(value, indent=2, default=default) + "\n")
