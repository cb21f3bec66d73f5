"""How deep ``hash()`` follows a value, and the error past that.

The C pickler recurses on the C stack once per level, bounded only by
Python's recursion limit. Containers are walked (and bounded) before
pickling, but instances are reduced by the pickler as it goes: under a raised
limit a chain of 10^5 small objects overflowed the 8 MB main stack (SIGSEGV;
joblib 1.6 crashes the same way). ``note_children`` lets the pickler count
that nesting itself; ``deepest`` reads the count when Python's limit comes
first, and ``reduction_loop`` is the error for a value that never ends.
"""

from __future__ import annotations

import sys
from typing import Any

from joblite.exceptions import NestingTooDeepError

__all__ = [
    "MAX_DEPTH",
    "SAFE_RECURSION_LIMIT",
    "deepest",
    "note_children",
    "reduction_loop",
    "too_deep",
]

# Containers nested deeper than this raise NestingTooDeepError. With a raised
# limit, 10^5 nested tuples overflowed the 8 MB main stack and 5 * 10^4 did
# not, so the bound is joblite's own, far below.
MAX_DEPTH = 5_000
# Up to this recursion limit, Python's own RecursionError comes before the C
# stack runs out: a chain of 10^5 instances hashed under a limit of 50,000
# raised RecursionError, under 100,000 it crashed; 5x below the first.
SAFE_RECURSION_LIMIT = 10_000

_ATOMS: frozenset[type] = frozenset({int, float, str, bytes, bool, type(None), complex})
# How a reduction hands over the items of a list or dict subclass (see below).
_LIST_ITERATOR: type[Any] = type(iter([]))


def too_deep(depth: int) -> NestingTooDeepError:
    """The error for a value nested ``depth`` levels deep, with the reason.

    ``depth`` 0 means Python's limit came before hash() followed any nesting:
    the caller's own stack had used it up.

    Example::

        >>> str(too_deep(0))[:55]
        "cannot hash this value within Python's recursion limit "
    """
    limit = sys.getrecursionlimit()
    if depth >= MAX_DEPTH:
        reason = f"hash() follows at most {MAX_DEPTH} levels"
    elif depth < 1:
        return NestingTooDeepError(
            f"cannot hash this value within Python's recursion limit ({limit}): the "
            "call stack had reached it before hash() followed any nesting; call "
            "hash() from a shallower stack, or raise the limit with sys.setrecursionlimit"
        )
    else:
        reason = (
            f"deeper than Python's recursion limit ({limit}) lets "
            f"hash() follow; sys.setrecursionlimit raises that, up to {MAX_DEPTH} levels"
        )
    levels = "level" if depth == 1 else "levels"
    return NestingTooDeepError(
        f"cannot hash a value nested more than {depth} {levels} deep: {reason}"
    )


def note_children(depths: dict[int, int], reduced: tuple[Any, ...], depth: int) -> None:
    """Record in ``depths`` (by id) how deep each object inside ``reduced`` sits.

    ``reduced`` is what the pickler is about to save for an object found
    ``depth`` levels deep; the objects in it it will reduce in turn. Each
    nesting counts one level, as a container does in the walk before
    pickling: the reduction's parts (its arguments, its state, its items)
    are the object's own contents, so an object held in an attribute of
    another sits one level below it, and one in a list there two. Raises
    :class:`~joblite.exceptions.NestingTooDeepError` past ``MAX_DEPTH``.

    Example::

        >>> depths = {}
        >>> note_children(depths, (dict, ({"k": ...},)), 0)
        >>> depths[id(...)]
        2
    """
    # The parts start at the object's own level: the pickler saves each
    # part, never the reduction tuple itself.
    stack: list[tuple[Any, int]] = [(part, depth) for part in reduced]
    while stack:
        value, level = stack.pop()
        kind = type(value)
        if kind in _ATOMS:
            continue
        if level > MAX_DEPTH:
            raise too_deep(level)
        if kind is tuple or kind is list or kind is set or kind is frozenset:
            stack.extend([(item, level + 1) for item in value])
        elif kind is _LIST_ITERATOR:
            # The items of a list or dict subclass (hashing's reductions put
            # them in lists): the iterator's own reduction, ``(iter, (items,),
            # index)``, hands over that list without consuming the iterator.
            items = value.__reduce__()[1][0]
            stack.extend([(item, level + 1) for item in items])
        elif kind is dict:
            stack.extend([(item, level + 1) for pair in value.items() for item in pair])
        else:
            depths[id(value)] = level


def deepest(depths: dict[int, int]) -> int:
    """How deep the count in ``depths`` (see ``note_children``) had reached.

    Example::

        >>> deepest({1: 4, 2: 9})
        9
    """
    return max(depths.values(), default=0)


def reduction_loop(obj: object) -> TypeError:
    """The error for ``obj`` found inside its own reduction (an endless value).

    Example::

        >>> str(reduction_loop([]))[:30]
        'cannot hash list object: it re'
    """
    return TypeError(
        f"cannot hash {type(obj).__name__} object: it refers back to itself "
        "through something the hasher cannot follow (a function or object "
        "whose reduction contains itself)"
    )
