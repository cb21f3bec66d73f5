"""Cache entries on a store: their layout, reading one, deleting one, finding them all.

Layout below the store root (one file per entry)::

    <func_id>/<version>/function.json        name and source of the function
    <func_id>/<version>/journal              metadata and hit counts (see _journal)
    <func_id>/<version>/<args_hash>.out      the result, in the core file format

An entry exists once its ``.out`` file does (it appears atomically). A miss
creates that one file and appends a line to the journal; file creations
cost tens of microseconds or more on many file systems, so they are
counted. An entry's last access (what least-recently-used eviction sorts
by) is the later of its file's mtime and its last journaled hit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import _journal
from .stores.base import Store

__all__ = [
    "FUNCTION_INFO",
    "OUTPUT",
    "EntryInfo",
    "cached_functions",
    "delete_entry",
    "entry_info",
    "read_metadata",
    "scan_entries",
]

OUTPUT = ".out"
FUNCTION_INFO = "function.json"

# A version directory is named by 16 hex digits of the code's hash (see _keys)
# and holds a journal or a function.json: anything else below a store root is
# not joblite's, and scans (hence eviction and the CLI) leave it alone.
_VERSION_NAME = re.compile(r"[0-9a-f]{16}")
_VERSION_MARKERS = frozenset({_journal.JOURNAL, FUNCTION_INFO})


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
        """The entry's metadata from the journal (duration, time, input_args...), ``{}`` if none."""
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
