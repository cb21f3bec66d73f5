"""The journal is read incrementally: hits and shelving stay O(new bytes), not O(entries)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from joblite.memory import Memory, Store, _journal, expires_after
from joblite.memory._journal import append_hits, append_store, read_journal

VERSION_DIR = "f/0123456789abcdef"
KEY = f"{VERSION_DIR}/{_journal.JOURNAL}"


def is_journal(key: str) -> bool:
    """A journal's key (``journal``, or ``journal-<writer>`` on an object store)."""
    return key.rsplit("/", 1)[-1].startswith(_journal.JOURNAL)


def count_journal_reads(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes of journal returned by each read of ``store`` from now on."""
    sizes: list[int] = []
    real_read_bytes, real_read_from = store.read_bytes, store.read_from

    def read_bytes(key: str) -> bytes:
        data = real_read_bytes(key)
        if is_journal(key):
            sizes.append(len(data))
        return data

    def read_from(key: str, offset: int) -> bytes:
        data = real_read_from(key, offset)
        if is_journal(key):
            sizes.append(len(data))
        return data

    monkeypatch.setattr(store, "read_bytes", read_bytes)
    monkeypatch.setattr(store, "read_from", read_from)
    return sizes


def needs_one_journal(store: Store | None) -> None:
    """Skip where journals are one object per writer, rewritten whole (object stores).

    Merging them is tested in test_fsspec_store.py.
    """
    if getattr(store, "journal_writer", None) is not None:
        pytest.skip("an object store keeps one journal object per writer")


def square(x: int) -> int:
    return x * x


def test_hits_with_a_callback_read_only_what_was_appended(
    memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs_one_journal(memory.store)
    n = 200
    f = memory.cache(square, cache_validation_callback=expires_after(hours=1))
    assert [f(i) for i in range(n)] == [i * i for i in range(n)]
    store = memory.store
    assert store is not None
    (version,) = store.children(f.func_id)
    sizes = count_journal_reads(store, monkeypatch)
    # Each first hit of an entry appends a hit record, which the next hit's
    # callback lookup must see: re-reading the whole journal each time would
    # read about n * journal size bytes.
    assert [f(i) for i in range(n)] == [i * i for i in range(n)]
    journal_size = store.stat(f"{f.func_id}/{version}/{_journal.JOURNAL}").size
    assert sum(sizes) <= 2 * journal_size
    parsed = _journal._parsed(store, f"{f.func_id}/{version}/{_journal.JOURNAL}")
    assert parsed.full_reads == 1


def test_call_and_shelve_does_not_read_the_journal_back(
    memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = memory.cache(square)
    f(-1)  # the journal exists
    assert memory.store is not None
    sizes = count_journal_reads(memory.store, monkeypatch)
    results = [f.call_and_shelve(i) for i in range(50)]
    assert sizes == []
    assert [r.get() for r in results] == [i * i for i in range(50)]
    assert results[7].metadata["input_args"] == {"x": "7"}
    assert results[7].duration is not None


def test_a_torn_append_is_read_once_complete(store: Store) -> None:
    needs_one_journal(store)
    append_store(store, f"{VERSION_DIR}/a", {"time": 1.0})
    append_hits(store, f"{VERSION_DIR}/a", 2)
    records, lines = read_journal(store, VERSION_DIR)
    assert (records["a"].hits, lines) == (2, 2)
    line = _journal._line({"k": "a", "hits": 3, "at": 5.0})
    store.append(KEY, line[:12])  # a writer half-way through its append
    records, lines = read_journal(store, VERSION_DIR)
    assert (records["a"].hits, lines) == (2, 2)
    store.append(KEY, line[12:])
    records, lines = read_journal(store, VERSION_DIR)
    assert (records["a"].hits, lines) == (5, 3)
    append_hits(store, f"{VERSION_DIR}/a", 1)
    assert read_journal(store, VERSION_DIR)[0]["a"].hits == 6
    assert _journal._parsed(store, KEY).full_reads == 1


def test_a_line_torn_by_a_dead_writer_is_skipped(store: Store) -> None:
    append_store(store, f"{VERSION_DIR}/a", {"time": 1.0})
    read_journal(store, VERSION_DIR)
    store.append(KEY, _journal._line({"k": "a", "hits": 3, "at": 5.0})[:12])  # then it died
    append_hits(store, f"{VERSION_DIR}/a", 1)
    records, lines = read_journal(store, VERSION_DIR)
    assert (records["a"].hits, lines) == (1, 2)


@pytest.mark.parametrize("size", ["shorter", "same", "longer"])
def test_a_replaced_journal_is_read_afresh(store: Store, size: str) -> None:
    needs_one_journal(store)
    for i in range(5):
        append_store(store, f"{VERSION_DIR}/e{i}", {"time": float(i)})
    old: dict[str, Any] = dict(read_journal(store, VERSION_DIR)[0])
    assert sorted(old) == [f"e{i}" for i in range(5)]
    before = store.stat(KEY).size
    # As compaction (or another process's rewrite) does: other content, one write.
    lines = [_journal._line({"k": f"n{i}", "time": float(i)}) for i in range(5)]
    data = b"".join(lines)
    if size == "shorter":
        data = b"".join(lines[:2])
    elif size == "longer":
        data += b"".join(_journal._line({"k": f"m{i}", "time": 0.0}) for i in range(5))
    else:
        assert len(data) == before
    store.write_bytes(KEY, data)
    records, n_lines = read_journal(store, VERSION_DIR)
    assert not set(records) & set(old)
    assert n_lines == len(records)


def test_compaction_keeps_counts_right(tmp_path: Path) -> None:
    mem = Memory(tmp_path, verbose=0)
    f = mem.cache(square)
    for i in range(60):
        f(i)
        f(i)
    assert mem.reduce_size(items_limit=10) == 50
    f(59)
    info = f.lookup(59)
    assert info is not None
    assert info.hits == 2
    assert info.metadata()["input_args"] == {"x": "59"}


@pytest.mark.parametrize(
    "record",
    [
        {"duration": 1e-06, "time": 1764556351.29, "input_args": {"s": "'é\"\\n'"}, "func": "m.f"},
        {"hits": 3, "at": float("nan")},
        {"v": float("-inf"), "b": True, "n": None, "l": [1, 2.5]},
    ],
    ids=["store", "hits", "other-json"],
)
def test_journal_lines_are_what_json_dumps_writes(record: dict[str, Any]) -> None:
    # Lines are encoded by a JSON encoder built once (json.dumps rebuilds one
    # per call); what lands in the journal must not change.
    line = _journal._line({"k": "ab12", **record})
    assert line == ("\n" + json.dumps({"k": "ab12", **record}) + "\n").encode()


def test_unencodable_metadata_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        _journal._line({"k": "ab12", "value": object()})


def test_a_store_does_not_inherit_another_stores_journal_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same relative journal key in two cache locations, and the second store
    # object at the address a first, dead one had (simulated: every id() is 0):
    # it must fold its own file from scratch, not continue the first one's state.
    from joblite.memory.stores.local import FileStore

    monkeypatch.setattr(_journal, "id", lambda obj: 0, raising=False)
    first = FileStore(str(tmp_path / "one"))
    append_store(first, f"{VERSION_DIR}/a", {"time": 1.0})
    assert set(read_journal(first, VERSION_DIR)[0]) == {"a"}
    second = FileStore(str(tmp_path / "two"))
    append_store(second, f"{VERSION_DIR}/b", {"time": 1.0})
    assert set(read_journal(second, VERSION_DIR)[0]) == {"b"}
    assert _journal._parsed(second, KEY).full_reads == 1
