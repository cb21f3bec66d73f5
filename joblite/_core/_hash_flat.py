"""The fast path of ``hash()``: flat call arguments in one cheap pass.

Most arguments are a tuple, list or dict of plain values (int, float, str,
bytes, bool, None), holding at most flat lists or tuples of them and dicts
keyed by str or by int. Their canonical form is the value itself with each
dict in key order, and the C pickler writes all of it natively, so
``flat_canonical`` checks the shape with a few C-level passes (no recursion,
no cycle bookkeeping) and ``flat_digest`` pickles it with a plain pickler:
no ``reducer_override`` to look up. For anything else ``flat_digest``
returns ``None`` and ``hashing`` takes the general walk. The bytes are
the general walk's, byte for byte: ``tests/core/test_hash_flat.py`` runs
seeded values through both.

Example::

    >>> flat_canonical(({"b": 2, "a": 1}, [1, 2]), tuple)
    ({'a': 1, 'b': 2}, [1, 2])
    >>> flat_canonical(({"k": {1, 2}},), tuple) is None
    True
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from ._hash_functions import FACTORIES

__all__ = ["PLAIN", "PROTOCOL", "Sink", "flat_canonical", "flat_digest"]

# Types the C pickler writes itself, by value: never a reducer_override call.
PLAIN: frozenset[type] = frozenset({int, float, str, bytes, bool, type(None)})
_STR: frozenset[type] = frozenset({str})
_INT: frozenset[type] = frozenset({int})
# The protocol of every digest, on both paths (hashing.py imports it): digests
# persisted in caches depend on it.
PROTOCOL = 5
# Bound once: a method of a module-level frozenset is otherwise looked up on
# every call.
_all_plain = PLAIN.issuperset
_all_str = _STR.issuperset
_all_int = _INT.issuperset


class Sink:
    """File-like target whose ``write`` is a C-level ``list.append``."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.write = self.chunks.append


def flat_canonical(obj: Any, kind: type) -> Any:
    """``obj`` (of type ``kind``) in canonical form if it is flat, else ``None``.

    Flat: a dict as ``_flat_dict`` takes, or a tuple or list of plain values,
    such dicts and tuples or lists of plain values. The result is ``obj``
    itself when nothing needs reordering.
    """
    if kind is dict:
        return _flat_dict(obj)
    # Past a few items one C-level pass is cheaper than the loop below when
    # all are plain; up to 4 the loop alone is (callgrind, the issue's
    # 4 arguments: 14.7k instructions, 16.8k with the pass first).
    if len(obj) > 4 and _all_plain(map(type, obj)):
        return obj
    items = None  # a copy, made once a dict needs reordering
    index = -1
    for item in obj:
        index += 1
        item_kind = type(item)
        if item_kind in PLAIN:
            continue
        if item_kind is dict:
            ordered = _flat_dict(item)
            if ordered is None:
                return None
            if ordered is not item:
                if items is None:
                    items = [*obj]
                items[index] = ordered
        elif not ((item_kind is list or item_kind is tuple) and _all_plain(map(type, item))):
            return None
    if items is None:
        return obj
    return items if kind is list else tuple(items)


def _flat_dict(obj: dict[Any, Any]) -> dict[Any, Any] | None:
    # Keys all str or all int are unique and totally ordered, so key order is
    # the general walk's order (it sorts such items by key).
    if not (
        _all_plain(map(type, obj.values()))
        and (_all_str(map(type, obj)) or _all_int(map(type, obj)))
    ):
        return None
    keys = [*obj]
    ordered = sorted(keys)
    # The pickler writes a dict in insertion order: one already in key order
    # is canonical as it is (3 str keys, in callgrind: 2.8k instructions for
    # this check, 5.7k for a rebuild).
    if keys == ordered:
        return obj
    # From the sorted keys: sorting the items compares tuples (20 str keys:
    # 18.2k instructions, 29.6k with sorted(obj.items())).
    return dict(zip(ordered, map(obj.__getitem__, ordered), strict=True))


# Free (pickler, chunks) pairs. list.pop and list.append are atomic, so
# threads never share one; a plain pickler runs no Python code, so a dump
# never re-enters here.
_POOL: list[tuple[pickle.Pickler, list[bytes]]] = []


def _new_pickler() -> tuple[pickle.Pickler, list[bytes]]:
    sink = Sink()
    pickler = pickle.Pickler(sink, protocol=PROTOCOL)
    # No memo: equal values are written alike, shared or not.
    pickler.fast = True
    return pickler, sink.chunks


def flat_digest(
    obj: Any, kind: type, one_shot: Callable[[bytes], str], hash_name: str
) -> str | None:
    """The digest of ``obj`` (of type ``kind``) if it is flat, else ``None``.

    ``None`` also when the caller's stack is so near Python's recursion limit
    that this path cannot run: the general path then raises the error that
    explains it.
    """
    try:
        canonical = flat_canonical(obj, kind)
    except RecursionError:
        return None
    if canonical is None:
        return None
    try:
        pair = _POOL.pop()
    except IndexError:
        pair = _new_pickler()
    pickler, chunks = pair
    try:
        pickler.dump(canonical)
        if len(chunks) == 1:
            digest = one_shot(chunks[0])
        else:  # big values: the pickler wrote frames and long strings apart
            hasher = FACTORIES[hash_name]()
            for chunk in chunks:
                hasher.update(chunk)
            digest = hasher.hexdigest()
    except RecursionError:
        return None  # a pickler that failed is not pooled again
    finally:
        chunks.clear()
    _POOL.append(pair)
    return digest
