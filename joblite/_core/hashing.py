"""Deterministic, numpy-aware hashing of arbitrary Python objects.

``hash(obj)`` pickles a *canonical* form of ``obj`` with the C pickler and
streams the bytes into a hash function (xxh3-128 by default), so it is fast
for small arguments and never copies a contiguous numpy array: the array's
buffer is fed straight to the hash next to its dtype, shape and order.

Canonical means equal values hash equal whatever their history: dicts and
sets are hashed in a sorted order (sets by element digest when their items do
not sort), two equal strings hash alike whether or not they are the same
object (the pickler runs without a memo), and a non-contiguous array view
hashes like its contiguous copy. Different types stay different: ``1``,
``1.0`` and ``True`` differ, and so do a list and a tuple.

Example::

    >>> hash({"b": 2, "a": 1}) == hash({"a": 1, "b": 2})
    True
    >>> hash(1) == hash(1.0)
    False
"""

from __future__ import annotations

import copyreg
import pickle
import sys
import types
from collections import OrderedDict
from collections.abc import Callable
from operator import itemgetter
from typing import Any, NoReturn

from joblite.exceptions import NestingTooDeepError, UnpicklableObjectError

from . import _hash_functions
from ._hash_depth import MAX_DEPTH as _MAX_DEPTH
from ._hash_depth import SAFE_RECURSION_LIMIT, deepest, note_children, reduction_loop
from ._hash_depth import too_deep as _too_deep
from ._hash_flat import PROTOCOL as _PROTOCOL
from ._hash_flat import Sink, flat_digest
from ._hash_functions import HASH_NAMES as HASH_NAMES
from ._names import found_by_name

__all__ = ["HASH_NAMES", "hash"]


# Types the walker passes through untouched: the C pickler writes them
# canonically by value (no memo, no identity).
_ATOMIC: frozenset[type] = frozenset(
    {int, float, str, bytes, bool, type(None), complex, bytearray, range, slice}
)
# Key types whose natural order is total, so sorting by value is canonical.
_SORTABLE_KEYS: frozenset[type] = frozenset({str, int, bytes})
_STR: frozenset[type] = frozenset({str})
_INT: frozenset[type] = frozenset({int})
# Bound here, not imported: the compiler calls a method of an imported name
# through a bound method object, +470 instructions per small hash.
_ONE_SHOT = _hash_functions.ONE_SHOT
_FACTORIES = _hash_functions.FACTORIES
_recursion_limit = sys.getrecursionlimit


def hash(obj: object, hash_name: str = "xxh3_128", coerce_mmap: bool = False) -> str:
    """Return a hex digest of ``obj``, stable across processes and runs.

    ``hash_name`` is one of ``HASH_NAMES`` ("xxh3_128", the fast default, or
    "md5", "sha1", "sha256", "blake2b"). With ``coerce_mmap=True`` a
    ``numpy.memmap`` hashes like the in-memory array with the same content.

    Raises ``ValueError`` for an unknown ``hash_name`` and
    :class:`~joblite.exceptions.UnpicklableObjectError` (a ``pickle.PicklingError``
    and a ``TypeError``) for an object that cannot be pickled (a lock, an open
    file, a generator).

    Example::

        >>> hash([1, 2, 3]) == hash([1, 2, 3])
        True
    """
    one_shot = _ONE_SHOT.get(hash_name)
    if one_shot is None:
        raise ValueError(
            f"hash_name must be one of {', '.join(map(repr, HASH_NAMES))}; got {hash_name!r}"
        )
    kind = type(obj)
    if kind in _ATOMIC:
        return one_shot(pickle.dumps(obj, _PROTOCOL))
    if kind is tuple or kind is list or kind is dict:
        digest = flat_digest(obj, kind, one_shot, hash_name)
        if digest is not None:
            return digest
    active: set[int] = set()
    try:
        canonical = _canonical(obj, active)
    except NestingTooDeepError:
        raise
    except RecursionError:
        # Python's limit came first; the ids still in ``active`` are the
        # containers the walk was inside when it stopped.
        raise _too_deep(len(active)) from None
    pool = _POOLS[bool(coerce_mmap)]
    pickler: _HashPickler | None
    try:
        pickler = pool.pop()
    except IndexError:  # first use, another thread, or re-entered from a reducer
        pickler = _HashPickler(bool(coerce_mmap))
    try:
        pickler.dump(canonical)
    except (ValueError, RecursionError) as error:
        if isinstance(error, ValueError) and "fast mode" not in str(error):
            raise
        # Without a memo, a reference cycle through instances recurses just
        # like deep nesting, up to Python's limit or the depth count: start
        # over with a memo, which ends every cycle (deterministic for a given
        # object graph, though no longer blind to shared references).
        pickler = None
    except pickle.PicklingError as error:
        _raise_unpicklable(error)
    if pickler is None:  # out of the handler: its errors are not caused by this one
        pickler = _dump_with_memo(canonical, bool(coerce_mmap))
    chunks, buffers = pickler.chunks, pickler.buffers
    if not buffers and len(chunks) == 1:
        digest = one_shot(chunks[0])
    else:
        hasher = _FACTORIES[hash_name]()
        for buffer in buffers:
            hasher.update(buffer)
        for chunk in chunks:
            hasher.update(chunk)
        digest = hasher.hexdigest()
    chunks.clear()
    buffers.clear()
    if pickler.reusable:
        pool.append(pickler)
    return digest


