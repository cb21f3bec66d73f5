"""Each function version's journal: entry metadata and hit counts, appended as JSON lines.

One ``journal`` file per ``<func_id>/<version>`` directory. A miss appends a
*store* record (duration, time, argument reprs); hits are counted in memory
and appended as *hit* records in batches (see :mod:`._access`). Appending to
an existing file is the cheapest write a file system offers, so a miss
creates exactly one file (its result) and a hit creates none.

Readers fold the lines: an entry's metadata is its last store record, its
hit count the sum of the hit records after it, its last access the latest of
those. A torn last line (a writer killed mid-append) is skipped. Eviction
rewrites a journal without the records of deleted entries once most of its
lines are dead (a record appended concurrently with that rewrite may be
lost: metadata and counts are statistics, the results themselves are not
affected).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .stores.base import Store

__all__ = ["JOURNAL", "JournalRecord", "append_hits", "append_store", "compact", "read_journal"]

JOURNAL = "journal"


@dataclass
class JournalRecord:
    """What the journal knows of one entry."""

    metadata: dict[str, Any] = field(default_factory=dict)
    hits: int = 0
    last_hit: float = 0.0


def _split(entry: str) -> tuple[str, str]:
    version_dir, args_hash = entry.rsplit("/", 1)
    return f"{version_dir}/{JOURNAL}", args_hash


def append_store(store: Store, entry: str, metadata: dict[str, Any]) -> None:
    """Record that ``entry`` was (re)computed, with its ``metadata``."""
    key, args_hash = _split(entry)
    store.append(key, _line({"k": args_hash, **metadata}))


def append_hits(store: Store, entry: str, hits: int) -> None:
    """Record ``hits`` more hits of ``entry``, now."""
    key, args_hash = _split(entry)
    store.append(key, _line({"k": args_hash, "hits": hits, "at": time.time()}))


def _line(record: dict[str, Any]) -> bytes:
    # The leading newline isolates a torn line left by a writer killed mid-append.
    return ("\n" + json.dumps(record) + "\n").encode()


def _fold(data: bytes) -> tuple[dict[str, JournalRecord], int]:
    records: dict[str, JournalRecord] = {}
    lines = 0
    for line in data.splitlines():
        if not line:
            continue
        try:
            item = json.loads(line)
            args_hash = item.pop("k")
        except (ValueError, KeyError, AttributeError, TypeError):
            continue  # a torn line from a writer that died mid-append
        lines += 1
        if "hits" in item and "at" in item:
            record = records.setdefault(args_hash, JournalRecord())
            record.hits += int(item["hits"])
            record.last_hit = max(record.last_hit, float(item["at"]))
        else:
            records[args_hash] = JournalRecord(item)
    return records, lines


_CACHE: dict[tuple[int, str], tuple[tuple[int, float], dict[str, JournalRecord], int]] = {}
_CACHE_LOCK = threading.Lock()


def read_journal(store: Store, version_dir: str) -> tuple[dict[str, JournalRecord], int]:
    """``({args_hash: record}, number of lines)`` of one version directory's journal.

    Parsed once per change of the file (size and mtime), so repeated lookups are cheap.
    """
    key = f"{version_dir}/{JOURNAL}"
    try:
        st = store.stat(key)
    except KeyError:
        return {}, 0
    cache_key = (id(store), key)
    cached = _CACHE.get(cache_key)
    if cached is not None and cached[0] == (st.size, st.mtime):
        return cached[1], cached[2]
    try:
        data = store.read_bytes(key)
    except KeyError:
        return {}, 0
    records, lines = _fold(data)
    with _CACHE_LOCK:
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[cache_key] = ((st.size, st.mtime), records, lines)
    return records, lines


def lookup(store: Store, entry: str) -> JournalRecord:
    version_dir, args_hash = entry.rsplit("/", 1)
    records, _ = read_journal(store, version_dir)
    return records.get(args_hash) or JournalRecord()


def compact(store: Store, version_dir: str, live: set[str]) -> None:
    """Rewrite the journal keeping only the entries in ``live``, if most lines are dead."""
    records, lines = read_journal(store, version_dir)
    kept = {k: r for k, r in records.items() if k in live}
    if lines <= 2 * len(kept) + 16:
        return
    out = []
    for args_hash, record in kept.items():
        out.append(json.dumps({"k": args_hash, **record.metadata}))
        if record.hits:
            out.append(json.dumps({"k": args_hash, "hits": record.hits, "at": record.last_hit}))
    store.write_bytes(f"{version_dir}/{JOURNAL}", ("\n".join(out) + "\n").encode())
