"""``InMemoryStore``: cache entries in a dict of this process (backend ``"memory"``).

Useful for caching within one run without touching the disk, and as the
second implementation the store contract tests run against. Entries live as
long as the store object; they are not shared with other processes (a
pickled copy, e.g. inside a :class:`~joblite.memory.MemorizedResult`, carries
a snapshot). Memory-mapping (``mmap_mode``) does not apply: values are
loaded into memory.

Example::

    mem = Memory(InMemoryStore(), verbose=0)
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

from .base import Store, StoreStat

__all__ = ["InMemoryStore"]


class InMemoryStore(Store):
    """A thread-safe dict of ``key -> (bytes, mtime)``; ``location`` is a label only."""

    def __init__(self, location: str = "<memory>", **unknown: Any) -> None:
        if unknown:
            raise TypeError(f"InMemoryStore got unexpected backend_options {sorted(unknown)}")
        self.location = str(location)
        self._data: dict[str, tuple[bytes | bytearray, float]] = {}
        self._mutex = threading.Lock()

    def __repr__(self) -> str:
        return f"InMemoryStore({self.location!r})"

    def __getstate__(self) -> dict[str, object]:
        state = super().__getstate__()
        state.pop("_mutex")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._mutex = threading.Lock()

    def open_read(self, key: str) -> BinaryIO:
        return io.BytesIO(self.read_bytes(key))

    def read_bytes(self, key: str) -> bytes:
        try:
            return bytes(self._data[key][0])
        except KeyError:
            raise KeyError(key) from None

    @contextlib.contextmanager
    def open_write(self, key: str, *, lock: object = None) -> Iterator[BinaryIO]:
        buffer = io.BytesIO()
        yield buffer
        self.write_bytes(key, buffer.getvalue())

    def write_bytes(self, key: str, data: bytes) -> None:
        with self._mutex:
            self._data[key] = (bytes(data), time.time())

    def append(self, key: str, data: bytes) -> None:
        with self._mutex:
            old = self._data.get(key)
            # A bytearray grows in place: appending stays O(len(data)).
            buffer = old[0] if old is not None and isinstance(old[0], bytearray) else None
            if buffer is None:
                buffer = bytearray(old[0] if old is not None else b"")
            buffer += data
            self._data[key] = (buffer, time.time())

    def read_from(self, key: str, offset: int) -> bytes:
        try:
            return bytes(self._data[key][0][offset:])
        except KeyError:
            raise KeyError(key) from None

    def stat(self, key: str) -> StoreStat:
        try:
            data, mtime = self._data[key]
        except KeyError:
            raise KeyError(key) from None
        return StoreStat(len(data), mtime)

    def children(self, prefix: str) -> list[str]:
        start = prefix + "/" if prefix else ""
        with self._mutex:
            keys = list(self._data)
        return sorted({k[len(start) :].split("/", 1)[0] for k in keys if k.startswith(start)})

    def delete(self, prefix: str) -> bool:
        start = prefix + "/"
        with self._mutex:
            doomed = [k for k in self._data if not prefix or k == prefix or k.startswith(start)]
            for k in doomed:
                del self._data[k]
        return bool(doomed)
