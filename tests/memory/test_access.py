"""The in-process copies of small entries: bounded, keeping the most used."""

from __future__ import annotations

import pickle

from joblite.memory._access import HotValues

IDENTITY = (1, 2, 3)


def test_hot_values_drop_the_least_recently_used() -> None:
    value = "v" * 1000
    size = len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    hot = HotValues(budget=3 * size)
    for path in ("a", "b", "c"):
        hot.put(path, IDENTITY, value)
    assert hot.get("a", IDENTITY)  # "a" is the oldest, but just used
    hot.put("d", IDENTITY, value)
    assert hot.get("b", IDENTITY) is None  # the least recently used went
    assert hot.get("c", IDENTITY)
    hot.put("e", IDENTITY, value)
    assert hot.get("c", IDENTITY)  # used since the last eviction: kept
    assert hot.get("e", IDENTITY)  # just put: kept
    assert sum(hot.get(path, IDENTITY) is not None for path in "abcde") == 3


def test_hot_values_check_the_file_identity() -> None:
    hot = HotValues()
    hot.put("a", IDENTITY, [1, 2])
    assert pickle.loads(hot.get("a", IDENTITY) or b"") == [1, 2]
    assert hot.get("a", (1, 2, 4)) is None
    hot.clear()
    assert hot.get("a", IDENTITY) is None
