"""The store interface: where cache entries live, as keys and bytes.

A store knows nothing of pickle, functions or arguments: Memory turns values
into bytes (through the core file format) and hands them to the store under
``/``-separated keys such as ``"mymod.f/3fa1.../9b2c....out"`` (the layout is
in :mod:`joblite.memory._entries`). A key is a path in a tree: deleting a
prefix deletes everything below it.

Implement the abstract methods to add a store, then register it::

    class S3Store(Store):
        ...

    register_store_backend("s3", S3Store)
    Memory("bucket/prefix", backend="s3")
"""

from __future__ import annotations

import abc
import contextlib
import threading
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ...exceptions import StoreBackendError
from ._joblib import JoblibStoreMethods

__all__ = ["Store", "StoreStat", "get_store_class", "register_store_backend"]


@dataclass(frozen=True)
class StoreStat:
    """Size in bytes and last modification time (seconds since the epoch) of a key.

    ``identity`` tells replaced content from appended content: it changes when
    the key is written anew (``write_bytes``, ``open_write``) and stays the
    same across :meth:`Store.append`. ``None`` if the store cannot tell.
    """

    size: int
    mtime: float
    identity: Hashable = None


class Store(JoblibStoreMethods, abc.ABC):
    """A tree of byte blobs addressed by ``/``-separated keys.

    ``location`` is a human-readable description of where the data is.
    Reads of a missing key raise :class:`KeyError`; writes are atomic (a
    reader sees the old value or the new one, never a partial one).
    joblib's ``StoreBackendMixin`` methods (``get_items``, ``clear_item``,
    ...) work on every store, through these (see :mod:`._joblib`).
    """

    location: str

    @abc.abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """Open ``key`` for reading; raise :class:`KeyError` if it does not exist."""

    @abc.abstractmethod
    def open_write(
        self, key: str, *, lock: object = None
    ) -> contextlib.AbstractContextManager[BinaryIO]:
        """Context manager yielding a binary file that replaces ``key`` atomically on success.

        ``lock`` is the lock from :meth:`lock` held for ``key``, if any: a store
        may use it to write more cheaply (FileStore writes into the lock file
        and renames it, saving a file creation).
        """

    @abc.abstractmethod
    def append(self, key: str, data: bytes) -> None:
        """Append ``data`` to ``key`` (created if missing).

        Appends of a few hundred bytes from concurrent writers must not
        interleave (true of ``O_APPEND`` writes on local file systems).
        """

    @abc.abstractmethod
    def stat(self, key: str) -> StoreStat:
        """Size and mtime of ``key``; raise :class:`KeyError` if it does not exist."""

    @abc.abstractmethod
    def children(self, prefix: str) -> list[str]:
        """Names directly below ``prefix`` (``""`` is the root); ``[]`` if there are none."""

    @abc.abstractmethod
    def delete(self, prefix: str) -> bool:
        """Delete ``prefix`` and everything below it; return False if nothing was there."""

    def append_locked(self, key: str, data: bytes, lock: object) -> None:
        """:meth:`append`, by a caller holding ``lock`` (from :meth:`lock`) for a key beside it.

        A store may use the lock to append more cheaply (FileStore appends in
        the directory the lock holds open); the default just appends.
        """
        self.append(key, data)

    def read_bytes(self, key: str) -> bytes:
        """The whole content of ``key``; raise :class:`KeyError` if it does not exist."""
        with self.open_read(key) as f:
            return f.read()

    def read_from(self, key: str, offset: int) -> bytes:
        """The content of ``key`` from byte ``offset`` on (appended bytes, say).

        Raises :class:`KeyError` if it does not exist.
        """
        with self.open_read(key) as f:
            f.seek(offset)
            return f.read()

    def write_bytes(self, key: str, data: bytes) -> None:
        """Replace ``key`` with ``data`` atomically."""
        with self.open_write(key) as f:
            f.write(data)

    def local_path(self, key: str) -> str | None:
        """A file-system path holding ``key`` (so it can be memory-mapped), or None."""
        return None

    def walk(self, prefix: str = "") -> Iterator[str]:
        """Every leaf key below ``prefix``."""
        for name in self.children(prefix):
            key = f"{prefix}/{name}" if prefix else name
            below = self.children(key)
            if below:
                yield from self.walk(key)
            else:
                yield key

    def lock(
        self, key: str, *, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[object]:
        """An exclusive lock for writing ``key``, shared by the threads of this process.

        Stores reachable from several processes override this with a lock that
        also excludes other processes (:class:`~joblite.memory.stores.local.FileStore`
        uses a hidden file next to ``key``).
        Raises :class:`~joblite.exceptions.CacheLockTimeoutError` after ``timeout`` seconds.
        """
        from .._locks import ThreadLockTable

        table = self.__dict__.get("_thread_locks")
        if table is None:
            with _TABLE_CREATION:
                table = self.__dict__.setdefault("_thread_locks", ThreadLockTable())
        lock: contextlib.AbstractContextManager[object] = table.acquire(key, timeout=timeout)
        return lock

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_thread_locks", None)
        return state


_TABLE_CREATION = threading.Lock()

_STORE_BACKENDS: dict[str, type[Store]] = {}


def register_store_backend(backend_name: str, backend: type[Store]) -> None:
    """Make ``Memory(location, backend=backend_name)`` use ``backend``.

    Memory builds it as ``backend(os.path.join(location, "joblib"), **backend_options)``.

    Raises :class:`~joblite.exceptions.StoreBackendError` (a ``ValueError``, as
    joblib raises, and a ``TypeError``) if ``backend_name`` is not a non-empty
    string or ``backend`` is not a subclass of :class:`Store`.

    Example::

        register_store_backend("memory", InMemoryStore)
    """
    if not isinstance(backend_name, str) or not backend_name:
        raise StoreBackendError(f"backend_name must be a non-empty str, got {backend_name!r}")
    if not (isinstance(backend, type) and issubclass(backend, Store)):
        raise StoreBackendError(
            f"backend must be a subclass of joblite.memory.Store, got {backend!r}"
        )
    _STORE_BACKENDS[backend_name] = backend


def get_store_class(backend_name: str) -> type[Store]:
    """The store class registered under ``backend_name``.

    Raises :class:`~joblite.exceptions.StoreBackendError` (a ``TypeError``, as
    joblib raises, and a ``ValueError``) if there is none.
    """
    try:
        return _STORE_BACKENDS[backend_name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        raise StoreBackendError(
            f"unknown backend {backend_name!r}; registered backends: {sorted(_STORE_BACKENDS)} "
            "(add one with register_store_backend)"
        ) from None
