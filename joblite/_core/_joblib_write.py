"""joblib's file format, written without joblib: ``dump(..., format="joblib")``.

The layout is the one :mod:`joblite._core._joblib_read` documents. The C
pickler cannot put raw bytes after an opcode, nor name a class of a module
that is not imported, so the stream is made in two steps: the C pickler
pickles the value with each array replaced by a persistent id (an int,
never memoized), then :func:`pickletools.genops` walks that stream and each
``<int> BINPERSID`` pair becomes the wrapper's opcodes (by name, text
``GLOBAL``), its state, ``BUILD`` and the array's bytes, written straight
from the array's memory. FRAME opcodes are dropped on the way (they are
optional, and the array bytes must not sit inside a frame).

Example::

    >>> import io, numpy as np
    >>> from joblite._core._joblib_read import read_joblib
    >>> sink = io.BytesIO()
    >>> write_joblib({"w": np.arange(3)}, sink)
    >>> _ = sink.seek(0)
    >>> read_joblib(sink)["w"].tolist()
    [0, 1, 2]
"""

from __future__ import annotations

import io
import pickle
import pickletools
from typing import Any, BinaryIO

from joblite._core._joblib_streams import CODECS, compressing_writer
from joblite._core.codecs import UNCOMPRESSED, Compression

__all__ = ["write_joblib"]

# joblib's default: pickle's default protocol (4), the same in every Python 3.8+.
DEFAULT_PROTOCOL = 4
_ALIGNMENT = 16  # joblib's NUMPY_ARRAY_ALIGNMENT_BYTES
_WRAPPER = b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n" + pickle.EMPTY_TUPLE + pickle.NEWOBJ
_PID_OPCODES = ("BININT1", "BININT2", "BININT")


class _ArrayPickler(pickle.Pickler):
    """The C pickler, giving each plain or memory-mapped array a persistent id instead."""

    def __init__(self, file: io.BytesIO, protocol: int) -> None:
        super().__init__(file, protocol)
        import numpy as np

        self._array_types = (np.ndarray, np.memmap)
        self.arrays: list[Any] = []

    def persistent_id(self, obj: Any) -> int | None:
        if type(obj) not in self._array_types:
            return None
        self.arrays.append(obj)
        return len(self.arrays) - 1


def _check_protocol(protocol: int | None) -> int:
    if protocol is None:
        return DEFAULT_PROTOCOL
    if isinstance(protocol, bool) or not isinstance(protocol, int):
        raise ValueError(f"`protocol` must be an int or None, got {protocol!r}")
    if protocol < 0:
        return pickle.HIGHEST_PROTOCOL
    if not 2 <= protocol <= pickle.HIGHEST_PROTOCOL:
        raise ValueError(
            f"`protocol` must be from 2 to {pickle.HIGHEST_PROTOCOL} for format='joblib' "
            f"(its array records need protocol 2), got {protocol!r}"
        )
    return protocol


def check_compression(compression: Compression) -> None:
    """Refuse codecs joblib cannot read (zstd, user-registered ones)."""
    if compression.codec is not None and compression.codec not in CODECS:
        raise ValueError(
            f"`compress`: joblib's format supports {', '.join(CODECS)}; got {compression.codec!r}"
        )


def _parts(value: object, protocol: int) -> list[memoryview | Any]:
    """The stream as pieces of pickle bytes (memoryviews) and arrays, in order."""
    stream = io.BytesIO()
    pickler = _ArrayPickler(stream, protocol)
    pickler.dump(value)
    data = memoryview(stream.getbuffer())
    parts: list[memoryview | Any] = []
    start = 0  # first byte not yet in parts
    previous: tuple[str, Any, int] = ("", None, 0)  # the last opcode kept
    for opcode, argument, position in pickletools.genops(stream.getvalue()):
        assert position is not None
        if opcode.name == "FRAME":
            parts.append(data[start:position])
            start = position + 9  # the opcode and its 8-byte length
            continue
        if opcode.name == "BINPERSID":
            name, index, pid_start = previous
            assert name in _PID_OPCODES, previous  # the pickler wrote our int id just before
            assert pid_start >= start, previous
            parts += (data[start:pid_start], pickler.arrays[index])
            start = position + 1
        previous = (opcode.name, argument, position)
    parts.append(data[start:])
    return parts


def _state(array: Any, aligned: bool) -> bytes:
    """The wrapper's pickled state (a dict), with no memo opcodes to clash with the stream's."""
    import numpy as np

    order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    state = {
        "subclass": np.ndarray,
        "shape": tuple(array.shape),
        "order": order,
        "dtype": array.dtype,
        "allow_mmap": not array.dtype.hasobject,
        "numpy_array_alignment_bytes": _ALIGNMENT if aligned else None,
    }
    stream = io.BytesIO()
    pickler = pickle.Pickler(stream, 2)
    pickler.fast = True  # no memo: these opcodes are spliced into another stream
    pickler.dump(state)
    return stream.getvalue()[2:-1] + pickle.BUILD  # without PROTO and STOP


def _array_bytes(array: Any, order: Any) -> memoryview:
    import numpy as np

    array = array.view(np.ndarray)
    if not (array.flags.f_contiguous if order == "F" else array.flags.c_contiguous):
        array = np.array(array, order=order)
    # Bytes in memory order, also for dtypes numpy will not export as a buffer.
    return memoryview(array.reshape(-1, order=order).view(np.uint8))


def write_joblib(
    value: object,
    fileobj: BinaryIO,
    compression: Compression = UNCOMPRESSED,
    protocol: int | None = None,
) -> None:
    """Write ``value`` into ``fileobj`` in joblib's format (``joblib.load`` reads it).

    Raises ``ValueError`` for a codec or protocol joblib's format cannot hold,
    and what pickling raises for an unpicklable value (before anything is written).
    """
    check_compression(compression)
    parts = _parts(value, _check_protocol(protocol))
    try:
        position = fileobj.tell()
        aligned = True
    except (OSError, AttributeError):
        position, aligned = 0, False  # as joblib: no padding when the position is unknown
    if compression.codec is not None:
        position = 0  # padding counts in the uncompressed stream
    with compressing_writer(fileobj, compression.codec, compression.level) as sink:
        for part in parts:
            if isinstance(part, memoryview):
                sink.write(part)
                position += part.nbytes
                continue
            head = _WRAPPER + _state(part, aligned)
            sink.write(head)
            position += len(head)
            if part.dtype.hasobject:  # its items are objects: a nested pickle, as joblib
                nested = pickle.dumps(part, protocol=5)
                sink.write(nested)
                position += len(nested)
                continue
            if aligned:
                padding = _ALIGNMENT - (position + 1) % _ALIGNMENT
                sink.write(bytes([padding]) + b"\xff" * padding)
                position += 1 + padding
            order = "F" if part.flags.f_contiguous and not part.flags.c_contiguous else "C"
            data = _array_bytes(part, order)
            sink.write(data)
            position += data.nbytes
