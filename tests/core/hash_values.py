"""Seeded nested values for the digest-stability tests (hypothesis is not installed)."""

from __future__ import annotations

import random
from typing import Any


class Text(str):
    pass


class Number(int):
    pass


class Real(float):
    pass


class Mapping(dict):  # type: ignore[type-arg]
    pass


class Sequence(list):  # type: ignore[type-arg]
    pass


# Values the docs single out: each must keep its own digest.
EDGE_VALUES: dict[str, Any] = {
    "int 1": 1,
    "float 1.0": 1.0,
    "bool True": True,
    "int 0": 0,
    "bool False": False,
    "None": None,
    "zero": 0.0,
    "negative zero": -0.0,
    "nan": float("nan"),
    "inf": float("inf"),
    "int 255": 255,
    "int 256": 256,
    "int 65535": 65535,
    "int 65536": 65536,
    "int -1": -1,
    "int 2**31-1": 2**31 - 1,
    "int 2**31": 2**31,
    "int -2**31": -(2**31),
    "int -2**31-1": -(2**31) - 1,
    "int -128": -128,
    "int -129": -129,
    "int 2**100": 2**100,
    "int -2**100": -(2**100),
    "int 2**2100": 2**2100,
    "str empty": "",
    "str 20": "abcdefghijklmnopqrst",
    "str non-ascii": "héllo wörld, 日本語, 🙂",
    "str surrogate": "a\udc80b",
    "str 300": "x" * 300,
    "bytes empty": b"",
    "bytes 300": bytes(range(256)) + b"y" * 44,
    "tuple empty": (),
    "list empty": [],
    "dict empty": {},
    "set empty": set(),
    "frozenset empty": frozenset(),
    "list [1, 2]": [1, 2],
    "tuple (1, 2)": (1, 2),
    "list [1]": [1],
    "tuple (1,)": (1,),
    "tuple of 4": (1, 2, 3, 4),
    "dict ba": {"b": 2, "a": 1},
    "dict int keys": {3: "c", 1: "a", 2: "b"},
    "dict mixed keys": {1: "a", "b": 2, (3,): None, 2.5: 1, None: 0, False: 3},
    "dict frozenset keys": {frozenset([1, 2]): 1, frozenset([3]): 2},
    "set of str": {"alpha", "beta", "gamma"},
    "set mixed": {1, "a", b"b", (2, 3), None, 2.5},
    "frozenset of int": frozenset(range(10)),
    "list of 1500": list(range(1500)),
    "dict of 1100": {f"k{i}": i for i in range(1100)},
    "subclass str": Text("abc"),
    "subclass int": Number(3),
    "subclass float": Real(1.5),
    "subclass dict": Mapping(b=1, a=2),
    "subclass list": Sequence([1, 2]),
    "dict with subclass keys": {Text("b"): 1, Text("a"): 2},
    "dict str and subclass keys": {"b": 1, Text("a"): 2},
    "set of subclass str": {Text("b"), Text("a")},
    "call args": (42, "abcdefghijklmnopqrst", {"a": 1, "b": 2.5, "c": "x"}, list(range(10))),
    "kwargs": {f"param_{i}": i * 1.5 for i in range(20)},
    "nested": [{"k": {"x", "y"}}, ({"z": [1, 2.5]},), {"deep": ({"a": [()]},)}],
}


def cyclic_values() -> dict[str, Any]:
    """Containers that lead back to themselves."""
    looped: list[Any] = [1]
    looped.append(looped)
    mapping: dict[str, Any] = {"b": 2}
    mapping["self"] = mapping
    pair: list[Any] = ["x"]
    pair.append(({"k": pair},))
    return {"list in itself": looped, "dict in itself": mapping, "through a tuple": pair}


def _atom(rng: random.Random) -> Any:
    kind = rng.randrange(12)
    if kind == 0:
        return rng.randrange(-300, 300)
    if kind == 1:
        return rng.choice([2**31, -(2**31) - 1, 2**64, -(2**70), 65535, 65536, 2**16 + 7])
    if kind == 2:
        return rng.uniform(-1e6, 1e6)
    if kind == 3:
        return rng.choice([0.0, -0.0, float("nan"), float("inf"), 1.0, 2.5])
    if kind == 4:
        return rng.choice([True, False, None])
    if kind == 5:
        return "".join(rng.choice("abcxyz_é日🙂\udc80") for _ in range(rng.randrange(8)))
    if kind == 6:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(6)))
    if kind == 7:
        return rng.choice([Text("t"), Number(7), Real(0.5)])
    if kind == 8:
        return "k" * rng.randrange(250, 260)
    return rng.choice(["a", "b", "", 0, 1, 1.0, True])


def _key(rng: random.Random) -> Any:
    kind = rng.randrange(10)
    if kind < 5:
        return "".join(rng.choice("abcdef") for _ in range(rng.randrange(1, 4)))
    if kind < 7:
        return rng.randrange(-50, 50)
    if kind == 7:
        return (rng.randrange(5), "t")
    if kind == 8:
        return frozenset(rng.sample(range(9), rng.randrange(3)))
    return rng.choice([None, True, 2.5, -0.0, b"k", Text("s")])


def _value(rng: random.Random, depth: int) -> Any:
    if depth > 3 or rng.random() < 0.35:
        return _atom(rng)
    kind = rng.randrange(8)
    size = rng.randrange(6)
    if kind == 0:
        return tuple(_value(rng, depth + 1) for _ in range(size))
    if kind == 1:
        return [_value(rng, depth + 1) for _ in range(size)]
    if kind == 2:  # keys of one type, as call arguments usually have
        return {f"p{rng.randrange(30)}": _value(rng, depth + 1) for _ in range(size)}
    if kind == 3:
        return {rng.randrange(100): _value(rng, depth + 1) for _ in range(size)}
    if kind == 4:
        return {_key(rng): _value(rng, depth + 1) for _ in range(size)}
    if kind == 5:
        return {_key(rng) for _ in range(size)}
    if kind == 6:
        return frozenset(_key(rng) for _ in range(size))
    return rng.choice([Mapping(a=_atom(rng)), Sequence([_atom(rng)])])


def random_values(seed: int, count: int) -> list[Any]:
    """``count`` nested values, the same for a given seed on every run."""
    rng = random.Random(seed)
    return [_value(rng, 0) for _ in range(count)]


class Node:
    """An instance that may lead back to itself through its attributes."""

    def __init__(self, child: Any = None) -> None:
        self.child = child


def instance_cycles() -> dict[str, Any]:
    """Instances and subclasses of list and dict that lead back to themselves."""
    itself = Node()
    itself.child = itself
    holds_a_looped_list = Node([1])
    holds_a_looped_list.child.append(holds_a_looped_list.child)
    two = Node()
    two.child = Node(two)
    sequence = Sequence([1])
    sequence.append(sequence)
    mapping = Mapping(a=1)
    mapping["self"] = mapping
    return {
        "attribute is itself": itself,
        "holds a list in itself": holds_a_looped_list,
        "two instances": two,
        "list subclass in itself": sequence,
        "dict subclass in itself": mapping,
        "through a list subclass": Node(Sequence([itself, sequence])),
    }
