"""Atomic file operations: a reader sees the old file or the new one, never half.

The recipe is the classic one: write a temp file in the target's directory
(so ``os.replace`` is a rename within one file system, atomic on POSIX and
Windows), optionally fsync it, then rename it over the target. A writer that
is SIGKILLed leaves at most a ``.tmp-*`` file that no reader ever opens.

Example::

    with atomic_write("model.jl") as f:
        f.write(b"...")
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["TEMP_PREFIX", "atomic_write", "atomic_write_bytes", "fsync_directory", "safe_remove"]

# Temp files carry this prefix so cleanup tools can recognise (and skip) them.
TEMP_PREFIX = ".tmp-joblite-"


def _read_umask() -> int:
    # os.umask can only be read by setting it; do it once, at import, rather
    # than racing other threads on every write.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename in ``directory`` durable (no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open directories; the rename is durable there.
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], *, fsync: bool = False) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only if the block succeeds.

    ``fsync=True`` flushes data and the directory entry to disk, so the new
    file survives a power loss, at the cost of a few milliseconds.
    On any exception the temp file is removed and ``path`` is untouched.
    """
    # Like open(path, "wb"): write through a symlink to its target, keep an
    # existing file's permissions, and fail naming the user's path, not the
    # temp file's. Two syscalls on the common path (lstat, stat).
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        mode = 0o666 & ~_UMASK  # what a plain open() would give a new file
    else:
        if stat.S_ISDIR(existing.st_mode):
            raise IsADirectoryError(errno.EISDIR, "cannot write a file over a directory", str(path))
        mode = stat.S_IMODE(existing.st_mode)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "its directory does not exist", str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except BaseException:
        safe_remove(tmp_name)
        raise
    if fsync:
        fsync_directory(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, fsync=fsync) as f:
        f.write(data)


def safe_remove(path: str | os.PathLike[str]) -> bool:
    """Remove a file or directory tree; return False if it was already gone."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        return False
    return True
