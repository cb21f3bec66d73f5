"""Per-key locks so that concurrent identical calls compute once.

:class:`FileLock` excludes other threads *and* other processes: on POSIX it
takes an ``fcntl.flock`` on the file itself (created empty if missing;
``FileStore`` locks the hidden ``.<entry>.part`` file it then writes the
entry into and renames, so a miss creates no extra file), which the kernel
drops when the holder dies (even by SIGKILL): a crashed holder never blocks
anyone. A holder that did not rename the file away removes it on release, so
no empty file is left behind; a waiter that then gets the lock on the removed
file sees that the path no longer names it and locks the current file
instead, so two callers never both hold the lock. Where ``fcntl`` is missing
(Windows) it falls back to creating ``path + ".lock"`` with ``O_EXCL``; a
lock file older than ``stale_after`` seconds is then taken to belong to a
dead holder and broken. Lock files are opened with ``O_NOFOLLOW`` and
refused when hard-linked: a link planted at ``path`` (pointing at a file
outside the cache) is removed and a fresh file locked, so the holder never
truncates or writes another file through it. The common, uncontended case
creates the file with ``O_EXCL`` and locks it at once: three system calls
(create, ``flock``, ``fstat``) where the general path takes five.

Example::

    with FileLock("/cache/joblib/f/0af3/.9b2c.out.part", timeout=60):
        ...  # compute and store the entry
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator

from .._core.fsutil import O_NOFOLLOW, open_no_follow
from ..exceptions import CacheLockTimeoutError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["DEFAULT_STALE_AFTER", "FileLock", "ThreadLockTable"]

# Only used by the O_EXCL fallback: flock locks vanish with their holder.
DEFAULT_STALE_AFTER = 600.0
# faccessat relative to a directory, not following a link (Linux, macOS); elsewhere
# ``exists_beside`` cannot tell, and callers look by path.
_ACCESS_BESIDE = os.access in os.supports_dir_fd and os.access in os.supports_follow_symlinks


def backoff(first: float = 0.001, most: float = 0.05) -> Iterator[float]:
    """Waits between tries for a held lock: doubling from ``first`` up to ``most`` seconds."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, most)