def _dump_with_memo(canonical: Any, coerce_mmap: bool) -> _MemoHashPickler:
    """Pickle ``canonical`` again, with a memo, after the memo-less pickler failed."""
    pickler = _MemoHashPickler(coerce_mmap)
    try:
        pickler.dump(canonical)
    except NestingTooDeepError:
        raise
    except RecursionError:
        # The memo ends every cycle, and a reduction that contains itself is
        # caught as it recurs: what reached Python's limit is deep nesting.
        raise _too_deep(max(pickler.reached, deepest(pickler.depths))) from None
    except pickle.PicklingError as error:
        _raise_unpicklable(error)
    return pickler


def _raise_unpicklable(error: pickle.PicklingError) -> NoReturn:
    if isinstance(error, UnpicklableObjectError):
        raise error
    raise UnpicklableObjectError(f"cannot hash object: {error}") from error


def _sorted_items(items: list[tuple[Any, Any]], key_types: set[type]) -> list[tuple[Any, Any]]:
    if len(key_types) == 1 and key_types <= _SORTABLE_KEYS:
        items.sort(key=itemgetter(0))
    else:
        # Mixed or partially ordered keys (1 and "a", frozensets, NaN): order
        # by each key's own digest, which is total and canonical.
        items.sort(key=lambda item: hash(item[0]))
    return items


class _CanonicalSet:
    """A set or frozenset with its items in canonical order."""

    __slots__ = ("frozen", "items")

    def __init__(self, items: list[Any], frozen: bool) -> None:
        self.items = items
        self.frozen = frozen


class _Cycle:
    """Stands for a container reached again while it is being walked."""

    __slots__ = ("depth",)

    def __init__(self, depth: int) -> None:
        self.depth = depth


def _canonical(obj: Any, active: set[int]) -> Any:
    """Return ``obj`` with every builtin dict and set put in canonical order.

    Containers without a dict or set inside come back as the same object,
    so the common case allocates nothing.
    """
    kind = type(obj)
    if kind in _ATOMIC:
        return obj
    if kind is list or kind is tuple:
        # One C-speed pass decides the common case: nothing to canonicalize.
        if _ATOMIC.issuperset(map(type, obj)):
            return obj
        identity = id(obj)
        if identity in active:
            return _Cycle(len(active))
        if len(active) >= _MAX_DEPTH:
            raise _too_deep(len(active))
        active.add(identity)
        out = [item if type(item) in _ATOMIC else _canonical(item, active) for item in obj]
        active.discard(identity)
        return out if kind is list else tuple(out)
    if kind is dict:
        if _ATOMIC.issuperset(map(type, obj.values())) and (
            _STR.issuperset(map(type, obj)) or _INT.issuperset(map(type, obj))
        ):
            # The common flat dict, e.g. keyword arguments: keys are unique
            # and totally ordered, so sorting the items never compares values.
            return dict(sorted(obj.items()))
        key_types = set(map(type, obj))
        identity = id(obj)
        if identity in active:
            return _Cycle(len(active))
        if len(active) >= _MAX_DEPTH:
            raise _too_deep(len(active))
        active.add(identity)
        items = [
            (
                key if type(key) in _ATOMIC else _canonical(key, active),
                value if type(value) in _ATOMIC else _canonical(value, active),
            )
            for key, value in obj.items()
        ]
        active.discard(identity)
        # A dict keeps its type and the pickler writes it in insertion order,
        # so re-inserting in sorted order makes the stream canonical.
        return dict(_sorted_items(items, key_types))
    if kind is set or kind is frozenset:
        # No set can hold a container that leads back to it, so the id only
        # counts the depth here (no cycle marker can depend on it).
        if len(active) >= _MAX_DEPTH:
            raise _too_deep(len(active))
        identity = id(obj)
        active.add(identity)
        elements = [(_canonical(e, active), None) for e in obj]
        active.discard(identity)
        ordered = _sorted_items(elements, set(map(type, obj)))
        return _CanonicalSet([e for e, _ in ordered], kind is frozenset)
    return obj


