"""What keeps a cache hit cheap: in-process state consulted on every hit.

:class:`HotValues` remembers, for small entries this process has loaded, the
entry's pickled value together with the identity of its ``.out`` file
(device, inode, size, mtime and ctime in ns). A hit ``lstat``s the file;
while the identity is unchanged the value is unpickled from memory (a fresh
object every time, as when loading from disk; an immutable scalar, which
no caller can change, is handed out as it is), skipping the file format's
parsing. joblite replaces an entry by renaming a new file over it, and any
rewrite, deletion or edit of a file changes its ctime: a changed file
forces a real load. A file changed within the file system's timestamp
granularity of the copy's ctime would keep the same identity (a freed inode
number is reused at once on ext4), so a copy is only kept of a file whose
ctime is older than that granularity (see :func:`settled`).

:class:`AccessTracker` batches the per-hit bookkeeping: the first hit of an
entry in a process is appended to the journal at once (so least-recently-used
eviction in other processes sees it), later hits are counted in memory and
appended at most once per second per entry, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import itertools
import os
import pickle
import threading
import time
import weakref
from collections import OrderedDict
from typing import Any

from ._entries import OUTPUT
from ._journal import append_hits
from .stores.base import Store

__all__ = [
    "MAX_HOT_FILE_SIZE",
    "UNPICKLE",
    "AccessTracker",
    "HotValues",
    "file_identity",
    "settled",
]

# Only files this small are candidates: their pickles cost little memory.
MAX_HOT_FILE_SIZE = 64 * 1024
_HOT_BUDGET = 32 * 1024 * 1024
_FLUSH_INTERVAL = 1.0

FileIdentity = tuple[int, int, int, int, int]
_NOT_CACHEABLE = b""
# Values no caller can change: one object serves every hit (pickle.loads of
# an int costs ~0.2 µs a hit). Exact types: a subclass may be mutable.
_IMMUTABLE = frozenset({int, float, complex, bool, str, bytes, type(None)})


class _Unpickle(enum.Enum):
    UNPICKLE = "unpickle"  # the held value is a pickle to load afresh on each hit


UNPICKLE = _Unpickle.UNPICKLE
# How old a file's ctime must be before a copy of it is kept. Linux stamps
# files from a clock that lags by at most one tick (1 to 10 ms); file
# systems with whole-second (or coarser) timestamps get 2.5 s.
_SETTLED_FINE_NS = 50_000_000
_SETTLED_COARSE_NS = 2_500_000_000


def file_identity(st: os.stat_result) -> FileIdentity:
    """What tells a file from its replacements (``HotValues.items`` keeps it per key)."""
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def settled(st: os.stat_result, now_ns: int) -> bool:
    """Whether a file written after ``now_ns`` would get a later ctime than ``st``'s.

    Until then, a new file given the same inode number (freed and reused) and
    size would have the same identity: a copy could not tell it apart.
    """
    ctime = st.st_ctime_ns
    coarse = ctime % 1_000_000 == 0  # whole milliseconds: a coarse clock or file system
    return now_ns - ctime > (_SETTLED_COARSE_NS if coarse else _SETTLED_FINE_NS)


class HotValues:
    """A bounded map ``key -> (file identity, pickled value, kept)``; thread-safe.

    ``kept`` is the value itself if it is an immutable scalar (``int``,
    ``float``, ``str``...: handed out without unpickling), else
    ``UNPICKLE``. A hit reads ``items`` (a dict read needs no lock) and, if
    the identity is still its file's, marks the key in ``hits`` (one set
    insertion); ``b""`` as the pickle means the value cannot be held (load
    it from the file).
    When over budget it drops the least recently used items, approximately
    ("second chance", as an OS page cache does): eviction, under the lock,
    moves a marked oldest item to the newest end, unmarked, instead of
    dropping it.

    Example::

        hot.put(entry, os.lstat(path), value)
        identity, data, kept = hot.items[entry]
    """

    def __init__(self, budget: int = _HOT_BUDGET) -> None:
        self._budget = budget
        self._used = 0
        # Read without the lock; changed under it.
        self.items: OrderedDict[str, tuple[FileIdentity, bytes, Any]] = OrderedDict()
        self.hits: set[str] = set()  # keys hit since they were last inserted or spared
        self._mutex = threading.Lock()

    def put(self, key: str, st: os.stat_result, value: Any) -> None:
        """Hold ``value`` for ``key``, loaded from a file whose ``lstat`` was ``st``, if settled."""
        if not settled(st, time.time_ns()):
            return  # a later load tries again
        identity = file_identity(st)
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError, ValueError):
            data = _NOT_CACHEABLE  # e.g. needs cloudpickle: always load from the file
        if len(data) > MAX_HOT_FILE_SIZE:
            data = _NOT_CACHEABLE
        with self._mutex:
            old = self.items.pop(key, None)
            if old is not None:
                self._used -= len(old[1])
            kept = value if type(value) in _IMMUTABLE and data else UNPICKLE
            self.items[key] = (identity, data, kept)
            self.hits.discard(key)
            self._used += len(data)
            # Bounded, as concurrent hits may mark items again meanwhile.
            second_chances = len(self.items) + 1
            while self._used > self._budget and self.items:
                oldest, item = self.items.popitem(last=False)
                # The item just put is spared too (it has had no chance to be hit).
                spare = oldest in self.hits or (oldest == key and bool(self.items))
                if spare and second_chances > 0:
                    second_chances -= 1
                    self.hits.discard(oldest)
                    self.items[oldest] = item
                    continue
                self.hits.discard(oldest)
                self._used -= len(item[1])

    def clear(self) -> None:
        with self._mutex:
            self.items.clear()
            self.hits.clear()
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
        # Read by a hit without the lock (see MemorizedFunc.__call__).
        self.pending: dict[str, _Counts] = {}
        _TRACKERS.add(self)

    def hit(self, entry: str) -> None:
        now = time.monotonic()
        counts = self.pending.get(entry)
        if counts is not None and now < counts.due:
            next(counts.numbers)
            return
        with self._mutex:
            counts = self.pending.get(entry)
            if counts is None:
                counts = self.pending[entry] = _Counts(now)
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
            for entry, counts in self.pending.items():
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
            self.pending = {k: v for k, v in self.pending.items() if not k.startswith(prefix)}


_TRACKERS: weakref.WeakSet[AccessTracker] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for tracker in list(_TRACKERS):
        tracker.flush()
