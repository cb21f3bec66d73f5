"""The one serialization layer: the C pickler, extended the supported way.

* protocol 5, numpy arrays' data out-of-band as :class:`pickle.PickleBuffer`
  (no copy for contiguous arrays), so callers can write or ship the buffers
  without passing them through the pickle stream;
* cloudpickle, imported lazily, only for what plain pickle cannot do by
  reference: lambdas, closures, and functions or classes of ``__main__``;
* :func:`loads` with ``allowed=`` uses the restricted unpickler of
  :mod:`._restricted`: a safe default set plus the names the caller trusts,
  each call and state checked.

Example::

    >>> import numpy as np
    >>> data, buffers = dumps({"w": np.arange(3.0)})
    >>> len(buffers)
    1
    >>> loads(data, buffers, allowed=[])["w"].tolist()
    [0.0, 1.0, 2.0]
"""

from __future__ import annotations

import contextlib
import io
import logging
import pickle
import sys
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ._byteorder import to_native_byte_order
from ._names import found_by_name

__all__ = [
    "ArrayInfo",
    "Pickled",
    "check_allowed",
    "dump_parts",
    "dumps",
    "dumps_stream",
    "loads",
    "native_byte_order",
]

DEFAULT_PROTOCOL = 5

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArrayInfo:
    """How one out-of-band buffer is to be read back as an array."""

    dtype: Any  # numpy.dtype; typed loosely so this module never imports numpy
    shape: tuple[int, ...]
    order: str  # "C" or "F"
    nbytes: int


@dataclass
class Pickled:
    """A pickle stream, its out-of-band buffers and, for each buffer, its array."""

    data: bytes
    protocol: int
    buffers: list[pickle.PickleBuffer] = field(default_factory=list)
    arrays: list[ArrayInfo] = field(default_factory=list)


def _array_from_buffer(buffer: Any, dtype: Any, shape: tuple[int, ...], order: str) -> Any:
    """Rebuild an array from its out-of-band buffer (the reducer's counterpart).

    ``buffer`` is whatever the reader supplied: a flat uint8 array (possibly a
    ``numpy.memmap``, which the view keeps), a memoryview or a PickleBuffer.
    """
    import numpy as np

    if isinstance(buffer, pickle.PickleBuffer):
        buffer = buffer.raw()
    flat = buffer if isinstance(buffer, np.ndarray) else np.frombuffer(buffer, dtype=np.uint8)
    array = flat.view(dtype).reshape(shape, order="F" if order == "F" else "C")
    return to_native_byte_order(array) if _NATIVE_BYTE_ORDER.get() else array


# Set for one load(..., ensure_native_byte_order=True): arrays come back in the host's order.
_NATIVE_BYTE_ORDER: ContextVar[bool] = ContextVar("joblite_native_byte_order", default=False)


@contextlib.contextmanager
def native_byte_order() -> Iterator[None]:
    """Within the block, arrays rebuilt by :func:`loads` are in the host's byte order."""
    token = _NATIVE_BYTE_ORDER.set(True)
    try:
        yield
    finally:
        _NATIVE_BYTE_ORDER.reset(token)


def _load_by_value(payload: bytes) -> Any:
    """Rebuild an object cloudpickle serialized by value (it runs pickle code)."""
    return pickle.loads(payload)


def _importable_by_reference(obj: Any) -> bool:
    # __main__ objects are pickled by value so another process can load them.
    return getattr(obj, "__module__", None) != "__main__" and found_by_name(obj)


class _BufferSink:
    """The pickler's buffer callback: collects joblite's own array buffers.

    A separate object, not a bound method of the pickler: a pickler holding
    its own method would be a reference cycle, and a discarded one (after a
    failed dump) would keep the dumped value's arrays alive until the next
    garbage collection instead of freeing them on return.
    """

    def __init__(self) -> None:
        self.buffers: list[pickle.PickleBuffer] = []
        self.arrays: list[ArrayInfo] = []
        # Holding each buffer keeps its id from being reused by a user's PickleBuffer.
        self.own: dict[int, tuple[pickle.PickleBuffer, ArrayInfo]] = {}

    def __call__(self, buffer: pickle.PickleBuffer) -> bool:
        own = self.own.get(id(buffer))
        if own is None:
            return True  # someone else's PickleBuffer: keep it in-band, as documented
        self.buffers.append(buffer)
        self.arrays.append(own[1])
        return False