class _HashPickler(pickle.Pickler):
    """The C pickler with canonical reductions, writing into a list of chunks.

    ``reducer_override`` sees every object the C code does not handle
    natively: instances, functions, classes and numpy objects. Array data
    never enters the stream: their buffers are collected in ``buffers`` and
    fed to the hash as they are.
    """

    def __init__(self, coerce_mmap: bool, memo: bool = False) -> None:
        sink = Sink()
        super().__init__(sink, protocol=_PROTOCOL)
        self.chunks: list[bytes] = sink.chunks
        self.buffers: list[Any] = []
        self.coerce_mmap = coerce_mmap
        # A pickler with a memo, or with depths left from a count, is not pooled.
        self.reusable = not memo
        # No memo: a value is written the same way wherever it appears, so
        # equal objects hash equal whether or not they are the same object.
        self.fast = not memo
        # Set when the recursion limit is raised so far that the C stack could
        # run out before RecursionError: then the nesting of reductions is
        # counted here (``_hash_depth``), by the id of each object to reduce,
        # and ``reached`` is the deepest reduced so far (its entry is gone).
        self.depths: dict[int, int] | None = None
        self.reached = 0

    def reducer_override(self, obj: Any) -> Any:
        depths = self.depths
        if depths is None:
            if _recursion_limit() <= SAFE_RECURSION_LIMIT:
                return self._reduce(obj)
            depths = self.depths = {}
            self.reusable = False
        depth = depths.pop(id(obj), 0)
        self.reached = max(self.reached, depth)
        reduced = self._reduce(obj)
        if type(reduced) is tuple:
            note_children(depths, reduced, depth)
        return reduced

    def _reduce(self, obj: Any) -> Any:
        reducer = _REDUCERS.get(type(obj))
        if reducer is not None:
            return reducer(self, obj)
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(obj, (numpy.ndarray, numpy.generic, numpy.dtype)):
            return _reduce_numpy(self, obj, numpy)
        if isinstance(obj, type):
            return NotImplemented if found_by_name(obj) else _reduce_local_class(obj)
        return _reduce_instance(obj)


class _MemoHashPickler(_HashPickler):
    """The pickler for a second try, with a memo: reference cycles end.

    An object met again inside its own reduction is a ``TypeError``; the
    nesting is always counted, so that Python's RecursionError becomes
    :class:`~joblite.exceptions.NestingTooDeepError` with the depth reached.
    """

    def __init__(self, coerce_mmap: bool) -> None:
        super().__init__(coerce_mmap, memo=True)
        self.depths: dict[int, int] = {}
        self.reduced: set[int] = set()

    def reducer_override(self, obj: Any) -> Any:
        # With a memo, the pickler meets an object it has reduced again only
        # while it is still saving that object's reduction: the reduction
        # contains the object, and saving it would never end.
        if id(obj) in self.reduced:
            raise reduction_loop(obj)
        self.reduced.add(id(obj))
        return super().reducer_override(obj)


# Free picklers, by coerce_mmap. list.pop and list.append are atomic, so
# threads never share a pickler; building one costs as much as hashing a
# small argument, hence the reuse.
_POOLS: dict[bool, list[_HashPickler]] = {False: [], True: []}


def _tag(*parts: Any) -> None:
    """Never called: a named global that labels canonical reductions."""


def _reduce_canonical_set(pickler: _HashPickler, obj: _CanonicalSet) -> Any:
    return (frozenset if obj.frozen else set, (obj.items,))


def _reduce_cycle(pickler: _HashPickler, obj: _Cycle) -> Any:
    return (_tag, ("cycle", obj.depth))


def _reduce_function(pickler: _HashPickler, obj: types.FunctionType) -> Any:
    if found_by_name(obj):
        return NotImplemented
    return (_tag, _function_parts(obj, []))


