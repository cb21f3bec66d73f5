"""Each function version's journal: entry metadata and hit counts, appended as JSON lines.

One ``journal`` file per ``<func_id>/<version>`` directory. A miss appends a
*store* record (duration, time, argument reprs); hits are counted in memory
and appended as *hit* records in batches (see :mod:`._access`). Appending to
an existing file is the cheapest write a file system offers, so a miss
creates exactly one file (its result) and a hit creates none.

Readers fold the lines: an entry's metadata is its last store record, its
hit count the sum of the hit records after it, its last access the latest of
those. A torn line (a writer killed mid-append) is skipped. A process keeps
each journal's folded records and how far it has read, and later reads only
the bytes appended since (hits append often: re-reading the whole journal
each time would make every hit with a validation callback cost O(entries)).
A store that cannot append (an object store: see ``stores/fsspec.py``)
names a writer: each writer then has its own ``journal-<writer>`` object,
readers merge them (the latest computation's metadata wins, hits add up),
and compaction merges them into one. A last line without its newline may be
an append still in progress: it is
left for the next read. The whole file is read again when it was replaced
(another identity, e.g. after compaction) or shrank, or when the bytes just
before the read offset are not the ones read last time. Eviction
rewrites a journal without the records of deleted entries once most of its
lines are dead (a record appended concurrently with that rewrite may be
lost: metadata and counts are statistics, the results themselves are not
affected).
"""

from __future__ import annotations

import json
import json.encoder
import math
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Hashable
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


def _writer(store: Store) -> str | None:
    """The store's writer name if it keeps one journal object per writer, else None.

    Object stores cannot append: each writer rewrites its own object
    (``journal-<writer>``), and readers merge them all.
    """
    writer = getattr(store, "journal_writer", None)
    return writer if isinstance(writer, str) else None


def journal_key(store: Store, version_dir: str) -> str:
    """The key this process appends ``version_dir``'s journal records to."""
    writer = _writer(store)
    return f"{version_dir}/{JOURNAL}" if writer is None else f"{version_dir}/{JOURNAL}-{writer}"


def _split(store: Store, entry: str) -> tuple[str, str]:
    version_dir, args_hash = entry.rsplit("/", 1)
    return journal_key(store, version_dir), args_hash


def append_store(store: Store, entry: str, metadata: dict[str, Any], lock: object = None) -> None:
    """Record that ``entry`` was (re)computed, with its ``metadata``.

    ``lock``: the store's lock for ``entry``, if the caller holds it (see
    ``Store.append_locked``).
    """
    key, args_hash = _split(store, entry)
    line = _store_line(args_hash, metadata)
    if lock is None:
        store.append(key, line)
    else:
        store.append_locked(key, line, lock)


def append_hits(store: Store, entry: str, hits: int) -> None:
    """Record ``hits`` more hits of ``entry``, now."""
    key, args_hash = _split(store, entry)
    store.append(key, _line({"k": args_hash, "hits": hits, "at": time.time()}))


def _line(record: dict[str, Any]) -> bytes:
    # The leading newline isolates a torn line left by a writer killed mid-append.
    return ("\n" + _encode(record) + "\n").encode()


# A miss's metadata as ``CallMachinery._metadata`` builds it, in this order.
_STORE_KEYS = ("duration", "time", "input_args", "func")
_quote = json.encoder.encode_basestring_ascii  # json.dumps' own string encoder (C if built)


def _store_line(args_hash: str, metadata: dict[str, Any]) -> bytes:
    """``_line({"k": args_hash, **metadata})``, byte for byte, formatted directly.

    The JSON encoder's machinery (a record dict, its chunk list, the join)
    is most of a line's cost: a miss's usual metadata is formatted here
    (a miss 283k -> 279k instructions, callgrind, Python 3.11); anything else
    (another shape, a non-string value, a float json writes as ``NaN``)
    goes to the encoder.
    """
    if tuple(metadata) == _STORE_KEYS:
        duration, start, args, func = metadata.values()
        if (
            type(duration) is float
            and type(start) is float
            and math.isfinite(duration)
            and math.isfinite(start)
            and type(args) is dict
        ):
            try:
                pairs = ", ".join([f"{_quote(n)}: {_quote(text)}" for n, text in args.items()])
                return (
                    f'\n{{"k": {_quote(args_hash)}, "duration": {duration!r}, '
                    f'"time": {start!r}, "input_args": {{{pairs}}}, "func": {_quote(func)}}}\n'
                ).encode()
            except TypeError:  # a name or value that is not a str: the encoder's rules
                pass
    return _line({"k": args_hash, **metadata})


