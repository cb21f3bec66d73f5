"""numpy for the restricted loader: dtypes rebuilt from a parsed description.

A pickled dtype is ``numpy.dtype(str, align, copy)`` followed by a state that
``dtype.__setstate__`` copies into the dtype's C struct unchecked: a state
declaring an object field with flags 0 makes numpy read file bytes as object
pointers. So no state reaches ``__setstate__`` here. ``numpy.dtype(...)``
yields a :class:`PendingDtype`; the state a following BUILD gives it is
parsed, and the first use of the value builds a fresh dtype through numpy's
public constructors, which check offsets, sizes and object fields. Arrays and
scalars are then only built from such dtypes, with every length checked
against the data handed in.

Example::

    >>> import numpy as np
    >>> pending = PendingDtype("f8")
    >>> pending.build((3, ">", None, None, None, -1, -1, 0))
    >>> pending.settle()
    dtype('>f8')
"""

from __future__ import annotations

import math
import pickle
import re
from typing import Any

from joblite.exceptions import UnsafeLoadError

__all__ = [
    "PendingDtype",
    "array_from_buffer",
    "check_array_state",
    "check_random_state",
    "reconstruct",
    "scalar",
]

_TYPESTR = re.compile(r"[?a-zA-Z][0-9]{0,9}")
_DATETIME_UNITS = frozenset(
    {b"Y", b"M", b"W", b"D", b"h", b"m", b"s", b"ms", b"us", b"ns", b"ps", b"fs", b"as", b"generic"}
)
_ALIGNED_STRUCT = 0x80  # NPY_ALIGNED_STRUCT in the state's flags


def _refuse(reason: str) -> UnsafeLoadError:
    return UnsafeLoadError("numpy.dtype", f"a malformed dtype ({reason})", fixable=False)


class PendingDtype:
    """``numpy.dtype(typestr, ...)`` from a stream, its state not yet applied."""

    __slots__ = ("_dtype", "_state", "_typestr")

    def __init__(self, typestr: object, align: object = False, copy: object = True) -> None:
        if not isinstance(typestr, str) or not _TYPESTR.fullmatch(typestr):
            raise _refuse(f"type {typestr!r}")
        self._typestr = typestr
        self._state: tuple[Any, ...] | None = None
        self._dtype: Any = None

    def build(self, state: object) -> None:
        """Take the state of a BUILD; only one, and only before the value is used."""
        if self._dtype is not None or self._state is not None:
            raise _refuse("its state is set twice or after it was used")
        if not isinstance(state, tuple) or len(state) not in (8, 9):
            raise _refuse("a state that is not an 8- or 9-tuple")
        self._state = state

    def settle(self) -> Any:
        """The dtype, built once from the typestr and the parsed state."""
        if self._dtype is None:
            self._dtype = _build_dtype(self._typestr, self._state)
        return self._dtype


def _is_dtype(value: object) -> bool:
    import numpy as np

    return isinstance(value, np.dtype)