class FileLock:
    """An exclusive lock on ``path`` across threads and processes (see module doc).

    Raises :class:`~joblite.exceptions.CacheLockTimeoutError` when it cannot be
    taken within ``timeout`` seconds (``None`` waits as long as the holder lives).
    With ``directory`` (a callable returning a new descriptor of the
    directory holding ``path``, held from acquiring to releasing), every
    operation on the file runs relative to that descriptor, by its name, so
    no link planted on the way to it can redirect the lock's file.
    """

    def __init__(
        self,
        path: str,
        *,
        timeout: float | None = None,
        stale_after: float = DEFAULT_STALE_AFTER,
        use_flock: bool | None = None,
        directory: Callable[[], int] | None = None,
    ) -> None:
        self.path = path
        self._directory = directory
        # What the file operations are given: the name in the held directory, or the path
        # (the name as os.path.basename cuts it, in one call: a miss makes a lock).
        self._name = path.rpartition(os.sep)[2] if directory is not None else path
        # The directory the lock's file is in while held (None: ``path`` is a plain path).
        self.dir_fd: int | None = None
        # (device, inode, size) of the locked file when the lock was taken.
        self._held: tuple[int, int, int] | None = None
        self.timeout = timeout
        self.stale_after = stale_after
        self.use_flock = fcntl is not None if use_flock is None else use_flock
        self._fd: int | None = None
        self._renamed = False
        self._exclusive_path = self._name + ".lock"

    def fileno(self) -> int:
        """The descriptor of the locked file; :class:`RuntimeError` if the lock is not held."""
        if self._fd is None:
            raise RuntimeError(f"the lock {self.path!r} is not held")
        return self._fd

    def held_file_size(self, path: str) -> int | None:
        """The size of the locked file if it is still named ``path``, else None.

        None also when the lock is not held or not an flock: the caller must
        then not write into :meth:`fileno`. (Its size is the one it had when
        the lock was taken: no one else writes a locked file.) Only the
        holder renames its lock file; anyone else removes it (``cache gc``
        after an hour, a ``clear()`` in another process), and then it has no
        link left: one ``fstat``, instead of a look at ``path``. (A directory
        moved away whole, as a deletion does first, takes the file along: the
        entry is written there and goes with it, as a look at the name, made
        relative to the held directory, would find too.)
        """
        held = self._held
        if self._fd is None or held is None or path != self.path or self._renamed:
            return None
        if os.fstat(self._fd).st_nlink == 0:
            return None  # removed since (``cache gc`` of a computation over an hour long)
        return held[2]

    def exists_beside(self, name: str) -> bool | None:
        """Whether ``name`` is in the held lock file's directory (a link counts, unfollowed).

        None if the lock holds no directory (made without ``directory``, or
        not held) or the platform cannot ask: the caller must then look by
        path. One system call, no exception when ``name`` is missing.
        """
        if self.dir_fd is None or not _ACCESS_BESIDE:
            return None
        return os.access(name, os.F_OK, dir_fd=self.dir_fd, follow_symlinks=False)

    def mark_renamed(self) -> None:
        """Tell the lock its holder renamed the locked file away (release removes nothing)."""
        self._renamed = True

    def _deadline_passed(self, start: float) -> bool:
        return self.timeout is not None and time.monotonic() - start >= self.timeout

    def _timeout_error(self) -> CacheLockTimeoutError:
        return CacheLockTimeoutError(
            f"waited {self.timeout} s for the lock {self.path!r} held by another caller "
            "computing the same entry"
        )

    def _open(self, path: str, flags: int) -> int:
        if self.dir_fd is not None:  # the directory is there: its walk made it
            return self._open_file(path, flags)
        try:
            return self._open_file(path, flags)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            return self._open_file(path, flags)

    def _open_file(self, path: str, flags: int) -> int:
        if flags & os.O_EXCL:  # O_CREAT | O_EXCL never follows a link: it fails on any
            return os.open(path, flags | O_NOFOLLOW, 0o600, dir_fd=self.dir_fd)
        return open_no_follow(path, flags, replace_planted=True, dir_fd=self.dir_fd)

    def acquire(self) -> None:
        if self._directory is not None and self.dir_fd is None:
            self.dir_fd = self._directory()
        try:
            self._acquire()
        except BaseException:
            self._close_directory()
            raise

    def _close_directory(self) -> None:
        dir_fd, self.dir_fd = self.dir_fd, None
        if dir_fd is not None and self._directory is not None:
            os.close(dir_fd)

    def _acquire(self) -> None:
        start = time.monotonic()
        if self.use_flock:
            if self._acquire_new_file():
                return
            while True:
                fd = self._open(self._name, os.O_RDWR | os.O_CREAT)
                try:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        self._wait_flock(fd, start)
                    current = self._names_file(fd)
                except BaseException:
                    os.close(fd)
                    raise
                if current:
                    break
                # The previous holder removed or renamed the file while we waited:
                # its lock no longer excludes anyone, lock the file now at ``path``.
                os.close(fd)
            self._fd = fd
            self._renamed = False
            return
        delays = backoff()
        while True:
            try:
                fd = self._open(self._exclusive_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                self._break_if_stale()
                if self._deadline_passed(start):
                    raise self._timeout_error() from None
                time.sleep(next(delays))
                continue
            os.write(fd, str(os.getpid()).encode())
            self._fd = fd
            return

    def _acquire_new_file(self) -> bool:
        """Create the lock's file and lock it at once; False if the general path must run.

        The uncontended miss: ``O_CREAT | O_EXCL`` makes a fresh, single-linked
        regular file (never a link's target), so ``open_no_follow``'s checks
        are not needed, and once it is locked one ``fstat`` tells whether it
        is still the file named ``path``. Another caller can only have locked
        it first, between our create and our lock; the kernel then let us in
        only after that caller released it, having renamed it away (after
        writing an entry into it: its size is not 0) or removed it (no link
        left). Three system calls instead of five.
        """
        try:
            fd = self._open(self._name, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        except FileExistsError:  # a waiter, a dead writer's file, or something planted
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            st = os.fstat(fd)
        except BlockingIOError:  # another caller opened our new file and locked it first
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        if st.st_nlink != 1 or st.st_size != 0:
            os.close(fd)
            return False
        self._fd, self._renamed = fd, False
        self._held = (st.st_dev, st.st_ino, 0)
        return True

    def _names_file(self, fd: int) -> bool:
        """Whether ``self.path`` still names the file open as ``fd`` (then noted as held)."""
        try:
            named = os.stat(self._name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        self._held = (held.st_dev, held.st_ino, held.st_size)
        return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)

    def _wait_flock(self, fd: int, start: float) -> None:
        # Polled rather than a blocking flock so that ``timeout`` is honoured.
        for delay in backoff():
            if self._deadline_passed(start):
                raise self._timeout_error()
            time.sleep(delay)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass

    def _break_if_stale(self) -> None:
        try:
            st = os.stat(self._exclusive_path, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if time.time() - st.st_mtime > self.stale_after:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._exclusive_path, dir_fd=self.dir_fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self.use_flock and not self._renamed:
                # Removed while still locked, so a waiter can tell it went away (see acquire).
                with contextlib.suppress(OSError):
                    if self._names_file(fd):
                        os.unlink(self._name, dir_fd=self.dir_fd)
            os.close(fd)
            if not self.use_flock:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._exclusive_path, dir_fd=self.dir_fd)
        finally:
            self._held = None
            self._close_directory()

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ThreadLockTable:
    """Named locks shared by the threads of one process; unused names are dropped."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def acquire(self, name: str, *, timeout: float | None = None) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(name, (None, 0))
            if lock is None:
                lock = threading.Lock()
            self._locks[name] = (lock, users + 1)
        try:
            if not lock.acquire(timeout=-1 if timeout is None else timeout):
                raise CacheLockTimeoutError(
                    f"waited {timeout} s for the lock {name!r} held by another thread"
                )
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._guard:
                lock, users = self._locks[name]
                if users == 1:
                    del self._locks[name]
                else:
                    self._locks[name] = (lock, users - 1)
