"""Files that are either wholly written or not there: a crash never leaves half of one.

Every write goes to a temporary file in the destination's directory, is
flushed to the disk (fsync), and then replaces the destination in one
`os.replace`; the directory is synced too, so the new name survives a power
loss. A reader sees the old file or the new one, never a mix, and a crash or
a full disk leaves at most a hidden temporary file behind (removed when the
write fails in Python; `remove_partial_files` clears those a kill left).

`directory_lock` keeps a second process from working in a directory that one
is using: a lock file created exclusively (O_EXCL) holding the owner's host
and pid. A lock whose owner is a process of this host that no longer runs,
or a lock file left empty by a crash, is stale and taken over; a lock of
another host cannot be checked and is refused with the way to clear it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "DirectoryLockedError",
    "atomic_path",
    "directory_lock",
    "is_disk_full",
    "remove_partial_files",
    "write_bytes",
    "write_json",
    "write_text",
]

#: Marks the temporary files of writes in progress (`.<name><PARTIAL><random>`).
PARTIAL = ".partial-"

#: Lock files this process holds -> how many times (a holder may lock again).
_HELD: dict[Path, int] = {}
#: An empty lock file younger than this may be one being written; older ones are stale.
_EMPTY_LOCK_GRACE_S = 5.0


class DirectoryLockedError(RuntimeError):
    """Another process holds the directory's lock."""


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
def atomic_path(
    path: str | os.PathLike, suffix: str = "", mode: int | None = None
) -> Iterator[Path]:
    """A temporary path to write to; it replaces `path` when the block ends without error.

    Args:
        path: The destination.
        suffix: Ending the temporary name must have (e.g. ".weights.h5", which
            Keras requires of weight files).
        mode: The file's permissions; None: as a plain `open` creates a file
            (0666 less the umask). The temporary file is private (0600) until
            the block ends, so a secret written into it is never readable by
            others.

    Yields:
        The temporary path, in the destination's directory.

    Example:
    ```python
    with atomic_path("run/supernet.weights.h5", suffix=".weights.h5") as temporary:
        model.save_weights(temporary)
    ```
    """
    path = Path(path)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{PARTIAL}", suffix=suffix)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask() if mode is None else mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _sync_directory(path.parent)


def is_disk_full(error: BaseException) -> bool:
    """Whether an error says the disk (or the user's quota) is full.

    Args:
        error: An exception raised by a write.

    Returns:
        True for ENOSPC / EDQUOT, including libraries' OSErrors that only
        say so in their message (HDF5's).
    """
    if not isinstance(error, OSError):
        return False
    return error.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(error)


def remove_partial_files(directory: str | os.PathLike) -> int:
    """Deletes what writes killed midway left in `directory` and its subdirectories.

    Call it only while holding the directory's lock: a write in progress in
    another process would lose its temporary file.

    Args:
        directory: A directory written with this module.

    Returns:
        How many files were deleted.
    """
    removed = 0
    for path in Path(directory).rglob(f".*{PARTIAL}*"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


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


@contextlib.contextmanager
def directory_lock(directory: str | os.PathLike, name: str = ".lock") -> Iterator[Path]:
    """Holds `directory/name` while the block runs (see the module docstring).

    The same process may take a lock it already holds (nested blocks).

    Args:
        directory: The directory to keep to this process (created if missing).
        name: The lock file's name.

    Yields:
        The lock file's path.

    Raises:
        DirectoryLockedError: A running process holds the lock.

    Example:
    ```python
    with directory_lock("runs/digits"):
        ...  # no other process works in runs/digits meanwhile
    ```
    """
    path = (Path(directory) / name).resolve()
    if path in _HELD:
        _HELD[path] += 1
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        _acquire(path)
        _HELD[path] = 1
    try:
        yield path
    finally:
        _HELD[path] -= 1
        if not _HELD[path]:
            del _HELD[path]
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _acquire(path: Path) -> None:
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    for _ in range(3):  # a stale lock is removed, then creation is tried again
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            _remove_if_stale(path)
            continue
        with os.fdopen(handle, "w") as file:
            json.dump(owner, file)
            file.flush()
            os.fsync(file.fileno())
        return
    raise DirectoryLockedError(f"{path.parent} is locked by another process ({path}).")


def _remove_if_stale(path: Path) -> None:
    """Removes a lock nobody holds any more; raises if its owner may still run."""
    try:
        owner = json.loads(path.read_text())
        host, pid = str(owner["host"]), int(owner["pid"])
    except FileNotFoundError:
        return  # released meanwhile
    except (OSError, ValueError, KeyError, TypeError):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - path.stat().st_mtime < _EMPTY_LOCK_GRACE_S:
                raise DirectoryLockedError(
                    f"{path.parent} is being locked by another process right now."
                ) from None
            path.unlink()  # left empty or half written by a crash
        return
    if host == socket.gethostname() and (pid == os.getpid() or not _running(pid)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    raise DirectoryLockedError(
        f"{path.parent} is in use by process {pid} on {host} (lock {path}); wait for it to "
        "finish, or delete the lock file if that process is gone."
    )


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