def _build_dtype(typestr: str, state: tuple[Any, ...] | None) -> Any:
    import numpy as np

    if state is None:
        return np.dtype(typestr)
    version, endian, subarray, names, fields, elsize, _alignment, flags = state[:8]
    extra = state[8] if len(state) == 9 else None
    if version not in (3, 4) or endian not in ("<", ">", "|", "="):
        raise _refuse(f"version {version!r}, byte order {endian!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (elsize, flags)):
        raise _refuse("a non-integer size or flags")
    metadata, typestr = _metadata(typestr, extra)
    try:
        if names is not None or fields is not None:
            dtype = np.dtype(
                _fields_spec(names, fields, elsize), align=bool(flags & _ALIGNED_STRUCT)
            )
        elif subarray is not None:
            dtype = _subarray(subarray)
        else:
            dtype = np.dtype(typestr if endian == "|" else endian + typestr)
        if metadata is not None:
            dtype = np.dtype(dtype, metadata=metadata)
    except UnsafeLoadError:
        raise
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise _refuse(str(error)) from None
    if elsize >= 0 and dtype.itemsize != elsize:
        raise _refuse(f"size {elsize} for a dtype of {dtype.itemsize} bytes")
    return dtype


def _metadata(typestr: str, extra: object) -> tuple[dict[Any, Any] | None, str]:
    """The 9th state item: metadata, with the unit for datetime types."""
    if typestr[:1] in ("M", "m"):
        if extra is None:
            return None, typestr
        if not (isinstance(extra, tuple) and len(extra) == 2):
            raise _refuse("datetime metadata that is not (metadata, unit)")
        metadata, unit = extra
        if not (isinstance(unit, tuple) and len(unit) == 4):
            raise _refuse("a datetime unit that is not a 4-tuple")
        name, count = unit[0], unit[1]
        if name not in _DATETIME_UNITS or not isinstance(count, int) or not 0 < count < 2**31:
            raise _refuse(f"datetime unit {unit!r}")
        if name != b"generic":
            typestr = f"{typestr}[{'' if count == 1 else count}{name.decode()}]"
        extra = metadata
    if extra is not None and not isinstance(extra, dict):
        raise _refuse("metadata that is not a dict")
    return extra, typestr


def _fields_spec(names: object, fields: object, elsize: object) -> Any:
    if not (isinstance(names, tuple) and isinstance(fields, dict)):
        raise _refuse("field names that do not match its fields")
    formats, offsets, titles = [], [], []
    for name in names:
        entry = fields.get(name) if isinstance(name, str) else None
        if not (isinstance(entry, tuple) and len(entry) in (2, 3) and _is_dtype(entry[0])):
            raise _refuse(f"field {name!r}")
        if not isinstance(entry[1], int) or entry[1] < 0:
            raise _refuse(f"offset of field {name!r}")
        formats.append(entry[0])
        offsets.append(entry[1])
        titles.append(entry[2] if len(entry) == 3 else None)
    # numpy lists each field under its title too; nothing else may be there.
    if set(fields) - set(names) - set(titles):
        raise _refuse("fields that are not named")
    # numpy checks that fields fit in itemsize and that no object field overlaps another.
    return {
        "names": list(names),
        "formats": formats,
        "offsets": offsets,
        "titles": titles,
        "itemsize": elsize,
    }


def _subarray(subarray: object) -> Any:
    import numpy as np

    if not (isinstance(subarray, tuple) and len(subarray) == 2 and _is_dtype(subarray[0])):
        raise _refuse("a subarray that is not (dtype, shape)")
    shape = subarray[1]
    if isinstance(shape, int):
        shape = (shape,)
    return np.dtype((subarray[0], _shape(shape, "numpy.dtype")))


def _shape(shape: object, where: str) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise UnsafeLoadError(where, f"shape {shape!r} is not a tuple of sizes", fixable=False)
    return shape


def _data_dtype(dtype: object, where: str) -> Any:
    """A dtype whose values are plain bytes (no object references)."""
    if not _is_dtype(dtype):
        raise UnsafeLoadError(where, f"{type(dtype).__name__} is not a numpy dtype", fixable=False)
    if dtype.hasobject:  # type: ignore[attr-defined]
        raise UnsafeLoadError(where, "objects cannot come from raw bytes", fixable=False)
    return dtype


def _nbytes(buffer: object) -> int:
    import numpy as np

    if isinstance(buffer, np.ndarray):
        if buffer.dtype != np.uint8 or buffer.ndim != 1 or not buffer.flags.c_contiguous:
            raise UnsafeLoadError("numpy.ndarray", "a buffer must be flat bytes", fixable=False)
        return int(buffer.nbytes)
    if isinstance(buffer, (bytes, bytearray, memoryview, pickle.PickleBuffer)):
        return memoryview(buffer).nbytes
    raise UnsafeLoadError(
        f"{type(buffer).__module__}.{type(buffer).__qualname__}",
        "only bytes can be an array's buffer",
        fixable=False,
    )


def array_from_buffer(function: Any, args: tuple[Any, ...], where: str) -> Any:
    """``function(buffer, dtype, shape, order)`` with every argument checked."""
    if len(args) != 4:
        raise UnsafeLoadError(where, "it takes (buffer, dtype, shape, order)", fixable=False)
    buffer, dtype, shape, order = args
    dtype = _data_dtype(dtype, where)
    shape = _shape(shape, where)
    if order not in ("C", "F"):
        raise UnsafeLoadError(where, f"order {order!r}", fixable=False)
    expected = math.prod(shape) * dtype.itemsize
    if _nbytes(buffer) != expected:
        raise UnsafeLoadError(
            where, f"{_nbytes(buffer)} bytes of data for an array of {expected}", fixable=False
        )
    return function(buffer, dtype, shape, order)


def reconstruct(function: Any, args: tuple[Any, ...], trusted: bool) -> Any:
    """numpy's ``_reconstruct(ndarray, (0,), b"b")``: an empty array awaiting its state."""
    import numpy as np

    where = "numpy._core.multiarray._reconstruct"
    if len(args) != 3 or args[1] != (0,) or args[2] not in (b"b", "b"):
        raise UnsafeLoadError(where, "only numpy's own empty start is allowed", fixable=False)
    subtype = args[0]
    if subtype is not np.ndarray and not trusted:
        raise UnsafeLoadError(where, f"{subtype!r} is not numpy.ndarray", fixable=False)
    return function(*args)


def check_array_state(state: object) -> None:
    """Refuse an ``ndarray.__setstate__`` state whose data does not fit its shape and dtype."""
    where = "numpy.ndarray"
    if isinstance(state, tuple) and len(state) == 5:
        state = state[1:]
    if not (isinstance(state, tuple) and len(state) == 4):
        raise UnsafeLoadError(where, "a state is (shape, dtype, fortran, data)", fixable=False)
    shape, dtype, _fortran, data = state
    shape = _shape(shape, where)
    if not _is_dtype(dtype):
        raise UnsafeLoadError(where, "an array state without a dtype", fixable=False)
    count = math.prod(shape)
    if dtype.hasobject:
        # numpy reads the list item by item through the (rebuilt, consistent) dtype.
        if not isinstance(data, list) or len(data) != count:
            raise UnsafeLoadError(where, "object items must be a list, one per item", fixable=False)
    elif not isinstance(data, (bytes, bytearray)) or len(data) != count * dtype.itemsize:
        raise UnsafeLoadError(where, "its data does not match its shape and dtype", fixable=False)


def scalar(function: Any, args: tuple[Any, ...]) -> Any:
    """numpy's ``scalar(dtype, data)``: data must be exactly one item's bytes."""
    import numpy as np

    where = "numpy._core.multiarray.scalar"
    if len(args) != 2 or not _is_dtype(args[0]):
        raise UnsafeLoadError(where, "it takes (dtype, data)", fixable=False)
    dtype, data = args
    if dtype == np.dtype(object):
        return function(dtype, data)  # numpy returns the item itself
    _data_dtype(dtype, where)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise UnsafeLoadError(where, "its data is not one item of its dtype", fixable=False)
    return function(dtype, data)


# The states numpy's bit generators pickle, item by item: numpy's setters do
# not check ranges (an MT19937 ``pos`` of 10**6 loads, then crashes the next draw).
_UINT32, _UINT64 = ("uint32",), ("uint64",)
_FLAGS = {"has_uint32": (0, 1), "uinteger": (0, 2**32 - 1)}
_BIT_GENERATORS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "MT19937": ({"key": (_UINT32, 624), "pos": (0, 624)}, {}),
    "PCG64": ({"state": (0, 2**128 - 1), "inc": (0, 2**128 - 1)}, _FLAGS),
    "PCG64DXSM": ({"state": (0, 2**128 - 1), "inc": (0, 2**128 - 1)}, _FLAGS),
    "Philox": (
        {"counter": (_UINT64, 4), "key": (_UINT64, 2)},
        {"buffer": (_UINT64, 4), "buffer_pos": (0, 4), **_FLAGS},
    ),
    "SFC64": ({"state": (_UINT64, 4)}, _FLAGS),
}


