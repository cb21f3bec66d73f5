"""Limits: explicit reduce_size and automatic LRU eviction after writes."""

from __future__ import annotations

import contextlib
import datetime
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

import pytest

from joblite.memory import InMemoryStore, Memory, Store
from joblite.memory._entries import scan_entries
from joblite.memory._eviction import parse_age

from .conftest import STORE_KINDS, make_store


@pytest.mark.parametrize("bad", ["ten", "-1", -5, "5X"])
def test_bad_bytes_limit_is_refused_naming_it(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="bytes_limit"):
        Memory(tmp_path, bytes_limit=bad, verbose=0)  # type: ignore[arg-type]


def test_bytes_limit_of_the_wrong_type_is_a_type_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="bytes_limit"):
        Memory(tmp_path, bytes_limit=True, verbose=0)  # type: ignore[arg-type]


def test_parse_age() -> None:
    assert parse_age("30d") == 30 * 86400
    assert parse_age("12h") == 12 * 3600
    assert parse_age(datetime.timedelta(minutes=2)) == 120
    assert parse_age(5) == 5
    with pytest.raises(ValueError, match="age_limit"):
        parse_age(datetime.timedelta(days=-1))
    with pytest.raises(ValueError, match="age_limit"):
        parse_age("soon")


def _fill(mem: Memory, n: int, size: int = 10_000) -> object:
    f = mem.cache(lambda i, size: b"x" * size)
    for i in range(n):
        f(i, size)
    return f


def _age_entries(mem: Memory, f: object, ages: dict[int, float], size: int = 10_000) -> None:
    """Make entry i look last accessed ``ages[i]`` seconds ago."""
    assert mem.store is not None
    now = time.time()
    for i, age in ages.items():
        key = f.__cache_key__(i, size)  # type: ignore[attr-defined]
        for suffix in (".out", ".hits", ".meta"):
            path = mem.store.local_path(key + suffix)
            if path and os.path.exists(path):
                os.utime(path, (now - age, now - age))


def test_reduce_size_items_keeps_most_recently_used(tmp_path: Path) -> None:
    mem = Memory(tmp_path, verbose=0)
    f = _fill(mem, 6)
    _age_entries(mem, f, {i: 100 - i for i in range(6)})  # entry 5 is the most recent
    _age_entries(mem, f, {0: 1})  # ...but 0 was just used
    assert mem.reduce_size(items_limit=3) == 3
    kept = [i for i in range(6) if f.check_call_in_cache(i, 10_000)]  # type: ignore[attr-defined]
    assert kept == [0, 4, 5]


def test_reduce_size_bytes_and_string_limits(tmp_path: Path) -> None:
    mem = Memory(tmp_path, verbose=0)
    f = _fill(mem, 5, size=100_000)
    _age_entries(mem, f, {i: 100 - i for i in range(5)}, size=100_000)
    mem.reduce_size(bytes_limit="250K")
    kept = [i for i in range(5) if f.check_call_in_cache(i, 100_000)]  # type: ignore[attr-defined]
    assert kept == [3, 4]


def test_reduce_size_age(tmp_path: Path) -> None:
    mem = Memory(tmp_path, verbose=0)
    f = _fill(mem, 4)
    _age_entries(mem, f, {0: 3 * 86400, 1: 2 * 86400})
    assert mem.reduce_size(age_limit=datetime.timedelta(days=1)) == 2
    kept = [i for i in range(4) if f.check_call_in_cache(i, 10_000)]  # type: ignore[attr-defined]
    assert kept == [2, 3]


def test_reduce_size_without_limits_does_nothing(memory: Memory) -> None:
    _fill(memory, 3)
    assert memory.reduce_size() == 0
    assert Memory(None).reduce_size(items_limit=1) == 0


def test_automatic_eviction_by_items(store_kind_memory: Memory) -> None:
    mem = store_kind_memory
    f = _fill(mem, 40, size=1000)
    assert mem.store is not None
    from joblite.memory._entries import scan_entries

    entries = scan_entries(mem.store)
    assert 0 < len(entries) <= 10
    assert f.check_call_in_cache(39, 1000)  # type: ignore[attr-defined]


def test_automatic_eviction_by_bytes(tmp_path: Path) -> None:
    mem = Memory(tmp_path, verbose=0, bytes_limit="200K")
    f = _fill(mem, 30, size=20_000)
    from joblite.memory._entries import scan_entries

    assert mem.store is not None
    total = sum(e.size for e in scan_entries(mem.store))
    assert 0 < total <= 200 * 1024
    assert f.check_call_in_cache(29, 20_000)  # type: ignore[attr-defined]


class _WriteOnlyFile:
    """A file of a store streaming to somewhere that cannot tell how much was written."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner

    def write(self, data: bytes) -> int:
        return self._inner.write(data)


class _StreamingStore(InMemoryStore):
    @contextlib.contextmanager
    def open_write(self, key: str, *, lock: object = None) -> Iterator[BinaryIO]:
        with super().open_write(key, lock=lock) as f:
            yield cast(BinaryIO, _WriteOnlyFile(f))


@pytest.mark.parametrize("store", [None, _StreamingStore()], ids=["local", "write-only-files"])
def test_automatic_eviction_counts_what_each_write_stored(
    tmp_path: Path, store: Store | None
) -> None:
    # Each write adds its file's size to the running estimate (told by the
    # file if it can, else by a stat): 30 entries of 20 kB pass 200 kB.
    mem = Memory(store or tmp_path, verbose=0, bytes_limit="200K")
    f = _fill(mem, 30, size=20_000)
    assert mem.store is not None
    total = sum(e.size for e in scan_entries(mem.store))
    assert 0 < total <= 200 * 1024
    assert f.check_call_in_cache(29, 20_000)  # type: ignore[attr-defined]


@pytest.fixture(params=STORE_KINDS)
def store_kind_memory(request: pytest.FixtureRequest, tmp_path: Path) -> Memory:
    return Memory(make_store(request.param, tmp_path, request), verbose=0, items_limit=10)


def test_bad_limits_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="items_limit"):
        Memory(tmp_path, items_limit=-1)
    with pytest.raises(ValueError, match="bytes_limit"):
        Memory(tmp_path, bytes_limit="lots")