class _Pickler(pickle.Pickler):
    """The C pickler with array buffers out-of-band and cloudpickle as a fallback."""

    def __init__(self, file: io.BytesIO, protocol: int, *, out_of_band: bool = True) -> None:
        self.out_of_band = out_of_band and protocol >= 5
        self.sink = _BufferSink()
        super().__init__(file, protocol, buffer_callback=self.sink if self.out_of_band else None)
        self.protocol_number = protocol
        self.numpy: Any = sys.modules.get("numpy")

    def reducer_override(self, obj: Any) -> Any:
        np = self.numpy
        if np is not None and self.out_of_band and type(obj) in (np.ndarray, np.memmap):
            return self._reduce_array(obj)
        if (
            type(obj) is types.FunctionType or isinstance(obj, type)
        ) and not _importable_by_reference(obj):
            import cloudpickle

            payload = cloudpickle.dumps(obj, protocol=self.protocol_number)
            return (_load_by_value, (payload,))
        return NotImplemented

    def _reduce_array(self, array: Any) -> Any:
        dtype = array.dtype
        if dtype.hasobject or dtype.itemsize == 0:
            return NotImplemented  # numpy's own reduce pickles the items in-band
        # A memmap is saved as a plain array: its file may be gone when we load.
        array = array.view(self.numpy.ndarray)
        if array.flags.c_contiguous:
            order = "C"
        elif array.flags.f_contiguous:
            order = "F"
        else:
            array = self.numpy.ascontiguousarray(array)
            order = "C"
        # Flat bytes in memory order: also covers dtypes numpy won't export as a
        # buffer (datetime64, some structured dtypes), and never copies.
        buffer = pickle.PickleBuffer(array.reshape(-1, order=order).view(self.numpy.uint8))
        info = ArrayInfo(dtype, tuple(array.shape), order, int(array.nbytes))
        self.sink.own[id(buffer)] = (buffer, info)
        return (_array_from_buffer, (buffer, dtype, array.shape, order))


def _normalize_protocol(protocol: int | None) -> int:
    if protocol is None:
        return DEFAULT_PROTOCOL
    if isinstance(protocol, bool) or not isinstance(protocol, int):
        raise ValueError(f"`protocol` must be an int or None, got {protocol!r}")
    if protocol < 0:  # pickle's convention for "the highest"
        return pickle.HIGHEST_PROTOCOL
    if protocol > pickle.HIGHEST_PROTOCOL:
        raise ValueError(f"`protocol` must be at most {pickle.HIGHEST_PROTOCOL}, got {protocol!r}")
    return protocol


# Idle picklers of the default protocol: setting one up costs several times
# more than pickling a small value (Memory pickles one per cache miss).
_IDLE: list[tuple[_Pickler, io.BytesIO]] = []
_MAX_IDLE = 4


# Types the C pickler writes itself, never asking ``reducer_override``: a
# value of one is pickled as plain ``pickle.dumps`` would (Memory stores one
# per cache miss of a function returning a number, and a pooled pickler costs more).
_SCALARS = frozenset({int, float, str, bytes, bool, type(None)})


def dump_parts(obj: object, *, protocol: int | None = None) -> Pickled:
    """Like :func:`dumps`, also describing the array behind each buffer."""
    protocol = _normalize_protocol(protocol)
    if type(obj) in _SCALARS:
        return Pickled(pickle.dumps(obj, protocol), protocol)
    pooled = protocol == DEFAULT_PROTOCOL
    try:
        # list.pop is atomic: each thread (and a reducer re-entering) gets its own.
        pickler, stream = _IDLE.pop() if pooled else _new_pickler(protocol)
        pickler.numpy = sys.modules.get("numpy")  # it may have been imported since
    except IndexError:
        pickler, stream = _new_pickler(protocol)
    sink = pickler.sink
    try:
        pickler.dump(obj)
        pickled = Pickled(stream.getvalue(), protocol, sink.buffers, sink.arrays)
    except BaseException:
        pooled = False  # its stream holds a partial dump
        raise
    finally:
        # The memo holds every object pickled: released now, pooled or not.
        pickler.clear_memo()
        sink.buffers, sink.arrays, sink.own = [], [], {}
        if pooled and len(_IDLE) < _MAX_IDLE:
            stream.seek(0)
            stream.truncate()  # also frees a big stream's memory
            _IDLE.append((pickler, stream))
    return pickled


def _new_pickler(protocol: int) -> tuple[_Pickler, io.BytesIO]:
    stream = io.BytesIO()
    return _Pickler(stream, protocol), stream


