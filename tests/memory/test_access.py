"""The in-process copies of small entries: bounded, keeping the most used."""

from __future__ import annotations

import os
import pickle
from types import SimpleNamespace
from typing import cast

from joblite.memory._access import UNPICKLE, HotValues, file_identity


def fake_stat(ino: int = 1, ctime_ns: int = 1_000_000_001) -> os.stat_result:
    """A file's ``lstat`` as HotValues reads it: written long ago unless told."""
    return cast(
        os.stat_result,
        SimpleNamespace(
            st_ino=ino, st_dev=2, st_size=3, st_mtime_ns=ctime_ns, st_ctime_ns=ctime_ns
        ),
    )


STAT = fake_stat()


def held(hot: HotValues, key: str) -> bool:
    item = hot.items.get(key)
    return item is not None and item[0] == file_identity(STAT)


def test_hot_values_drop_the_least_recently_used() -> None:
    value = ["v" * 1000]
    size = len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    hot = HotValues(budget=3 * size)
    for key in ("a", "b", "c"):
        hot.put(key, STAT, value)
    hot.hits.add("a")  # "a" is the oldest, but just used
    hot.put("d", STAT, value)
    assert not held(hot, "b")  # the least recently used went
    assert held(hot, "c")
    hot.hits.add("c")
    hot.put("e", STAT, value)
    assert held(hot, "c")  # used since the last eviction: kept
    assert held(hot, "e")  # just put: kept
    assert sum(held(hot, key) for key in "abcde") == 3


def test_hot_values_keep_a_pickle_and_the_file_identity() -> None:
    hot = HotValues()
    hot.put("a", STAT, [1, 2])
    identity, data, kept = hot.items["a"]
    assert identity == file_identity(STAT)
    assert kept is UNPICKLE
    assert pickle.loads(data) == [1, 2]
    hot.clear()
    assert not hot.items
