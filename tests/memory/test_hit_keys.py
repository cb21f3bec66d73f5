"""The hit shortcut keys a call as ``joblite.hash`` does, and falls back when a copy fails.

``MemorizedFunc.__call__`` hashes flat positional arguments through the hash's
flat path directly and checks this process's copy inline; these tests pin
that its keys are the general path's (entries written by any other path or
process are found) and that a copy which no longer loads is handled as
loading a damaged file is.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import joblite
from joblite.memory import Memory, _access

FLAT_AND_NOT = [
    (1, "a" * 20, {"a": 1, "b": 2, "c": 3}, list(range(10))),  # the benchmark's call
    (0, "", {"c": 3, "a": 1, "b": 2}, [1.5, None, True]),  # a dict out of key order
    (-(2**70), "é", {3: "x", 1: "y"}, (b"raw", 2.0)),  # int keys, a big int, a tuple
    (1, "s", {"k": {1, 2}}, []),  # not flat: a set inside a dict
    (1, "s", {"a": 1}, [[1, [2]]]),  # not flat: nested twice
    (1, "s", {1: 1, "a": 2}, []),  # not flat: mixed key types
    (1, "s", {}, np.arange(3)),  # not flat: an array
    (True, 1.0, {"a": 1}, frozenset({1})),  # not flat: a frozenset
]


@pytest.mark.parametrize("args", FLAT_AND_NOT, ids=range(len(FLAT_AND_NOT)))
def test_a_call_is_stored_under_the_general_hash_of_its_arguments(
    tmp_path: Path, args: tuple[Any, ...]
) -> None:
    memory = Memory(tmp_path, verbose=0)
    calls = []

    @memory.cache
    def f(x: Any, s: Any, d: Any, values: Any) -> int:
        calls.append(x)
        return 1

    assert f(*args) == 1  # a miss through the shortcut: stored under its key
    version_dir = f.__cache_key__(*args).rpartition("/")[0]
    path = memory.store_backend.local_path(f"{version_dir}/{joblite.hash(args)}.out")
    assert path is not None
    assert Path(path).is_file()
    assert f(*args) == 1
    assert f.check_call_in_cache(*args)
    assert len(calls) == 1


def test_equal_dicts_in_any_order_share_one_entry(tmp_path: Path) -> None:
    memory = Memory(tmp_path, verbose=0)
    calls = []

    @memory.cache
    def f(d: dict[str, int]) -> int:
        calls.append(d)
        return sum(d.values())

    assert f({"a": 1, "b": 2}) == f({"b": 2, "a": 1}) == f(d={"b": 2, "a": 1}) == 3
    assert len(calls) == 1


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


def test_a_held_copy_that_no_longer_loads_is_discarded_and_recomputed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_access, "_SETTLED_FINE_NS", -1)
    monkeypatch.setattr(_access, "_SETTLED_COARSE_NS", -1)
    memory = Memory(tmp_path, verbose=0)
    made = Point
    calls = []

    @memory.cache
    def f(x: int) -> Point:
        calls.append(x)
        return made(x)

    assert f(1).x == 1  # a miss
    assert f(1).x == 1  # loaded from the file: a copy is held
    assert f(1).x == 1
    assert len(calls) == 1
    # The class moved away: the copy (and the file) can no longer be unpickled.
    monkeypatch.delattr(sys.modules[__name__], "Point")
    with caplog.at_level(logging.WARNING, logger="joblite.memory"):
        assert f(1).x == 1
    assert len(calls) == 2  # recomputed, not an AttributeError out of the hit
    assert "could not be loaded" in caplog.text