def _check_items(values: object, spec: dict[str, Any], where: str) -> None:
    import numpy as np

    if not isinstance(values, dict) or set(values) != set(spec):
        raise UnsafeLoadError(where, f"a state with keys {spec and sorted(spec)}", fixable=False)
    for key, (kind, limit) in spec.items():
        value = values[key]
        if isinstance(kind, tuple):  # an array: (dtype,), length
            ok = (
                isinstance(value, np.ndarray)
                and value.dtype == np.dtype(kind[0])
                and value.shape == (limit,)
            )
        else:  # an int: low, high
            ok = isinstance(value, int) and not isinstance(value, bool) and kind <= value <= limit
        if not ok:
            raise UnsafeLoadError(where, f"{key!r} is out of range", fixable=False)


def _check_bit_generator_state(name: str, state: object, extra: dict[str, Any]) -> dict[str, Any]:
    where = f"numpy.random.{name}"
    if name not in _BIT_GENERATORS:
        raise UnsafeLoadError(where, "an unknown bit generator", fixable=False)
    inner, outer = _BIT_GENERATORS[name]
    spec = {"bit_generator": None, "state": None, **outer, **extra}
    if not isinstance(state, dict) or set(state) != set(spec):
        raise UnsafeLoadError(where, "a state with other keys", fixable=False)
    if state["bit_generator"] != name:
        raise UnsafeLoadError(where, f"the state of {state['bit_generator']!r}", fixable=False)
    _check_items(state["state"], inner, where)
    _check_items({k: state[k] for k in outer}, outer, where)
    return state


