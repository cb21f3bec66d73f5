"""``FileStore``: cache entries as files under a local directory (backend ``"local"``).

Keys map to paths below the root (``"a/b/output"`` -> ``root/a/b/output``).
Writes go through :func:`joblite._core.fsutil.atomic_write` (temp file +
``os.replace``), so a reader never sees a partial file, even if the writer
is killed. Directories the store creates are private to the user (0o700):
loading an entry runs pickle code, so a cache other users can write to
would let them run code as you.

Example::

    store = FileStore("/tmp/cache/joblib")
    store.write_bytes("f/1234/output", b"...")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from ..._core.fsutil import TEMP_PREFIX, atomic_write, fsync_directory
from .._locks import DEFAULT_STALE_AFTER, FileLock
from .base import Store, StoreStat

__all__ = ["PART_SUFFIX", "FileStore"]

# Suffix of the hidden lock-and-write files (``.<name>.part``) next to keys.
PART_SUFFIX = ".part"

_PRIVATE = 0o700
# Names starting with a dot (temp files, deleted trees) are not keys.
_HIDDEN = "."


class FileStore(Store):
    """Entries as files below ``location`` (created 0o700 if missing).

    ``fsync=True`` makes every write durable across a power loss (slower).
    ``stale_lock_after`` only matters where ``fcntl`` is unavailable (see
    :mod:`joblite.memory._locks`). Raises :class:`OSError` if ``location``
    cannot be created.
    """

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        fsync: bool = False,
        stale_lock_after: float = DEFAULT_STALE_AFTER,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise TypeError(
                f"FileStore got unexpected backend_options {sorted(unknown)}; "
                "accepted: fsync, stale_lock_after"
            )
        self.location = os.fspath(Path(location).expanduser())
        self.fsync = fsync
        self.stale_lock_after = stale_lock_after
        self._root = self.location + os.sep
        _make_private_dirs(self.location)

    def __repr__(self) -> str:
        return f"FileStore({self.location!r})"

    def local_path(self, key: str) -> str:
        return self._root + key

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self._root + key, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyError(key) from None

    def open_write(
        self, key: str, *, lock: object = None
    ) -> contextlib.AbstractContextManager[BinaryIO]:
        path = self._root + key
        if isinstance(lock, FileLock):
            leftover = lock.held_file_size(_part_path(path))
            if leftover is not None:
                return _WriteThroughLock(lock, path, leftover, fsync=self.fsync)
        return self._write_beside(path)

    @contextlib.contextmanager
    def _write_beside(self, path: str) -> Iterator[BinaryIO]:
        with contextlib.ExitStack() as stack:
            try:
                f = stack.enter_context(atomic_write(path, fsync=self.fsync))
            except FileNotFoundError:  # first write below this directory
                _make_private_dirs(os.path.dirname(path))
                f = stack.enter_context(atomic_write(path, fsync=self.fsync))
            yield f

    def append(self, key: str, data: bytes) -> None:
        path = self._root + key
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            fd = os.open(path, flags, 0o600)
        except FileNotFoundError:
            _make_private_dirs(os.path.dirname(path))
            fd = os.open(path, flags, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def stat(self, key: str) -> StoreStat:
        try:
            st = os.stat(self._root + key)
        except (FileNotFoundError, NotADirectoryError):
            raise KeyError(key) from None
        return StoreStat(st.st_size, st.st_mtime, (st.st_dev, st.st_ino))

    def children(self, prefix: str) -> list[str]:
        try:
            names = os.listdir(self._root + prefix if prefix else self.location)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(n for n in names if not n.startswith(_HIDDEN))

    def walk(self, prefix: str = "") -> Iterator[str]:
        top = self._root + prefix if prefix else self.location
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(_HIDDEN)]
            rel = os.path.relpath(dirpath, self.location).replace(os.sep, "/")
            for name in filenames:
                if not name.startswith(_HIDDEN):
                    yield name if rel == "." else f"{rel}/{name}"

    def delete(self, prefix: str) -> bool:
        if not prefix:
            try:
                names = os.listdir(self.location)
            except FileNotFoundError:
                return False
            for name in names:
                self.delete(name)
            return bool(names)
        path = self._root + prefix
        try:
            os.unlink(path)
            return True
        except (FileNotFoundError, NotADirectoryError):
            return False
        except (IsADirectoryError, PermissionError):
            if not os.path.isdir(path):
                raise
        # Rename first so readers stop seeing the tree at once, even if the
        # removal below races with a writer adding files to it.
        trash = os.path.join(os.path.dirname(path), f"{TEMP_PREFIX}del-{uuid.uuid4().hex}")
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return False
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def lock(self, key: str, *, timeout: float | None = None) -> FileLock:
        """A lock for writing ``key`` across threads and processes.

        It is held on a hidden ``.<name>.part`` file next to ``key``, which
        :meth:`open_write` then fills and renames to ``key``.
        """
        return FileLock(
            _part_path(self._root + key), timeout=timeout, stale_after=self.stale_lock_after
        )


class _WriteThroughLock:
    """Writing an entry into the file its held lock is on, then renaming it into place.

    The locked file is already a private temp file next to the entry: this
    saves creating another one. A context manager (no generator: a miss
    makes one) whose file is the descriptor itself, unbuffered: writers hand
    over whole files or big slices, so a buffer would only add a copy.
    """

    mode = "wb"

    def __init__(self, lock: FileLock, path: str, leftover: int, *, fsync: bool) -> None:
        self._lock, self._path, self._fsync = lock, path, fsync
        self._fd = lock.fileno()
        self._leftover = leftover

    def __enter__(self) -> BinaryIO:
        if self._leftover:  # bytes of a writer that died
            os.ftruncate(self._fd, 0)
        # It has the part of a binary file's interface that writers use.
        return cast(BinaryIO, self)

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is not None:  # the writer failed: leave an empty lock file (it propagates)
            self._discard()
            return
        try:
            if self._fsync:
                os.fsync(self._fd)
            os.rename(self._lock.path, self._path)
        except BaseException:
            self._discard()
            raise
        self._lock.mark_renamed()
        if self._fsync:
            fsync_directory(os.path.dirname(self._path))

    def _discard(self) -> None:
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)  # a later write under this lock starts at 0

    def write(self, data: Any) -> int:
        """Write every byte (``os.write`` may write fewer)."""
        view = memoryview(data).cast("B")
        written = os.write(self._fd, view)
        while written < view.nbytes:
            written += os.write(self._fd, view[written:])
        return view.nbytes

    def fileno(self) -> int:
        return self._fd

    def tell(self) -> int:
        return os.lseek(self._fd, 0, os.SEEK_CUR)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return os.lseek(self._fd, offset, whence)

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass


def _part_path(path: str) -> str:
    # Keys use "/" even where os.sep differs (Windows paths mix both).
    cut = max(path.rfind("/"), path.rfind(os.sep)) + 1
    return f"{path[:cut]}.{path[cut:]}{PART_SUFFIX}"


def _make_private_dirs(path: str) -> None:
    """``os.makedirs`` giving 0o700 to every directory it creates (not just the leaf)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        _make_private_dirs(parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, _PRIVATE)
