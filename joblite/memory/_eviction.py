"""Cache entries on a store: their layout, their sizes and ages, and LRU eviction.

Layout below the store root (one file per entry)::

    <func_id>/<version>/function.json        name and source of the function
    <func_id>/<version>/journal              metadata and hit counts (see _journal)
    <func_id>/<version>/<args_hash>.out      the result, in the core file format

An entry exists once its ``.out`` file does (it appears atomically). A miss
creates that one file and appends a line to the journal; file creations
cost tens of microseconds or more on many file systems, so they are
counted. An entry's last access (what least-recently-used eviction sorts
by) is the later of its file's mtime and its last journaled hit.

Automatic eviction (:class:`AutoEvictor`) keeps a running estimate of the
cache's size and item count in memory, adds each write to it, and only walks
the store when the estimate passes a limit (or once a minute, to account for
other processes' writes and for ``age_limit``); it then evicts down to 90% of
the limits so the next walk is many writes away.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .._core.units import parse_age, parse_bytes
from . import _journal
from .stores.base import Store

logger = logging.getLogger(__name__)

__all__ = [
    "AutoEvictor",
    "CacheLimits",
    "EntryInfo",
    "cached_functions",
    "delete_entry",
    "entry_info",
    "parse_age",
    "scan_entries",
    "select_evictions",
]

OUTPUT = ".out"
FUNCTION_INFO = "function.json"

# A version directory is named by 16 hex digits of the code's hash (see _keys)
# and holds a journal or a function.json: anything else below a store root is
# not joblite's, and scans (hence eviction and the CLI) leave it alone.
_VERSION_NAME = re.compile(r"[0-9a-f]{16}")
_VERSION_MARKERS = frozenset({_journal.JOURNAL, FUNCTION_INFO})

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


@dataclass
class EntryInfo:
    """One cached call as found on the store."""

    store: Store = field(repr=False)
    func_id: str
    version: str
    args_hash: str
    size: int
    created: float
    last_access: float
    hits: int
    # When it was computed, as recorded in the journal (finer than file mtimes,
    # which some file systems round to milliseconds): breaks last_access ties.
    recorded: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.func_id}/{self.version}/{self.args_hash}"

    def metadata(self) -> dict[str, Any]:
        """The entry's ``meta.json`` (duration, time, input_args...), ``{}`` if unreadable."""
        return read_metadata(self.store, self.key)


def read_metadata(store: Store, entry: str) -> dict[str, Any]:
    """The entry's metadata (duration, time, input_args...), ``{}`` if none was recorded."""
    return dict(_journal.lookup(store, entry).metadata)


def entry_info(
    store: Store, entry: str, records: dict[str, _journal.JournalRecord] | None = None
) -> EntryInfo | None:
    """Stat the entry ``func_id/version/args_hash``; None if it has no output."""
    func_id, version, args_hash = entry.split("/")
    try:
        output = store.stat(entry + OUTPUT)
    except KeyError:
        return None
    if records is None:
        records, _ = _journal.read_journal(store, f"{func_id}/{version}")
    record = records.get(args_hash) or _journal.JournalRecord()
    last_access = max(output.mtime, record.last_hit)
    recorded = record.metadata.get("time", 0.0)
    return EntryInfo(
        store,
        func_id,
        version,
        args_hash,
        output.size,
        output.mtime,
        last_access,
        record.hits,
        float(recorded) if isinstance(recorded, (int, float)) else 0.0,
    )


def delete_entry(store: Store, entry: str) -> bool:
    """Delete an entry (its journal lines go at the next compaction)."""
    return store.delete(entry + OUTPUT)


def _is_version_dir(version: str, names: Iterable[str]) -> bool:
    """Whether ``version``, holding ``names``, is a version directory joblite wrote."""
    return _VERSION_NAME.fullmatch(version) is not None and not _VERSION_MARKERS.isdisjoint(names)


def cached_functions(store: Store) -> dict[str, list[str]]:
    """``{func_id: [version, ...]}`` of the function directories joblite wrote on ``store``.

    Other names below the root (files or folders a user put there) are not listed.
    """
    functions = {}
    for func_id in store.children(""):
        versions = [
            version
            for version in store.children(func_id)
            if _VERSION_NAME.fullmatch(version) is not None
            and _has_marker(store, f"{func_id}/{version}")
        ]
        if versions:
            functions[func_id] = versions
    return functions


def _has_marker(store: Store, version_dir: str) -> bool:
    # A stat per marker, not a listing: a version directory holds every entry.
    for marker in _VERSION_MARKERS:
        try:
            store.stat(f"{version_dir}/{marker}")
        except KeyError:
            continue
        return True
    return False


def scan_entries(store: Store, func_ids: Iterable[str] | None = None) -> list[EntryInfo]:
    """Every complete entry on ``store`` (optionally only of the given ``func_ids``).

    Only version directories joblite wrote are looked into (see :func:`cached_functions`).
    """
    entries = []
    for func_id in store.children("") if func_ids is None else func_ids:
        for version in store.children(func_id):
            version_dir = f"{func_id}/{version}"
            names = store.children(version_dir)
            if not _is_version_dir(version, names):
                continue
            records, _ = _journal.read_journal(store, version_dir)
            for name in names:
                if name.endswith(OUTPUT):
                    info = entry_info(store, f"{version_dir}/{name[: -len(OUTPUT)]}", records)
                    if info is not None:
                        entries.append(info)
    return entries


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
