"""Keeping a cache within its limits: the limits, choosing what to evict, evicting.

An entry's last access (what least-recently-used eviction sorts by) is the
later of its file's mtime and its last journaled hit (see :mod:`._entries`).

Automatic eviction (:class:`AutoEvictor`) keeps a running estimate of the
cache's size and item count in memory, adds each write to it, and only walks
the store when the estimate passes a limit (or once a minute, to account for
other processes' writes and for ``age_limit``); it then evicts down to 90% of
the limits so the next walk is many writes away.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from dataclasses import dataclass

from .._core.units import parse_age, parse_bytes
from . import _journal
from ._entries import EntryInfo, delete_entry, scan_entries
from .stores.base import Store

logger = logging.getLogger(__name__)

__all__ = [
    "AutoEvictor",
    "CacheLimits",
    "evict",
    "parse_age",
    "select_evictions",
]

_RESCAN_INTERVAL = 60.0
_SLACK = 0.9


@dataclass(frozen=True)
class CacheLimits:
    """Limits a cache is kept within; ``None`` means unlimited."""

    bytes_limit: int | None = None
    items_limit: int | None = None
    age_limit: float | None = None

    @classmethod
    def parse(
        cls,
        bytes_limit: int | str | None = None,
        items_limit: int | None = None,
        age_limit: datetime.timedelta | float | str | None = None,
    ) -> CacheLimits:
        """Normalize the user's forms; raises :class:`ValueError` naming the bad argument."""
        if items_limit is not None and (
            not isinstance(items_limit, int) or isinstance(items_limit, bool) or items_limit < 0
        ):
            raise ValueError(f"items_limit must be a non-negative int, got {items_limit!r}")
        return cls(parse_bytes(bytes_limit, name="bytes_limit"), items_limit, parse_age(age_limit))

    def __bool__(self) -> bool:
        return not (
            self.bytes_limit is None and self.items_limit is None and self.age_limit is None
        )

    def scaled(self, factor: float) -> CacheLimits:
        return CacheLimits(
            None if self.bytes_limit is None else int(self.bytes_limit * factor),
            None if self.items_limit is None else int(self.items_limit * factor),
            self.age_limit,
        )


def select_evictions(entries: list[EntryInfo], limits: CacheLimits, now: float) -> list[EntryInfo]:
    """Entries to delete so the rest fits ``limits``: expired first, then least recently used."""
    doomed: list[EntryInfo] = []
    kept = sorted(entries, key=lambda e: (e.last_access, e.recorded))
    if limits.age_limit is not None:
        cutoff = now - limits.age_limit
        doomed = [e for e in kept if e.last_access < cutoff]
        kept = [e for e in kept if e.last_access >= cutoff]
    total = sum(e.size for e in kept)
    start = 0
    while start < len(kept) and (
        (limits.bytes_limit is not None and total > limits.bytes_limit)
        or (limits.items_limit is not None and len(kept) - start > limits.items_limit)
    ):
        total -= kept[start].size
        doomed.append(kept[start])
        start += 1
    return doomed


def evict(
    store: Store, limits: CacheLimits, *, now: float | None = None
) -> tuple[list[EntryInfo], list[EntryInfo]]:
    """Delete the entries that do not fit ``limits``; return (deleted, kept)."""
    entries = scan_entries(store)
    doomed = select_evictions(entries, limits, time.time() if now is None else now)
    for entry in doomed:
        delete_entry(store, entry.key)
    gone = {id(e) for e in doomed}
    kept = [e for e in entries if id(e) not in gone]
    if doomed:
        logger.info("evicted %d cache entries from %s", len(doomed), store.location)
        live: dict[str, set[str]] = {}
        for e in kept:
            live.setdefault(f"{e.func_id}/{e.version}", set()).add(e.args_hash)
        for version_dir in {f"{e.func_id}/{e.version}" for e in doomed}:
            _journal.compact(store, version_dir, live.get(version_dir, set()))
    return doomed, kept


class AutoEvictor:
    """Keeps one store within ``limits`` after writes without walking it on every write."""

    def __init__(self, store: Store, limits: CacheLimits) -> None:
        self.store = store
        self.limits = limits
        self._mutex = threading.Lock()
        self._bytes = 0
        self._items = 0
        self._scanned_at: float | None = None

    def after_write(self, nbytes: int) -> None:
        now = time.monotonic()
        with self._mutex:
            self._bytes += nbytes
            self._items += 1
            limits = self.limits
            due = (
                self._scanned_at is None
                or now - self._scanned_at > _RESCAN_INTERVAL
                or (limits.bytes_limit is not None and self._bytes > limits.bytes_limit)
                or (limits.items_limit is not None and self._items > limits.items_limit)
            )
            if not due:
                return
            # Claim the walk so concurrent writers do not all start one.
            self._scanned_at = now
        self.enforce()

    def enforce(self) -> None:
        """Walk the store and evict down to 90% of the limits."""
        _, kept = evict(self.store, self.limits.scaled(_SLACK))
        with self._mutex:
            self._bytes = sum(e.size for e in kept)
            self._items = len(kept)
            self._scanned_at = time.monotonic()
