"""``Memory(lock=False)``: a miss writes its entry and journal line in one held directory.

Without the lock, a miss still writes its entry atomically (a private temp
file renamed into place) and appends its journal line, walking down to the
entry's directory once for both, as a locked miss does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from joblite._core.fsutil import TEMP_PREFIX
from joblite.memory import Memory


def square(x: int) -> int:
    return x * x


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("not today")


def unpicklable(x: int) -> Any:
    return Unpicklable()


def _counting(real: Callable[..., Any], calls: list[str], name: str) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return real(*args, **kwargs)

    return counted


def _version_dir(cache: Path) -> Path:
    [journal] = cache.rglob("journal")
    return journal.parent


def test_an_unlocked_miss_walks_to_the_entry_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = Memory(tmp_path / "cache", verbose=0, lock=False).cache(square)
    assert f(1) == 1  # the first miss makes the directories and function.json
    calls: list[str] = []
    for name in ("open", "close", "stat", "lstat", "fstat", "rename", "replace", "fchmod"):
        monkeypatch.setattr(os, name, _counting(getattr(os, name), calls, name))
    assert f(2) == 4
    monkeypatch.undo()
    # Two directories walked, the temp file, the journal: no second walk for the
    # journal, no look for a file to replace, no chmod.
    assert calls.count("open") == 4, calls
    assert "fchmod" not in calls
    assert len(calls) <= 14, calls
    assert f(2) == 4
    assert f.check_call_in_cache(2)
    assert f.call_and_shelve(2).metadata["input_args"] == {"x": "2"}


def test_an_unlocked_entry_is_private_and_leaves_no_temp_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    f = Memory(cache, verbose=0, lock=False).cache(square)
    for x in range(3):
        assert f(x) == x * x
    version = _version_dir(cache)
    names = sorted(p.name for p in version.iterdir())
    assert not [n for n in names if n.startswith(TEMP_PREFIX)]
    entries = [version / n for n in names if n.endswith(".out")]
    assert len(entries) == 3
    # As a locked miss's entry (its lock file renamed into place): owner only.
    assert {p.stat().st_mode & 0o777 for p in entries} == {0o600}


def test_an_unlocked_miss_that_cannot_be_stored_leaves_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    f = Memory(cache, verbose=0, lock=False).cache(unpicklable)
    assert isinstance(f(1), Unpicklable)  # returned, uncached (logged)
    assert not f.check_call_in_cache(1)
    leftovers = [p.name for p in cache.rglob("*") if p.is_file()]
    assert not [n for n in leftovers if n.startswith(TEMP_PREFIX) or n.endswith(".out")]


def test_a_link_planted_at_an_unlocked_entry_is_replaced_not_followed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    f = Memory(cache, verbose=0, lock=False).cache(square)
    assert f(1) == 1
    [entry] = _version_dir(cache).glob("*.out")
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    entry.unlink()
    entry.symlink_to(outside)
    assert f(1) == 1  # the link is refused as an entry: recomputed and stored
    assert outside.read_bytes() == b"precious"
    assert not entry.is_symlink()
    assert f(1) == 1


def test_unlocked_misses_from_threads_store_whole_entries(tmp_path: Path) -> None:
    f = Memory(tmp_path / "cache", verbose=0, lock=False).cache(square)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for x in range(20):
                assert f(x) == x * x
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(f.check_call_in_cache(x) for x in range(20))
    version = _version_dir(tmp_path / "cache")
    assert not [p for p in version.iterdir() if p.name.startswith(TEMP_PREFIX)]
