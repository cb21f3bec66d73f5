"""``FileStore``: cache entries as files under a local directory (backend ``"local"``).

Keys map to paths below the root (``"a/b/c.out"`` -> ``root/a/b/c.out``).
Writes go through :func:`joblite._core.fsutil.atomic_write` (temp file +
``os.replace``), so a reader never sees a partial file, even if the writer
is killed. Directories the store creates are private to the user (0o700):
loading an entry runs pickle code, so a cache other users can write to
would let them run code as you.

The store never acts outside its directory through a link planted in it:
before writing or deleting below the root it ``lstat``s each directory on
the way and refuses a symbolic link (:class:`UnsafeCachePathError`); files
are opened with ``O_NOFOLLOW`` and refused when hard-linked; listings skip
links; a deletion also checks that the resolved path is inside the root.
A read-only cache still serves hits: only writes fail (and the caller
returns its value uncached).

Example::

    store = FileStore("/tmp/cache/joblib")
    store.write_bytes("f/1234/9b2c.out", b"...")
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from ..._core.fsutil import TEMP_PREFIX, atomic_write, fsync_directory, open_no_follow
from ...exceptions import UnsafeCachePathError
from .._locks import DEFAULT_STALE_AFTER, FileLock
from .base import Store, StoreStat

logger = logging.getLogger(__name__)

__all__ = ["PART_SUFFIX", "FileStore"]

# Suffix of the hidden lock-and-write files (``.<name>.part``) next to keys.
PART_SUFFIX = ".part"

_PRIVATE = 0o700
# Names starting with a dot (temp files, deleted trees) are not keys.
_HIDDEN = "."
# What creating a directory fails with on a read-only mount or a directory of another user.
_NOT_WRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_BAD_NAMES = frozenset({"", ".", ".."})


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
        # The root itself may be a link the user made; only links below it are refused.
        self._root_is_link = os.path.islink(self.location)
        try:
            _make_private_dirs(self.location)
        except OSError as exc:
            if exc.errno not in _NOT_WRITABLE:
                raise
            # A read-only location: calls compute and return their values uncached.
            logger.warning("cannot create the cache directory %s (%s)", self.location, exc)

    def __repr__(self) -> str:
        return f"FileStore({self.location!r})"

    def local_path(self, key: str) -> str:
        return self._root + key

    def _checked_path(self, key: str, *, create: bool = False, is_dir: bool = False) -> str:
        """The path of ``key`` once no directory on its way (``key`` too if ``is_dir``) is a link.

        With ``create``, missing directories are made and a link planted in
        place of one is replaced by a directory; without, a link raises
        :class:`UnsafeCachePathError`. A key with an empty, ``.`` or ``..``
        component raises :class:`ValueError`.
        """
        names = key.split("/")
        if not _BAD_NAMES.isdisjoint(names):
            raise ValueError(f"a store key is /-separated names, none '', '.' or '..': {key!r}")
        if not (self._root_is_link or _check_directory(self.location, create=False)):
            if not create:
                return self._root + key
            _make_private_dirs(self.location)  # removed since (e.g. by rm -r): make it again
        directory = self.location
        for name in names if is_dir else names[:-1]:
            directory = f"{directory}{os.sep}{name}"
            if not _check_directory(directory, create=create, replace_link=create):
                break  # missing: there is nothing below it to go through
        return self._root + key

    def _check_inside(self, path: str) -> None:
        """Refuse to delete ``path`` unless its resolved directory is inside the resolved root."""
        root = os.path.realpath(self.location)
        parent = os.path.realpath(os.path.dirname(path))
        if parent != root and not parent.startswith(root + os.sep):
            raise UnsafeCachePathError(path, f"resolves outside the cache {self.location!r}")

    def open_read(self, key: str) -> BinaryIO:
        try:
            # Non-blocking: a FIFO planted in the cache must not hang the reader.
            fd = os.open(self._root + key, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyError(key) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise KeyError(key)  # not a file joblite wrote: as good as absent
        return os.fdopen(fd, "rb")

    def open_write(
        self, key: str, *, lock: object = None
    ) -> contextlib.AbstractContextManager[BinaryIO]:
        if isinstance(lock, FileLock):
            # The lock's directories were checked when it was taken.
            path = self._root + key
            leftover = lock.held_file_size(_part_path(path))
            if leftover is not None:
                return _WriteThroughLock(lock, path, leftover, fsync=self.fsync)
        path = self._checked_path(key, create=True)
        # A link at ``path`` itself is replaced, never written through.
        return atomic_write(path, fsync=self.fsync, follow_symlinks=False)

    def append(self, key: str, data: bytes) -> None:
        path = self._checked_path(key, create=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        fd = open_no_follow(path, flags, replace_planted=True)
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

    def _listing(self, prefix: str) -> list[os.DirEntry[str]]:
        """The entries below ``prefix`` that are neither hidden nor links."""
        try:
            top = self._checked_path(prefix, is_dir=True) if prefix else self.location
            with os.scandir(top) as found:
                return [e for e in found if not e.name.startswith(_HIDDEN) and not e.is_symlink()]
        except (FileNotFoundError, NotADirectoryError, UnsafeCachePathError):
            return []

    def children(self, prefix: str) -> list[str]:
        return sorted(e.name for e in self._listing(prefix))

    def walk(self, prefix: str = "") -> Iterator[str]:
        for entry in self._listing(prefix):
            key = f"{prefix}/{entry.name}" if prefix else entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from self.walk(key)
            else:
                yield key

    def delete(self, prefix: str) -> bool:
        if not prefix:
            try:
                names = os.listdir(self.location)
            except FileNotFoundError:
                return False
            for name in names:
                self.delete(name)
            return bool(names)
        path = self._checked_path(prefix)
        self._check_inside(path)
        try:
            os.unlink(path)  # a link is removed itself, never followed
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
        # rmtree removes links inside the tree without following them (on this
        # platform's fd-based rmtree, shutil.rmtree.avoids_symlink_attacks).
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def lock(self, key: str, *, timeout: float | None = None) -> FileLock:
        """A lock for writing ``key`` across threads and processes.

        It is held on a hidden ``.<name>.part`` file next to ``key``, which
        :meth:`open_write` then fills and renames to ``key``.
        """
        path = self._checked_path(key, create=True)
        return FileLock(_part_path(path), timeout=timeout, stale_after=self.stale_lock_after)


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


def _check_directory(path: str, *, create: bool, replace_link: bool = False) -> bool:
    """Whether ``path`` is a directory, made 0o700 if missing with ``create``.

    A symbolic link there raises :class:`UnsafeCachePathError`, or with
    ``replace_link`` is removed (the link only: its target is untouched) and
    replaced by a directory.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            return False
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, _PRIVATE)
        st = os.lstat(path)  # what is there now, made by us or by a racing writer
    if stat.S_ISLNK(st.st_mode):
        if not replace_link:
            raise UnsafeCachePathError(
                path, "a symbolic link inside the cache directory; refusing to act through it"
            )
        logger.warning("replacing %s, a symbolic link planted in the cache, by a directory", path)
        os.unlink(path)
        return _check_directory(path, create=True)
    return True


def _make_private_dirs(path: str) -> None:
    """``os.makedirs`` giving 0o700 to every directory it creates (not just the leaf)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        _make_private_dirs(parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, _PRIVATE)