def check_random_state(target: Any, state: object) -> None:
    """Refuse a state for a numpy generator unless every item is in range."""
    from numpy.random import RandomState
    from numpy.random.bit_generator import BitGenerator, SeedSequence

    if isinstance(target, RandomState):
        # RandomState pickles its bit generator's state plus the cached gaussian.
        bits = target.get_state(legacy=False)["bit_generator"]
        checked = _check_bit_generator_state(bits, state, {"has_gauss": None, "gauss": None})
        if checked["has_gauss"] not in (0, 1) or not isinstance(checked["gauss"], float):
            raise UnsafeLoadError("numpy.random.RandomState", "a bad gaussian", fixable=False)
    elif isinstance(target, BitGenerator):
        if isinstance(state, tuple) and len(state) == 2:  # (state, seed sequence)
            state, seed = state
            if seed is not None and not isinstance(seed, SeedSequence):
                raise UnsafeLoadError("numpy.random.SeedSequence", "not one", fixable=False)
        _check_bit_generator_state(type(target).__name__, state, {})
    elif isinstance(target, SeedSequence):
        _check_seed_sequence(state)
    else:
        raise UnsafeLoadError(type(target).__qualname__, "numpy sets no state", fixable=False)


def _check_seed_sequence(state: object) -> None:
    import numpy as np

    where = "numpy.random.SeedSequence"
    if not (isinstance(state, tuple) and len(state) == 5):
        raise UnsafeLoadError(where, "a state that is not 5 items", fixable=False)
    _entropy, spawned, pool, pool_size, spawn_key = state
    ok = (
        isinstance(pool, np.ndarray)
        and pool.dtype == np.uint32
        and pool.ndim == 1
        and isinstance(pool_size, int)
        and pool.shape[0] == pool_size
        and isinstance(spawned, int)
        and spawned >= 0
        and isinstance(spawn_key, tuple)
    )
    if not ok:
        raise UnsafeLoadError(where, "its pool does not match its size", fixable=False)