class _LocalFunction:
    """A local function inside another's closure, reduced like a top-level one."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[Any, ...]) -> None:
        self.parts = parts


def _reduce_local_function(pickler: _HashPickler, obj: _LocalFunction) -> Any:
    return (_tag, obj.parts)


def _function_parts(obj: types.FunctionType, path: list[int]) -> tuple[Any, ...]:
    # Local functions in the closure are expanded here rather than left to the
    # pickler, so that a recursive helper (its closure holds itself) or two
    # mutually recursive ones end in a cycle marker instead of endless reduction.
    path.append(id(obj))
    closure = []
    for cell in obj.__closure__ or ():
        value = _cell_value(cell)
        if type(value) is types.FunctionType and not found_by_name(value):
            if id(value) in path:
                value = _Cycle(path.index(id(value)))
            else:
                value = _LocalFunction(_function_parts(value, path))
        closure.append(value)
    path.pop()
    return (
        "function",
        obj.__module__,
        obj.__qualname__,
        _code_signature(obj.__code__),
        _canonical(obj.__defaults__, set()),
        _canonical(obj.__kwdefaults__, set()),
        _canonical(tuple(closure), set()),
    )


def _reduce_module(pickler: _HashPickler, obj: types.ModuleType) -> Any:
    return (_tag, ("module", obj.__name__))


def _reduce_code(pickler: _HashPickler, obj: types.CodeType) -> Any:
    return (_tag, ("code", _code_signature(obj)))


def _reduce_method(pickler: _HashPickler, obj: types.MethodType) -> Any:
    return (_tag, ("method", obj.__func__, obj.__self__))


def _cell_value(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell: the closure variable is not bound yet
        return _tag


def _code_signature(code: types.CodeType) -> tuple[Any, ...]:
    consts = tuple(
        _code_signature(c) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars)


def _reduce_local_class(cls: type) -> Any:
    members: list[tuple[str, Any]] = []
    for name, value in sorted(vars(cls).items()):
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, types.FunctionType):
            members.append((name, _reduce_function_signature(value)))
        elif type(value) in _ATOMIC:
            members.append((name, value))
        else:
            members.append((name, type(value).__qualname__))
    bases = tuple(base for base in cls.__bases__ if base is not object)
    return (_tag, ("class", cls.__module__, cls.__qualname__, bases, tuple(members)))


def _reduce_function_signature(func: types.FunctionType) -> tuple[Any, ...]:
    return (func.__qualname__, _code_signature(func.__code__))


def _reduce_instance(obj: Any) -> Any:
    # Honour copyreg registrations first, as pickle does (numpy's ufuncs are
    # only picklable through one).
    registered = copyreg.dispatch_table.get(type(obj))
    try:
        reduced = registered(obj) if registered else obj.__reduce_ex__(_PROTOCOL)
    except TypeError as error:
        raise UnpicklableObjectError(
            f"cannot hash object of type {type(obj).__qualname__!r}: it cannot be pickled ({error})"
        ) from error
    if isinstance(reduced, str):  # a global singleton, saved by name
        return NotImplemented
    parts = list(reduced) + [None] * (6 - len(reduced))
    func, args, state, list_items, dict_items = parts[:5]
    if list_items is not None:
        list_items = iter(_canonical(list(list_items), set()))
    if dict_items is not None:
        items = [(_canonical(k, set()), _canonical(v, set())) for k, v in dict_items]
        if not isinstance(obj, OrderedDict):  # an OrderedDict's order is part of its value
            items = _sorted_items(items, {type(key) for key, _ in items})
        dict_items = iter(items)
    return (func, _canonical(args, set()), _canonical(state, set()), list_items, dict_items)


def _reduce_numpy(pickler: _HashPickler, obj: Any, numpy: Any) -> Any:
    if isinstance(obj, numpy.dtype):
        return (_tag, ("dtype", _dtype_key(obj)))
    if isinstance(obj, numpy.generic):
        return (_tag, ("numpy-scalar", _dtype_key(obj.dtype), obj.tobytes()))
    kind = type(obj)
    if kind is numpy.memmap and pickler.coerce_mmap:
        kind = numpy.ndarray
    elif kind is not numpy.ndarray and kind is not numpy.memmap:
        return _reduce_instance(obj)  # other subclasses (masked arrays...) carry extra state
    class_name = f"{kind.__module__}.{kind.__qualname__}"
    if obj.dtype.hasobject:
        return (_tag, ("object-array", class_name, obj.shape, _canonical(obj.tolist(), set())))
    if obj.flags.c_contiguous:
        order, data = "C", obj
    elif obj.flags.f_contiguous:
        order, data = "F", obj.T
    else:  # a strided view hashes like its contiguous copy
        order, data = "C", numpy.ascontiguousarray(obj)
    # Feed the buffer straight to the hash: no copy, no pickling of the data.
    pickler.buffers.append(data.reshape(-1).view(numpy.uint8))
    return (_tag, ("array", class_name, _dtype_key(obj.dtype), obj.shape, order, obj.nbytes))


def _dtype_key(dtype: Any) -> Any:
    if dtype.names is None and dtype.subdtype is None:
        return dtype.str
    return (dtype.str, repr(dtype.descr))


_REDUCERS: dict[type, Callable[[_HashPickler, Any], Any]] = {
    _CanonicalSet: _reduce_canonical_set,
    _Cycle: _reduce_cycle,
    _LocalFunction: _reduce_local_function,
    types.FunctionType: _reduce_function,
    types.ModuleType: _reduce_module,
    types.CodeType: _reduce_code,
    types.MethodType: _reduce_method,
}
