"""A damaged entry is detected, logged, deleted and recomputed: never a wrong value."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable

import pytest

from joblite.memory import Memory
from joblite.memory._journal import journal_key


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0xFF])


def _garbage(data: bytes) -> bytes:
    return b"not a joblite file at all"


def _empty(data: bytes) -> bytes:
    return b""


@pytest.mark.parametrize("damage", [_truncate, _flip_last_byte, _garbage, _empty])
def test_damaged_entry_is_recomputed(
    memory: Memory, damage: Callable[[bytes], bytes], caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    @memory.cache
    def f(x: int) -> dict[str, object]:
        calls.append(x)
        return {"x": x, "payload": list(range(1000))}

    expected = {"x": 3, "payload": list(range(1000))}
    assert f(3) == expected
    assert f(3) == expected  # also fills this process's in-memory copy
    store = memory.store
    assert store is not None
    key = f.__cache_key__(3) + ".out"
    store.write_bytes(key, damage(store.read_bytes(key)))

    with caplog.at_level(logging.WARNING, logger="joblite.memory"):
        assert f(3) == expected
    assert "could not be loaded" in caplog.text
    assert calls == [3, 3]
    assert f(3) == expected
    assert calls == [3, 3]


def test_damaged_shelved_result_raises(memory: Memory) -> None:
    from joblite.exceptions import InvalidFileError

    f = memory.cache(lambda x: [x] * 100)
    result = f.call_and_shelve(1)
    store = memory.store
    assert store is not None
    key = f.__cache_key__(1) + ".out"
    store.write_bytes(key, _truncate(store.read_bytes(key)))
    with pytest.raises(InvalidFileError):
        result.get()


def test_missing_or_torn_journal_is_tolerated(memory: Memory) -> None:
    calls = []

    @memory.cache
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    store = memory.store
    assert store is not None
    journal = journal_key(store, f.__cache_key__(1).rsplit("/", 1)[0])
    store.delete(journal)
    assert f(1) == 1
    info = f.lookup(1)
    assert info is not None
    assert info.metadata() == {}
    # A writer killed mid-append leaves a torn last line: later records still count.
    store.append(journal, b'{"k": "abc", "dura')
    f(2)
    info = f.lookup(2)
    assert info is not None
    assert info.metadata()["input_args"] == {"x": "2"}
    assert calls == [1, 2]


def test_leftover_of_a_killed_writer_is_overwritten(local_memory: Memory) -> None:
    # A writer killed mid-write leaves its hidden lock-and-write file behind,
    # half full; the next writer of that entry must not keep any of it.
    calls = []

    @local_memory.cache
    def f(x: int) -> list[int]:
        calls.append(x)
        return [x] * 10

    store = local_memory.store
    assert store is not None
    path = store.local_path(f.__cache_key__(2) + ".out")
    assert path is not None
    head, tail = os.path.split(path)
    os.makedirs(head, exist_ok=True)
    with open(os.path.join(head, f".{tail}.part"), "wb") as leftover:
        leftover.write(b"\x89JOBLITE" + b"\xff" * 100_000)

    assert f(2) == [2] * 10
    fresh = Memory(local_memory.location, verbose=0).cache(f.__wrapped__)
    assert fresh(2) == [2] * 10  # read back from the file, not from memory
    assert calls == [2]
    assert os.path.getsize(path) < 100_000


def increment(x: int) -> int:
    return x + 1


def test_a_crafted_journal_is_skipped_line_by_line(tmp_path: os.PathLike[str]) -> None:
    from joblite.cli import main

    mem = Memory(tmp_path, verbose=0)
    f = mem.cache(increment, cache_validation_callback=lambda metadata: True)
    assert f(1) == 2
    (journal,) = (p for p in mem.store.walk() if p.endswith("/journal"))  # type: ignore[union-attr]
    args_hash = f.__cache_key__(1).rsplit("/", 1)[1]
    crafted = [
        json.dumps({"k": args_hash, "hits": "many", "at": 1}),
        json.dumps({"k": args_hash, "hits": 1, "at": 10**400}),
        json.dumps({"k": args_hash, "hits": "9" * 5000, "at": 1}),
        json.dumps({"k": ["not", "a", "key"], "hits": 1, "at": 1}),
        json.dumps({"k": args_hash, "input_args": ["not", "a", "dict"]}),
        "[1, 2, 3]",
    ]
    with open(os.path.join(mem.store.location, journal), "a") as out:  # type: ignore[union-attr]
        out.write("\n" + "\n".join(crafted) + "\n")
    fresh = Memory(tmp_path, verbose=0).cache(increment, cache_validation_callback=lambda m: True)
    assert fresh(1) == 2
    assert fresh.lookup(1) is not None
    assert main(["cache", "show", str(tmp_path), "increment"]) == 0
