"""A miss's argument reprs (``input_args``) are ``short_repr``'s, whatever the value.

``arg_reprs`` (and ``short_repr``'s own fast checks for plain values) must
give exactly what the general bounded repr would, for plain values and for
everything else.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import Any

from joblite.memory._results import _all_plain, arg_reprs, short_repr


class Odd:
    def __repr__(self) -> str:
        return "Odd()" * 100


def _values() -> list[Any]:
    rng = random.Random(7)
    scalars: list[Any] = [0, -1, 2**80, 1.5, float("nan"), True, None, 1j, "", "a" * 200]
    scalars += ["a" * 201, "é\n\"'", b"bytes", Odd()]
    values = list(scalars)
    for size in (0, 1, 5, 32, 33, 100):
        items = [rng.choice(scalars) for _ in range(size)]
        values += [items, tuple(items), set(filter(lambda v: not isinstance(v, Odd), items[:3]))]
        keys = [rng.choice(["k", "x" * 200, "x" * 201, "é"]) + str(i) for i in range(size)]
        values.append(dict(zip(keys, items, strict=True)))
        values.append(dict(zip(range(size), items, strict=True)))  # int keys
        values.append(OrderedDict(zip(keys, items, strict=True)))
        values.append([items])  # nested
    values += [{"a": [1, 2]}, {("t",): 1}, {"a": "s" * 201}, {"x" * 199: 1.0}]
    return values


def test_arg_reprs_are_short_reprs() -> None:
    values = _values()
    names = tuple(f"a{i}" for i in range(len(values)))
    assert arg_reprs(names, tuple(values)) == {
        n: short_repr(v) for n, v in zip(names, values, strict=True)
    }
    for value in values:  # one by one too: the dict is ordered as the names
        assert arg_reprs(("x",), (value,)) == {"x": short_repr(value)}


def test_all_plain_with_str_only_items() -> None:
    assert _all_plain(["a", "b" * 200])
    assert not _all_plain(["a", "b" * 201])
    assert _all_plain({"k": 1, "j": 2})
    assert not _all_plain({"k" * 201: 1})
    assert _all_plain([1, "a"])
    assert not _all_plain([1, "a" * 201])