def _make_encoder() -> Callable[[dict[str, Any]], str]:
    """``json.dumps`` without the set-up it redoes on every call (a miss writes one line)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (e.g. PyPy)
        return json.dumps
    # json.dumps' defaults, but no cycle check: records are trees of str and numbers.
    # (markers, default, encoder, indent, key and item separators, sort_keys,
    # skipkeys, allow_nan), as json.JSONEncoder.iterencode passes them.
    default = json.JSONEncoder().default  # raises TypeError naming the type, as dumps does
    encode = make(
        None, default, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    return lambda record: "".join(encode(record, 0))


_encode = _make_encoder()


def _fold_into(records: dict[str, JournalRecord], data: bytes) -> int:
    """Fold the lines of ``data`` into ``records``; return how many were records."""
    lines = 0
    for line in data.splitlines():
        if not line:
            continue
        try:
            item = json.loads(line)
            args_hash = item.pop("k")
            hit = "hits" in item and "at" in item
            hits, at = (int(item["hits"]), float(item["at"])) if hit else (0, 0.0)
        # A torn line from a writer that died mid-append, or a crafted one
        # (not an object, a "k" that is not a string, counts that are not numbers).
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError):
            continue
        if not isinstance(args_hash, str):
            continue
        lines += 1
        if hit:
            record = records.setdefault(args_hash, JournalRecord())
            record.hits += hits
            record.last_hit = max(record.last_hit, at)
        else:
            records[args_hash] = JournalRecord(item)
    return lines


# Bytes before the read offset compared on each incremental read: they change
# if the file was replaced by one that the store cannot tell apart otherwise.
_OVERLAP = 32


class _ParsedJournal:
    """What this process has folded of one journal, and up to which byte."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        # The (identity, size, mtime) this state is up to date with.
        self.seen: tuple[Hashable, int, float] | None = None
        self.identity: Hashable = None
        self.offset = 0
        self.tail = b""  # the _OVERLAP bytes before ``offset``
        self.records: dict[str, JournalRecord] = {}
        self.lines = 0
        self.full_reads = 0  # whole-file parses, for tests and diagnostics

    def update(self, store: Store, key: str, identity: Hashable, size: int) -> bool:
        """Fold what was appended since the last update; False if ``key`` is gone."""
        start = self.offset - len(self.tail)
        if self.offset and identity == self.identity and size >= self.offset:
            try:
                data = store.read_from(key, start)
            except KeyError:
                return False
            if data[: len(self.tail)] == self.tail:
                self._consume(self.records, data, start, len(self.tail))
                return True
        try:
            data = store.read_bytes(key)
        except KeyError:
            return False
        # Folded apart, so that readers never see a half-built dict.
        records: dict[str, JournalRecord] = {}
        self.lines, self.offset, self.tail = 0, 0, b""
        self._consume(records, data, 0, 0)
        self.records, self.identity = records, identity
        self.full_reads += 1
        return True

    def _consume(
        self, records: dict[str, JournalRecord], data: bytes, start: int, skip: int
    ) -> None:
        # Only whole lines: an unterminated last line may be an append in progress.
        end = data.rfind(b"\n") + 1
        if end <= skip:
            return
        self.lines += _fold_into(records, data[skip:end])
        self.offset = start + end
        self.tail = data[max(end - _OVERLAP, 0) : end]


# Per store object, not per id(store): a new store at another location can get
# a dead one's id, and the same relative journal key, and must not inherit its state.
_CACHE: weakref.WeakKeyDictionary[Store, dict[str, _ParsedJournal]] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def _parsed(store: Store, key: str) -> _ParsedJournal:
    try:
        journals = _CACHE.get(store)
        if journals is None:
            with _CACHE_LOCK:
                journals = _CACHE.setdefault(store, {})
    except TypeError:  # a custom store that cannot be weakly referenced or hashed
        return _ParsedJournal()  # correct, only not incremental
    parsed = journals.get(key)
    if parsed is None:
        with _CACHE_LOCK:
            parsed = journals.get(key)
            if parsed is None:
                if len(journals) > 256:
                    journals.clear()
                parsed = journals[key] = _ParsedJournal()
    return parsed


