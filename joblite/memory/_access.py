"""What keeps a cache hit cheap: in-process state consulted on every hit.

:class:`HotValues` remembers, for small entries this process has loaded, the
entry's pickled value together with the identity of its ``.out`` file
(inode, size, mtime in ns). A hit ``stat``s the file; while the identity is
unchanged the value is unpickled from memory (a fresh object every time, as
when loading from disk), skipping the file format's parsing. Any rewrite,
deletion or edit of the file changes its identity and forces a real load.

:class:`AccessTracker` batches the per-hit bookkeeping: the first hit of an
entry in a process is appended to the journal at once (so least-recently-used
eviction in other processes sees it), later hits are counted in memory and
appended at most once per second per entry, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import pickle
import threading
import time
import weakref
from collections import OrderedDict
from typing import Any

from ._entries import OUTPUT
from ._journal import append_hits
from .stores.base import Store

__all__ = ["MAX_HOT_FILE_SIZE", "AccessTracker", "HotValues"]

# Only files this small are candidates: their pickles cost little memory.
MAX_HOT_FILE_SIZE = 64 * 1024
_HOT_BUDGET = 32 * 1024 * 1024
_FLUSH_INTERVAL = 1.0

FileIdentity = tuple[int, int, int]
_NOT_CACHEABLE = b""


class HotValues:
    """A bounded map ``path -> (file identity, pickled value)``; thread-safe.

    When over budget it drops the least recently used items, approximately
    ("second chance", as an OS page cache does): a hit only marks its path
    (one set insertion, no lock, so hits stay cheap), and eviction, under the
    lock, moves a marked oldest item to the newest end, unmarked, instead of
    dropping it.
    """

    def __init__(self, budget: int = _HOT_BUDGET) -> None:
        self._budget = budget
        self._used = 0
        self._items: OrderedDict[str, tuple[FileIdentity, bytes]] = OrderedDict()
        self._hit: set[str] = set()  # paths hit since they were last inserted or spared
        self._mutex = threading.Lock()

    def get(self, path: str, identity: FileIdentity) -> bytes | None:
        """The pickled value if ``path`` still has ``identity``; ``b""`` if not cacheable."""
        item = self._items.get(path)
        if item is None or item[0] != identity:
            return None
        self._hit.add(path)
        return item[1]

    def put(self, path: str, identity: FileIdentity, value: Any) -> None:
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError, ValueError):
            data = _NOT_CACHEABLE  # e.g. needs cloudpickle: always load from the file
        if len(data) > MAX_HOT_FILE_SIZE:
            data = _NOT_CACHEABLE
        with self._mutex:
            old = self._items.pop(path, None)
            if old is not None:
                self._used -= len(old[1])
            self._items[path] = (identity, data)
            self._hit.discard(path)
            self._used += len(data)
            # Bounded, as concurrent hits may mark items again meanwhile.
            second_chances = len(self._items) + 1
            while self._used > self._budget and self._items:
                oldest, item = self._items.popitem(last=False)
                # The item just put is spared too (it has had no chance to be hit).
                spare = oldest in self._hit or (oldest == path and bool(self._items))
                if spare and second_chances > 0:
                    second_chances -= 1
                    self._hit.discard(oldest)
                    self._items[oldest] = item
                    continue
                self._hit.discard(oldest)
                self._used -= len(item[1])

    def clear(self) -> None:
        with self._mutex:
            self._items.clear()
            self._hit.clear()
            self._used = 0


class _Counts:
    """One entry's hits in this process: numbered by an atomic counter, so a hit takes no lock."""

    __slots__ = ("due", "numbers", "written")

    def __init__(self, due: float) -> None:
        # ``next(numbers)`` is atomic (a C iterator, under the GIL): every hit
        # takes one number; ``written`` numbers have been written (or used up).
        self.numbers = itertools.count()
        self.written = 0
        self.due = due  # monotonic time of the next write


class AccessTracker:
    """Counts hits per entry and appends them to the journal in batches."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._mutex = threading.Lock()
        self._pending: dict[str, _Counts] = {}
        _TRACKERS.add(self)

    def hit(self, entry: str) -> None:
        now = time.monotonic()
        counts = self._pending.get(entry)
        if counts is not None and now < counts.due:
            next(counts.numbers)
            return
        with self._mutex:
            counts = self._pending.get(entry)
            if counts is None:
                counts = self._pending[entry] = _Counts(now)
            # Every hit numbered so far, this one included; another thread's
            # write may have taken them already.
            upto = next(counts.numbers) + 1
            hits = upto - counts.written
            if hits <= 0:
                return
            counts.written, counts.due = upto, now + _FLUSH_INTERVAL
        self._write(entry, hits)

    def _write(self, entry: str, hits: int) -> None:
        # Best effort: a count that cannot be written (disk full) only costs
        # statistics, never the cached value.
        with contextlib.suppress(OSError):
            try:
                self.store.stat(entry + OUTPUT)
            except KeyError:
                return  # deleted meanwhile: do not recreate its directory for a count
            append_hits(self.store, entry, hits)

    def flush(self) -> None:
        """Write every pending count now (``lookup`` and interpreter exit call this)."""
        pending = {}
        with self._mutex:
            now = time.monotonic()
            for entry, counts in self._pending.items():
                # This number is no hit: used up, not written.
                taken = next(counts.numbers)
                if taken > counts.written:
                    pending[entry] = taken - counts.written
                counts.written, counts.due = taken + 1, now + _FLUSH_INTERVAL
        for key, amount in pending.items():
            self._write(key, amount)

    def forget(self, prefix: str = "") -> None:
        """Drop pending counts below ``prefix`` (their entries were deleted)."""
        with self._mutex:
            self._pending = {k: v for k, v in self._pending.items() if not k.startswith(prefix)}


_TRACKERS: weakref.WeakSet[AccessTracker] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for tracker in list(_TRACKERS):
        tracker.flush()