def dumps(obj: object, *, protocol: int | None = None) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """Pickle ``obj``; return the stream and the out-of-band array buffers.

    Pass both to :func:`loads`. Raises what pickling raises
    (``pickle.PicklingError``, ``TypeError``) for unpicklable objects.

    >>> data, buffers = dumps(lambda x: x + 1)
    >>> loads(data, buffers)(1)
    2
    """
    pickled = dump_parts(obj, protocol=protocol)
    return pickled.data, pickled.buffers


def check_allowed(allowed: object) -> list[str]:
    """``allowed`` as a list of patterns; ``ValueError`` naming it when malformed."""
    if isinstance(allowed, str) or not isinstance(allowed, Iterable):
        raise ValueError(
            "`allowed` must be a sequence of 'module' or 'module.qualname' strings, "
            f"got {allowed!r}"
        )
    patterns = list(allowed)
    bad = [p for p in patterns if not isinstance(p, str) or not p]
    if bad:
        raise ValueError(f"`allowed` must contain non-empty strings, got {bad!r}")
    for pattern in patterns:
        if pattern not in _WARNED and ("." not in pattern or pattern.startswith("*")):
            _WARNED.add(pattern)
            logger.warning(
                "allowed=[%r] trusts every class and function of the package %r: a file "
                "can call any of them with arguments it chooses (joblite still refuses "
                "those it knows to run code, touch files or multiply sizes). List the "
                "names you need ('module.qualname') instead.",
                pattern,
                pattern,
            )
    return patterns


# Wholesale patterns already warned about: once per process is enough.
_WARNED: set[str] = set()


def loads(
    data: bytes | memoryview,
    buffers: Iterable[object] = (),
    *,
    allowed: Sequence[str] | None = None,
) -> object:
    """Unpickle ``data`` with its out-of-band ``buffers`` (from :func:`dumps`).

    ``allowed=None`` unpickles normally, which runs code chosen by whoever
    wrote the data: use it on trusted data only. With ``allowed`` (e.g.
    ``["mypkg.Model"]``), the stream is interpreted by the restricted
    unpickler of :mod:`._restricted`: builtin data types, numpy arrays, dtypes,
    scalars and generators, and the globals whose module or ``module.qualname``
    matches a pattern (never those that run code or touch files); anything
    else raises :class:`~joblite.exceptions.UnsafeLoadError`. A bare package
    name (``"numpy"``) is logged as a warning: it trusts all of the package.
    """
    if allowed is None:
        return pickle.loads(data, buffers=buffers)
    patterns = check_allowed(allowed)
    # Imported here: 14 ms (python -X importtime) that plain loads never need.
    from ._restricted import load_restricted

    return load_restricted(bytes(data), buffers, patterns)


class _StreamPickler(_Pickler):
    """:class:`_Pickler` writing one self-contained stream: arrays stay in-band."""

    def __init__(self, file: io.BytesIO, reducer: Callable[[Any], Any] | None) -> None:
        # No buffer callback: numpy's own protocol-5 reduce then writes its
        # buffer in the stream (the reader gets writable arrays).
        super().__init__(file, DEFAULT_PROTOCOL, out_of_band=False)
        self.reducer = reducer

    def reducer_override(self, obj: Any) -> Any:
        if self.reducer is not None:
            reduced = self.reducer(obj)
            if reduced is not NotImplemented:
                return reduced
        np = self.numpy
        if np is not None and type(obj) is np.memmap and not obj.dtype.hasobject:
            # numpy pickles an ndarray subclass through __setstate__, which
            # rebuilds a big-endian array in native byte order (numpy 2.4): go
            # through a plain array's protocol-5 reduce, which keeps it.
            return (_view_as, (obj.view(np.ndarray), np.memmap))
        return super().reducer_override(obj)


def _view_as(array: Any, cls: type) -> Any:
    """``array`` viewed as ``cls`` (a memmap sent by :class:`_StreamPickler`)."""
    return array.view(cls)


def dumps_stream(obj: object, *, reducer: Callable[[Any], Any] | None = None) -> bytes:
    """Pickle ``obj`` into one stream (no out-of-band buffers), for another process.

    As :func:`dumps`, lambdas, closures and ``__main__`` objects travel by
    value. ``reducer(obj)`` is asked first for every object the pickler does
    not write itself: a reduce tuple takes over, ``NotImplemented`` declines.
    Read the bytes back with ``pickle.loads``.

    >>> pickle.loads(dumps_stream([lambda x: x + 1]))[0](1)
    2
    """
    stream = io.BytesIO()
    _StreamPickler(stream, reducer).dump(obj)
    return stream.getvalue()