def read_journal(store: Store, version_dir: str) -> tuple[dict[str, JournalRecord], int]:
    """``({args_hash: record}, number of lines)`` of one version directory's journal.

    Only the bytes appended since the last call are read and folded. The dict
    is this process's live copy: look entries up, but iterate over a copy
    (``list(records.items())``), as other threads may fold new lines into it.
    """
    if _writer(store) is not None:
        return _read_writer_journals(store, version_dir)
    return _read_one(store, f"{version_dir}/{JOURNAL}")


def _journal_keys(store: Store, version_dir: str) -> list[str]:
    prefix = JOURNAL + "-"
    return [
        f"{version_dir}/{name}"
        for name in store.children(version_dir)
        if name == JOURNAL or name.startswith(prefix)
    ]


def _read_writer_journals(store: Store, version_dir: str) -> tuple[dict[str, JournalRecord], int]:
    """Every writer's journal of ``version_dir``, merged (a listing, then the changed ones)."""
    merged: dict[str, JournalRecord] = {}
    lines = 0
    for key in _journal_keys(store, version_dir):
        records, count = _read_one(store, key)
        lines += count
        for args_hash, record in list(records.items()):
            _merge_into(merged, args_hash, record)
    return merged, lines


def _merge_into(merged: dict[str, JournalRecord], args_hash: str, record: JournalRecord) -> None:
    # Writers' objects are not ordered among themselves: the latest computation
    # (its recorded "time") gives the metadata, hits add up.
    have = merged.get(args_hash)
    if have is None:
        merged[args_hash] = JournalRecord(dict(record.metadata), record.hits, record.last_hit)
        return
    if float(record.metadata.get("time", 0.0)) > float(have.metadata.get("time", 0.0)):
        have.metadata = dict(record.metadata)
    have.hits += record.hits
    have.last_hit = max(have.last_hit, record.last_hit)


def _read_one(store: Store, key: str) -> tuple[dict[str, JournalRecord], int]:
    try:
        st = store.stat(key)
    except KeyError:
        return {}, 0
    seen = (st.identity, st.size, st.mtime)
    parsed = _parsed(store, key)
    if parsed.seen == seen:
        return parsed.records, parsed.lines
    with parsed.mutex:
        if parsed.seen != seen:
            if not parsed.update(store, key, st.identity, st.size):
                return {}, 0
            # The stat was taken before reading: bytes appended meanwhile make
            # the next stat differ, so they are read next time.
            parsed.seen = seen
        return parsed.records, parsed.lines


def lookup(store: Store, entry: str) -> JournalRecord:
    version_dir, args_hash = entry.rsplit("/", 1)
    records, _ = read_journal(store, version_dir)
    return records.get(args_hash) or JournalRecord()


def compact(store: Store, version_dir: str, live: set[str], *, merge: bool = False) -> None:
    """Rewrite the journal keeping only the entries in ``live``, if most lines are dead.

    ``merge``: also when a per-writer store has several journal objects there
    (``cache gc`` merges them, so readers list and read fewer).
    """
    records, lines = read_journal(store, version_dir)
    kept = {k: r for k, r in list(records.items()) if k in live}
    several = merge and _writer(store) is not None and len(_journal_keys(store, version_dir)) > 1
    if lines <= 2 * len(kept) + 16 and not several:
        return
    out = []
    for args_hash, record in kept.items():
        out.append(json.dumps({"k": args_hash, **record.metadata}))
        if record.hits:
            out.append(json.dumps({"k": args_hash, "hits": record.hits, "at": record.last_hit}))
    data = ("\n".join(out) + "\n").encode()
    if _writer(store) is None:
        store.write_bytes(f"{version_dir}/{JOURNAL}", data)
        return
    # Merged into one new object; the others go (see the module doc on lost records).
    old = _journal_keys(store, version_dir)
    store.write_bytes(f"{version_dir}/{JOURNAL}-gc{uuid.uuid4().hex[:12]}", data)
    for key in old:
        store.delete(key)
