"""``FileStore``: cache entries as files under a local directory (backend ``"local"``).

Keys map to paths below the root (``"a/b/c.out"`` -> ``root/a/b/c.out``).
Writes go through :func:`joblite._core.fsutil.atomic_write` (temp file +
``os.replace``), so a reader never sees a partial file, even if the writer
is killed. Directories the store creates are private to the user (0o700):
loading an entry runs pickle code, so a cache other users can write to
would let them run code as you.

The store never acts outside its directory through a link planted in it:
every create, rename and deletion runs relative to a directory descriptor
opened by walking down from the root with ``O_NOFOLLOW`` (see
:mod:`._dirs`), so a directory swapped for a link, before or during the
operation, cannot redirect it; a link found on the way is refused
(:class:`UnsafeCachePathError`) or, on a write, replaced by a directory.
Files are opened with ``O_NOFOLLOW`` and refused when hard-linked; listings
skip links; trees are removed with the fd-based ``shutil.rmtree``.
A read-only cache still serves hits: only writes fail (and the caller
returns its value uncached).

Example::

    store = FileStore("/tmp/cache/joblib")
    store.write_bytes("f/1234/9b2c.out", b"...")
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import shutil
import stat
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from ..._core.fsutil import TEMP_PREFIX, atomic_write_at, create_temp_at, open_no_follow
from ...exceptions import CacheError, UnsafeCachePathError
from .._locks import DEFAULT_STALE_AFTER, FileLock
from ._dirs import BAD_NAMES, DirectoryWalker, make_private_dirs
from .base import Store, StoreStat

logger = logging.getLogger(__name__)

__all__ = ["PART_SUFFIX", "FileStore", "HeldDirectory"]

# Suffix of the hidden lock-and-write files (``.<name>.part``) next to keys.
PART_SUFFIX = ".part"

# Names starting with a dot (temp files, deleted trees) are not keys.
_HIDDEN = "."
# What creating a directory fails with on a read-only mount or a directory of another user.
_NOT_WRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


# What the store does relative to directory handles (docs/memory.md, *Threat model*):
# Linux and macOS have all of it; Windows has none.
# (os.replace runs on renameat as os.rename does; only os.rename is listed in supports_dir_fd.)
_NEEDS_DIR_FD = (os.open, os.stat, os.mkdir, os.unlink, os.rmdir, os.rename)


def _check_platform() -> None:
    missing = [f.__name__ for f in _NEEDS_DIR_FD if f not in os.supports_dir_fd]
    if os.scandir not in os.supports_fd:
        missing.append("scandir")
    if missing:
        raise CacheError(
            "a local Memory cache needs file operations relative to a directory handle "
            f"(openat and friends), which this platform lacks ({', '.join(missing)}); "
            "use Memory(location=None) or an fsspec URL instead"
        )


class FileStore(Store):
    """Entries as files below ``location`` (created 0o700 if missing).

    ``fsync=True`` makes every write durable across a power loss (slower).
    ``stale_lock_after`` only matters where ``fcntl`` is unavailable (see
    :mod:`joblite.memory._locks`). Raises :class:`OSError` if ``location``
    cannot be created, and :class:`~joblite.exceptions.CacheError` on a
    platform without directory-relative file operations (Windows).
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
        _check_platform()
        self.location = os.fspath(Path(location).expanduser())
        self.fsync = fsync
        self.stale_lock_after = stale_lock_after
        self._root = self.location + os.sep
        # The root itself may be a link the user made; only links below it are refused.
        self._dirs = DirectoryWalker(self.location, root_is_link=os.path.islink(self.location))
        try:
            make_private_dirs(self.location)
        except OSError as exc:
            if exc.errno not in _NOT_WRITABLE:
                raise
            # A read-only location: calls compute and return their values uncached.
            logger.warning("cannot create the cache directory %s (%s)", self.location, exc)

    def __repr__(self) -> str:
        return f"FileStore({self.location!r})"

    def local_path(self, key: str) -> str:
        return self._root + key

    def _directory(self, key: str) -> tuple[int | None, str]:
        """``(descriptor of the directory holding key, key's last name)``; the caller closes it.

        The descriptor is None if a directory on the way is missing. Raises
        :class:`ValueError` for a key with an empty, ``.`` or ``..``
        component, :class:`UnsafeCachePathError` for a link on the way.
        """
        names = _names(key)
        return self._dirs.open(names[:-1], create=False), names[-1]

    def _made_directory(self, key: str) -> tuple[int, str]:
        """:meth:`_directory`, making missing directories and replacing links on the way."""
        names = _names(key)
        return self._dirs.make(names[:-1]), names[-1]

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

    def hold_directory(self, key: str) -> HeldDirectory:
        """``key``'s directory held open (made if missing), for an unlocked writer of ``key``.

        Passed as ``lock`` to :meth:`open_write` and :meth:`append_locked`, it
        has them write relative to that directory, as a held :meth:`lock`
        does: one walk down for the entry and its journal line.
        """
        return HeldDirectory(self._made_directory(key)[0])

    def open_write(
        self, key: str, *, lock: object = None
    ) -> contextlib.AbstractContextManager[BinaryIO]:
        if isinstance(lock, HeldDirectory):
            return _WriteBeside(lock.dir_fd, key.rpartition("/")[2], fsync=self.fsync)
        if isinstance(lock, FileLock) and lock.dir_fd is not None:
            # Written into the lock's file, in the directory the lock holds open.
            name = key.rpartition("/")[2]
            leftover = lock.held_file_size(_part_path(self._root + key))
            if leftover is not None:
                return _WriteThroughLock(lock, name, leftover, fsync=self.fsync)
        return self._atomic_write(key)

    @contextlib.contextmanager
    def _atomic_write(self, key: str) -> Iterator[BinaryIO]:
        dir_fd, name = self._made_directory(key)
        try:
            # A link at ``name`` itself is replaced, never written through.
            with atomic_write_at(dir_fd, name, fsync=self.fsync) as f:
                yield f
        finally:
            os.close(dir_fd)

    def append(self, key: str, data: bytes) -> None:
        dir_fd, name = self._made_directory(key)
        try:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
            fd = open_no_follow(name, flags, replace_planted=True, dir_fd=dir_fd)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        finally:
            os.close(dir_fd)

    def append_locked(self, key: str, data: bytes, lock: object) -> None:
        if not (isinstance(lock, (FileLock, HeldDirectory)) and lock.dir_fd is not None):
            self.append(key, data)
            return
        # ``key`` is in the locked entry's directory, already open: no walk.
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        name = key.rpartition("/")[2]
        fd = open_no_follow(name, flags, replace_planted=True, dir_fd=lock.dir_fd)
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
        names = _names(prefix) if prefix else []
        try:
            dir_fd = self._dirs.open(names, create=False)
        except (NotADirectoryError, UnsafeCachePathError):
            return []
        if dir_fd is None:
            return []
        try:
            with os.scandir(dir_fd) as found:
                return [e for e in found if not e.name.startswith(_HIDDEN) and not e.is_symlink()]
        finally:
            os.close(dir_fd)

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
        dir_fd, name = self._directory(prefix)
        if dir_fd is None:
            return False
        try:
            return _delete_in(dir_fd, name)
        finally:
            os.close(dir_fd)

    def lock(self, key: str, *, timeout: float | None = None) -> FileLock:
        """A lock for writing ``key`` across threads and processes.

        It is held on a hidden ``.<name>.part`` file next to ``key``, which
        :meth:`open_write` then fills and renames to ``key``. The lock holds
        the directory open while it is held (see :class:`FileLock`).
        """
        names = _names(key)
        name = names.pop()
        return FileLock(
            # What _part_path(self._root + key) gives, without searching for the cut.
            f"{self._root}{key[: len(key) - len(name)]}{_part_name(name)}",
            timeout=timeout,
            stale_after=self.stale_lock_after,
            directory=functools.partial(self._dirs.make, names),
        )

    def __getstate__(self) -> dict[str, object]:
        state = super().__getstate__()
        state["_dirs"] = None  # open descriptors do not travel: opened anew
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._dirs = DirectoryWalker(self.location, root_is_link=os.path.islink(self.location))


