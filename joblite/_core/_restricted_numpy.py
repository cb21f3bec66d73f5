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
    if not (isinstance(names, tuple) and isinstance(fields, dict)) or len(names) != len(fields):
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
