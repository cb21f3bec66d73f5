"""Directory handles below a store root: what makes a planted link unable to redirect a write.

:class:`DirectoryWalker` opens the root once (following a link only if
the root was one when the store was made), checks it with one ``lstat``
per use, and walks down with ``os.open(name, O_DIRECTORY | O_NOFOLLOW,
dir_fd=parent)``. Every create, rename and unlink of the store then runs
relative to the descriptor it returns, so a directory swapped for a
symbolic link at any moment, before or after the walk, cannot send it
outside the root: the kernel resolves the name inside the directory the
walk opened, never through the link. A link found on the way is refused
(:class:`UnsafeCachePathError`) or, when creating, removed (the link only)
and replaced by a directory.

Example::

    walker = DirectoryWalker("/tmp/cache/joblib", root_is_link=False)
    fd = walker.open(["f", "0af3"], create=True)
    try:
        os.stat("9b2c.out", dir_fd=fd, follow_symlinks=False)
    finally:
        os.close(fd)
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
import weakref
from collections.abc import Sequence

from ...exceptions import UnsafeCachePathError

logger = logging.getLogger(__name__)

__all__ = ["BAD_NAMES", "PRIVATE", "DirectoryWalker", "make_private_dirs"]

PRIVATE = 0o700
# Names that are no step down: a key or a walk holding one is refused.
BAD_NAMES = frozenset({"", ".", ".."})
_O_DIRECTORY: int = getattr(os, "O_DIRECTORY", 0)
_O_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
_OPEN_DIR = os.O_RDONLY | _O_DIRECTORY


class DirectoryWalker:
    """Open directories below ``root`` without following a link below it.

    The root's descriptor is kept open (one ``open`` and ``close`` fewer
    per use) and checked on each use by an ``lstat`` of its path: when the
    root was removed or replaced, it is opened afresh, so a process never
    keeps writing into a cache directory that was deleted or moved away.
    """

    def __init__(self, root: str, *, root_is_link: bool) -> None:
        self.root = root
        self._root_is_link = root_is_link
        self._mutex = threading.Lock()
        self._root_fd = -1
        self._root_id: tuple[int, int] = (-1, -1)
        # Every root descriptor opened, the current one last. One replaced
        # while another thread may still walk from it is closed with the
        # walker, never earlier (its number could be reused by another file
        # mid-walk); there is one per replacement of the root.
        self._fds: list[int] = []
        weakref.finalize(self, _close_all, self._fds)

    def _root(self, *, create: bool) -> int | None:
        """The root's descriptor, current with its path; None if it is missing."""
        try:
            st = os.stat(self.root, follow_symlinks=self._root_is_link)
        except FileNotFoundError:
            if not create:
                return None
            make_private_dirs(self.root)
            st = os.stat(self.root, follow_symlinks=self._root_is_link)
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeCachePathError(self.root, _REPLACED_ROOT)
        if (st.st_dev, st.st_ino) == self._root_id:
            return self._root_fd
        with self._mutex:
            if (st.st_dev, st.st_ino) != self._root_id:
                flags = _OPEN_DIR | (0 if self._root_is_link else _O_NOFOLLOW)
                try:
                    fd = os.open(self.root, flags)
                except NotADirectoryError:  # replaced by a link since the lstat
                    raise UnsafeCachePathError(self.root, _REPLACED_ROOT) from None
                self._fds.append(fd)
                opened = os.fstat(fd)
                self._root_fd, self._root_id = fd, (opened.st_dev, opened.st_ino)
            return self._root_fd

    def open(self, names: Sequence[str], *, create: bool) -> int | None:
        """A new descriptor (the caller closes it) of ``root/names...``; None if missing.

        With ``create``, missing directories are made (0o700) and a link in
        place of one is replaced by a directory; without, a link raises
        :class:`UnsafeCachePathError`.
        """
        if not BAD_NAMES.isdisjoint(names):  # "." or ".." would lead out of the way
            raise ValueError(f"directory names, none '', '.' or '..': {list(names)!r}")
        parent = self._root(create=create)
        if parent is None:
            return None
        if not names:
            return os.dup(parent)
        fd, depth = -1, 0
        try:
            for name in names:
                depth += 1
                # The usual case inline, a call less per level (a miss walks two).
                try:
                    child: int | None = os.open(name, _OPEN_DIR | _O_NOFOLLOW, dir_fd=parent)
                except OSError:
                    child = _open_child(parent, name, create, self.root, names, depth)
                if fd >= 0:
                    os.close(fd)
                fd = -1 if child is None else child
                if child is None:
                    return None
                parent = child
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        return fd

    def make(self, names: Sequence[str]) -> int:
        """:meth:`open` with ``create``: a new descriptor of ``root/names...``, made if missing."""
        fd = self.open(names, create=True)
        if fd is None:  # only if it was removed again at once, between mkdir and open
            raise FileNotFoundError(errno.ENOENT, "removed while being made", self.root)
        return fd

    def __getstate__(self) -> dict[str, object]:
        return {"root": self.root, "root_is_link": self._root_is_link}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(str(state["root"]), root_is_link=bool(state["root_is_link"]))  # type: ignore[misc]


_REPLACED_ROOT = "the cache directory was replaced by a symbolic link; refusing to act through it"
_PLANTED = "a symbolic link inside the cache directory; refusing to act through it"


def _close_all(fds: list[int]) -> None:
    while fds:
        with contextlib.suppress(OSError):
            os.close(fds.pop())


def _open_child(
    parent: int, name: str, create: bool, root: str, names: Sequence[str], depth: int
) -> int | None:
    """The directory ``name`` (``names[depth - 1]``) in ``parent``, not following a link.

    ``root`` and the first ``depth`` of ``names`` are its path, joined for
    messages only (not on every step of a walk).
    """
    try:
        return os.open(name, _OPEN_DIR | _O_NOFOLLOW, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            return None
        with contextlib.suppress(FileExistsError):  # made by a racing writer
            os.mkdir(name, PRIVATE, dir_fd=parent)
    except NotADirectoryError:  # a link (O_NOFOLLOW with O_DIRECTORY says so) or a file
        if not stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            raise
        if not create:
            raise UnsafeCachePathError(os.path.join(root, *names[:depth]), _PLANTED) from None
        where = os.path.join(root, *names[:depth])
        logger.warning("replacing %s, a symbolic link planted in the cache, by a directory", where)
        os.unlink(name, dir_fd=parent)  # the link itself; its target is untouched
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, PRIVATE, dir_fd=parent)
    try:
        return os.open(name, _OPEN_DIR | _O_NOFOLLOW, dir_fd=parent)
    except NotADirectoryError:  # swapped for a link again at once: refuse rather than loop
        raise UnsafeCachePathError(os.path.join(root, *names[:depth]), _PLANTED) from None


def make_private_dirs(path: str) -> None:
    """``os.makedirs`` giving 0o700 to every directory it creates (not just the leaf)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        make_private_dirs(parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, PRIVATE)
