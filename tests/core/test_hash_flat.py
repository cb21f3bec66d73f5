"""The fast path for flat arguments gives the general walk's digests, byte for byte."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from joblite import hash as jhash
from joblite._core import _hash_flat, hashing

from .hash_values import Mapping, Number, Real, Sequence, Text


def _general_digest(value: object, monkeypatch: pytest.MonkeyPatch, **options: Any) -> str:
    """The digest through the general walk, with the fast path switched off."""
    with monkeypatch.context() as patch:
        patch.setattr(hashing, "flat_digest", lambda *arguments: None)
        return jhash(value, **options)


def _plain(rng: random.Random) -> Any:
    return rng.choice(
        [
            0,
            1,
            -1,
            255,
            256,
            65536,
            2**31,
            -(2**31) - 1,
            2**70,
            -(2**100),
            rng.randrange(-1000, 1000),
            0.0,
            -0.0,
            float("nan"),
            float("inf"),
            rng.uniform(-1e6, 1e6),
            True,
            False,
            None,
            "",
            "a" * rng.randrange(30),
            "héllo 日本 🙂",
            "a\udc80b",
            b"",
            bytes(rng.randrange(256) for _ in range(rng.randrange(5))),
        ]
    )


def _near_miss(rng: random.Random) -> Any:
    """A value the fast path must leave to the general walk."""
    return rng.choice(
        [
            Text("t"),
            Number(3),
            Real(0.5),
            Mapping(b=1, a=2),
            Sequence([1]),
            complex(1, 2),
            bytearray(b"x"),
            range(3),
            {3, 1, 2},
            frozenset({"b", "a"}),
            set(),
            (1, [2]),
            [{"a": 1}],
            ({"b": {"y", "x"}},),
            {"b": [1], "a": 2},
            {1: "a", "b": 2},
            {True: 1, 2: 0},
            {1.5: 2, 0.5: 1},
            {Text("b"): 1, "a": 2},
            {(1,): 1},
        ]
    )


def _flat_dict(rng: random.Random, miss: float) -> dict[Any, Any]:
    size = rng.randrange(6)
    if rng.random() < 0.5:
        keys: list[Any] = rng.sample(["a", "b", "c", "ab", "é", "日", "k\udc80", "", "B"], size)
    else:
        keys = rng.sample(range(-5, 2**40, 2**37), size)
    if rng.random() < 0.5:
        keys.sort()  # already canonical, kept as it is
    return {key: _near_miss(rng) if rng.random() < miss else _plain(rng) for key in keys}


def _item(rng: random.Random, miss: float) -> Any:
    kind = rng.randrange(5)
    if rng.random() < miss:
        return _near_miss(rng)
    if kind == 0:
        return _flat_dict(rng, miss)
    if kind == 1:
        return [_plain(rng) for _ in range(rng.randrange(12))]
    if kind == 2:
        return tuple(_plain(rng) for _ in range(rng.randrange(4)))
    return _plain(rng)


def flat_values(seed: int, count: int, miss: float) -> list[Any]:
    """Tuples, lists and dicts shaped like call arguments; ``miss``: share of near misses."""
    rng = random.Random(seed)
    values: list[Any] = []
    for _ in range(count):
        kind = rng.randrange(3)
        if kind == 0:
            values.append(_flat_dict(rng, miss))
        else:
            items = [_item(rng, miss) for _ in range(rng.randrange(6))]
            values.append(items if kind == 1 else tuple(items))
    return values


@pytest.mark.parametrize("miss", [0.0, 0.05, 0.3])
@pytest.mark.parametrize("hash_name", ["xxh3_128", "md5"])
def test_flat_values_hash_as_through_the_general_walk(
    miss: float, hash_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = flat_values(7, 400, miss)
    fast = [jhash(value, hash_name=hash_name) for value in values]
    general = [_general_digest(value, monkeypatch, hash_name=hash_name) for value in values]
    differ = [values[i] for i, (a, b) in enumerate(zip(fast, general, strict=True)) if a != b]
    assert not differ, differ[:3]
    taken = sum(_hash_flat.flat_canonical(v, type(v)) is not None for v in values)
    if miss == 0.0:
        assert taken == len(values)
    else:  # both paths were exercised
        assert 0 < taken < len(values)


@pytest.mark.parametrize("value", [_near_miss(random.Random(i)) for i in range(40)], ids=repr)
def test_values_the_general_walk_must_see_are_left_to_it(value: Any) -> None:
    for wrapped in ((1, value), [value], {"k": value}, ({"k": value},)):
        assert _hash_flat.flat_canonical(wrapped, type(wrapped)) is None, wrapped


def test_a_dict_out_of_key_order_is_reordered_and_one_in_order_is_kept() -> None:
    in_order = {"a": 1, "b": 2}
    assert _hash_flat.flat_canonical(in_order, dict) is in_order
    reordered = _hash_flat.flat_canonical({2: "x", 1: "y"}, dict)
    assert list(reordered.items()) == [(1, "y"), (2, "x")]
    assert jhash({"b": 2, "a": 1}) == jhash(in_order)


def test_values_bigger_than_a_pickle_frame_hash_as_through_the_general_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Past 64 KiB the pickler writes frames, and long strings, as separate chunks.
    values = [
        ("x" * 200_000, 1),
        [b"y" * 70_000, "z" * 70_000, {"k": "w" * 100_000}],
        list(range(50_000)),
        {f"key{i}": i for i in range(20_000)},
    ]
    for hash_name in ("xxh3_128", "sha256"):
        for value in values:
            assert jhash(value, hash_name=hash_name) == _general_digest(
                value, monkeypatch, hash_name=hash_name
            )


def test_flat_values_hash_alike_from_many_threads() -> None:
    values = flat_values(3, 200, 0.0)
    expected = [jhash(v) for v in values]
    results: list[list[str]] = []

    def work() -> None:
        results.append([jhash(v) for v in values])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4