def _names(key: str) -> list[str]:
    names = key.split("/")
    if not BAD_NAMES.isdisjoint(names):
        raise ValueError(f"a store key is /-separated names, none '', '.' or '..': {key!r}")
    return names


def _delete_in(dir_fd: int, name: str) -> bool:
    """Delete the file or tree ``name`` in the open directory ``dir_fd``."""
    try:
        os.unlink(name, dir_fd=dir_fd)  # a link is removed itself, never followed
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (IsADirectoryError, PermissionError):
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            raise
    # Rename first so readers stop seeing the tree at once, even if the
    # removal below races with a writer adding files to it.
    trash = f"{TEMP_PREFIX}del-{uuid.uuid4().hex}"
    try:
        os.rename(name, trash, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    _remove_tree(dir_fd, trash)
    return True


def _remove_tree(dir_fd: int, name: str) -> None:
    """Remove the tree ``name`` in ``dir_fd``, best effort, links inside unlinked, not followed.

    ``shutil.rmtree(name, dir_fd=...)`` from Python 3.11 on; ``os.fwalk``
    (fd-relative, never following links) does the same on 3.10.
    """
    if sys.version_info >= (3, 11):
        shutil.rmtree(name, ignore_errors=True, dir_fd=dir_fd)
        return
    with contextlib.suppress(OSError):
        for _, dirnames, filenames, fd in os.fwalk(name, topdown=False, dir_fd=dir_fd):
            for entry in filenames:
                with contextlib.suppress(OSError):
                    os.unlink(entry, dir_fd=fd)
            for entry in dirnames:  # links to directories are listed here too
                with contextlib.suppress(OSError):
                    if stat.S_ISLNK(os.stat(entry, dir_fd=fd, follow_symlinks=False).st_mode):
                        os.unlink(entry, dir_fd=fd)
                    else:
                        os.rmdir(entry, dir_fd=fd)
        os.rmdir(name, dir_fd=dir_fd)


class HeldDirectory:
    """A directory held open by :meth:`FileStore.hold_directory`; ``close()`` closes it."""

    def __init__(self, dir_fd: int) -> None:
        self.dir_fd: int | None = dir_fd

    def close(self) -> None:
        dir_fd, self.dir_fd = self.dir_fd, None
        if dir_fd is not None:
            os.close(dir_fd)


class _FdWriter:
    """The part of a binary file's interface that writers use, on a bare descriptor.

    Unbuffered: writers hand over whole files or big slices, so a buffer
    would only add a copy. Subclasses are context managers (no generator:
    a miss makes one) that set ``_fd``.
    """

    mode = "wb"
    _fd: int

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


class _WriteBeside(_FdWriter):
    """Writing an entry, without a lock, into a new temp file in its held directory.

    Then renamed over the entry: what ``atomic_write_at`` does, minus what a
    fresh entry does not need (a look for the mode of a file to replace: the
    file is private, as a locked entry's is; a buffered file object).
    """

    def __init__(self, dir_fd: int | None, name: str, *, fsync: bool) -> None:
        self._dir_fd = cast(int, dir_fd)  # a held directory is open until closed
        self._name, self._fsync = name, fsync
        self._tmp_name = ""

    def __enter__(self) -> BinaryIO:
        self._fd, self._tmp_name = create_temp_at(self._dir_fd)
        return cast(BinaryIO, self)

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        dir_fd = self._dir_fd
        try:
            try:
                if kind is None and self._fsync:
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)
            if kind is None:
                os.rename(self._tmp_name, self._name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp_name, dir_fd=dir_fd)
            raise
        if kind is not None:  # the writer failed (it propagates): nothing is left
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp_name, dir_fd=dir_fd)
        elif self._fsync:
            os.fsync(dir_fd)


class _WriteThroughLock(_FdWriter):
    """Writing an entry into the file its held lock is on, then renaming it into place.

    The locked file is already a private temp file next to the entry: this
    saves creating another one.
    """

    def __init__(self, lock: FileLock, name: str, leftover: int, *, fsync: bool) -> None:
        self._lock, self._name, self._fsync = lock, name, fsync
        self._fd = lock.fileno()
        self._dir_fd = lock.dir_fd
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
            dir_fd = self._dir_fd
            part = _part_name(self._name)
            os.rename(part, self._name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            self._discard()
            raise
        self._lock.mark_renamed()
        if self._fsync:
            os.fsync(self._dir_fd)  # type: ignore[arg-type]  # a lock holding its directory

    def _discard(self) -> None:
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)  # a later write under this lock starts at 0


def _part_name(name: str) -> str:
    """The hidden lock-and-write file of the entry file ``name``."""
    return f".{name}{PART_SUFFIX}"


def _part_path(path: str) -> str:
    # Keys use "/" even where os.sep differs (Windows paths mix both).
    cut = max(path.rfind("/"), path.rfind(os.sep)) + 1
    return f"{path[:cut]}.{path[cut:]}{PART_SUFFIX}"
