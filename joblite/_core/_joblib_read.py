"""joblib's file format, read natively: joblib itself is never imported.

A joblib file is one pickle stream, possibly compressed as a whole (see
:mod:`joblite._core._joblib_streams`), in which each numpy array is pickled
as a ``joblib.numpy_pickle.NumpyArrayWrapper`` (subclass, shape, order,
dtype, ``allow_mmap``, ``numpy_array_alignment_bytes``) whose BUILD opcode is
followed, outside the pickle opcodes, by the array itself:

    non-object dtype: [u8 padding length n, n padding bytes] (when the
                      alignment is not None: data then starts on a 16-byte
                      boundary of the uncompressed stream), then the array's
                      bytes in ``order``
    object dtype:     a nested protocol-5 pickle stream of the array

Only the pure-Python unpickler lets a subclass act at BUILD (the C one has no
hook there), so this reader is as fast as joblib's own, not as joblite's
format. Every read is checked against what the file has left (a compressed
stream's reads grow step by step with the data actually decompressed), so a
crafted size gives ``InvalidFileError`` rather than a big allocation. With
``allowed``, the stream (nested object-array streams too) is run by joblite's
restricted interpreter instead (:mod:`._joblib_checked`): the same checks as
for a joblite file. Files of joblib < 0.10 (``NDArrayWrapper`` companion
files, the ``ZF`` container) are refused with ``ForeignFileError``.

Example::

    >>> import io, pickle
    >>> read_joblib(io.BytesIO(pickle.dumps([1, 2], protocol=4)), allowed=[])
    [1, 2]
"""

from __future__ import annotations

import io
import logging
import lzma
import math
import os
import pickle
import struct
import sys
import warnings
import zlib
from collections.abc import Sequence
from typing import Any, BinaryIO

from joblite._core._byteorder import to_native_byte_order
from joblite._core._joblib_streams import MAX_PREFIX, detect, open_decompressed
from joblite._core._joblib_wrapper import NumpyArrayWrapper as NumpyArrayWrapper
from joblite._core._joblib_wrapper import wrapper_class
from joblite._core.pickling import check_allowed
from joblite.exceptions import ForeignFileError, InvalidFileError

__all__ = ["NumpyArrayWrapper", "read_joblib"]

logger = logging.getLogger(__name__)

# Reads of unknown extent (a decompressed stream) grow by this much at a time,
# so memory follows the data actually present, not a size the file claims.
_STEP = 16 * 1024 * 1024
# Errors the stdlib and lz4 decompressors raise on a damaged stream.
_STREAM_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error, RuntimeError)


class _Source:
    """The stream being unpickled: every read checked against what is left."""

    def __init__(self, stream: BinaryIO, remaining: int | None, codec: str | None) -> None:
        self.stream = stream
        self.remaining = remaining  # None: unknown (a decompressed stream)
        self.position = 0  # bytes consumed, from the start of the joblib data
        self.codec = codec

    def _raw_read(self, size: int) -> bytes:
        try:
            return self.stream.read(size)
        except _STREAM_ERRORS as error:
            if self.codec is None:
                raise
            raise InvalidFileError(f"corrupt {self.codec} stream in joblib file: {error}") from None

    def budget(self) -> int:
        """The largest size a restricted load accepts: what the file holds, or
        for a compressed stream, what it has delivered so far."""
        return self.position + (self.remaining or 0) + 64

    def check(self, size: int, what: str) -> None:
        if self.remaining is not None and size > self.remaining:
            raise InvalidFileError(
                f"truncated or corrupt joblib file: {what} needs {size} bytes, "
                f"only {self.remaining} remain"
            )

    def read(self, size: int, what: str = "the pickle stream") -> bytes:
        self.check(size, what)
        data = self._raw_read(size) if size <= _STEP else bytes(self._read_in_steps(size))
        if len(data) != size:
            raise InvalidFileError(
                f"truncated joblib file: {what} needs {size} bytes, only {len(data)} remain"
            )
        self._consumed(size)
        return data

    def _read_in_steps(self, size: int) -> bytearray:
        """Up to ``size`` bytes, the buffer growing with the data, not with ``size``."""
        parts = bytearray()
        while len(parts) < size:
            part = self._raw_read(min(_STEP, size - len(parts)))
            if not part:
                break
            parts += part
        return parts

    def read_some(self) -> bytes:
        """Up to ``_STEP`` bytes; empty at the end of the stream."""
        return self._raw_read(_STEP)

    def read_array_bytes(self, size: int, what: str) -> Any:
        """``size`` bytes as a new writable uint8 array (an array's data)."""
        import numpy as np

        buffer: Any
        self.check(size, what)
        if self.remaining is None:  # a decompressed stream: never trust ``size`` up front
            grown = self._read_in_steps(size)
            done, buffer = len(grown), np.frombuffer(grown, np.uint8)
        else:
            # np.empty, not bytearray: no zero-filling pass over memory the read
            # overwrites anyway (loading 8 x 16 MB arrays: 269 -> 46 ms, joblib 58 ms)
            buffer = np.empty(size, np.uint8)
            view = memoryview(buffer)
            done = 0
            while done < size:
                count = self.stream.readinto(view[done:])  # type: ignore[attr-defined]
                if not count:
                    break
                done += count
        if done != size:
            raise InvalidFileError(
                f"truncated joblib file: {what} needs {size} bytes, only {done} remain"
            )
        self._consumed(size)
        return buffer

    def readline(self) -> bytes:
        line = self.stream.readline()
        self._consumed(len(line))
        return line

    def skip(self, size: int, what: str) -> None:
        """Move past ``size`` bytes: read (padding) or, for a mapped array, seek."""
        if size <= 255:
            self.read(size, what)
            return
        self.check(size, what)
        self.stream.seek(size, io.SEEK_CUR)
        self._consumed(size)

    def _consumed(self, size: int) -> None:
        self.position += size
        if self.remaining is not None:
            self.remaining -= size


class _Reader:
    """What one load needs besides the stream: what ``allowed`` says, how to map, convert."""

    def __init__(
        self,
        source: _Source,
        patterns: list[str] | None,
        path: str | None,
        mmap_mode: str | None,
        native: bool,
    ) -> None:
        self.source = source
        self.patterns = patterns  # None: a plain, unrestricted load
        self.path = path
        self.mmap_mode: Any = "r+" if mmap_mode == "w+" else mmap_mode
        self.native = native

    def load_stream(self) -> Any:
        """The value of the next pickle stream in the source."""
        if self.patterns is None:
            return _Unpickler(self).load()
        from joblite._core._joblib_checked import load_checked

        return load_checked(self)

    def array(self, wrapper: NumpyArrayWrapper) -> Any:
        import numpy as np

        dtype, shape, order = _layout(wrapper.state)
        if dtype.hasobject:
            array = self.load_stream()
            if not isinstance(array, np.ndarray):
                raise InvalidFileError("corrupt joblib file: an object array is not an array")
            return array
        if wrapper.state.get("numpy_array_alignment_bytes") is not None:
            padding = self.source.read(1, "an array's padding")[0]
            self.source.skip(padding, "an array's padding")
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if self.mmap_mode is not None and wrapper.state.get("allow_mmap") and nbytes:
            self.source.check(nbytes, "an array")
            assert self.path is not None
            mapped = np.memmap(
                self.path,
                dtype=dtype,
                mode=self.mmap_mode,
                offset=self.source.position,
                shape=shape,
                order=order,
            )
            self.source.skip(nbytes, "an array")
            return mapped
        buffer = self.source.read_array_bytes(nbytes, "an array")
        if dtype.itemsize == 0:
            array = np.empty(shape, dtype)
        else:
            array = buffer.view(dtype).reshape(shape, order=order)
        return to_native_byte_order(array) if self.native else array


def _layout(state: dict[Any, Any]) -> tuple[Any, tuple[int, ...], Any]:
    """The array's dtype, shape and order, checked: a crafted header gets a clear error."""
    import numpy as np

    dtype, shape, order = state.get("dtype"), state.get("shape"), state.get("order", "C")
    if not isinstance(dtype, np.dtype):
        raise InvalidFileError(f"corrupt joblib file: an array's dtype is {dtype!r}")
    if (
        not isinstance(shape, (tuple, list))
        or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in shape)
        or any(n < 0 for n in shape)
    ):
        raise InvalidFileError(f"corrupt joblib file: an array's shape is {shape!r}")
    if order not in ("C", "F"):
        raise InvalidFileError(f"corrupt joblib file: an array's order is {order!r}")
    return dtype, tuple(int(n) for n in shape), order


class _Unpickler(pickle._Unpickler):
    """The pure-Python unpickler, swapping each array wrapper for its array at BUILD."""

    dispatch = pickle._Unpickler.dispatch.copy()

    def __init__(self, reader: _Reader) -> None:
        super().__init__(reader.source)
        self._reader = reader

    def find_class(self, module: str, name: str) -> Any:
        return wrapper_class(module, name) or super().find_class(module, name)

    def _load_build(self) -> None:
        stack: list[Any] = self.stack  # type: ignore[attr-defined]
        if len(stack) > 1:
            _check_array_state(stack[-2], stack[-1])
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
        if type(stack[-1]) is NumpyArrayWrapper:
            stack[-1] = self._reader.array(stack[-1])

    def _load_bytearray8(self) -> None:
        # pickle's own allocates the claimed size first. self.read, not the
        # source: inside a protocol-4+ frame the bytes come from the frame.
        read = self.read  # type: ignore[attr-defined]
        (size,) = struct.unpack("<Q", read(8))
        self.append(bytearray(read(size)))  # type: ignore[attr-defined]

    # typeshed types the table's entries for the base class only
    dispatch[pickle.BUILD[0]] = _load_build  # type: ignore[assignment]
    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8  # type: ignore[assignment]


def _check_array_state(target: object, state: object) -> None:
    """Refuse an object array's pickled state whose item count is not its size.

    numpy (2.4 at least) crashes the process with a segmentation fault in
    ``ndarray.__setstate__`` when an object array's item list is shorter
    than its shape says, which a crafted or damaged file can ask for.
    """
    numpy = sys.modules.get("numpy")
    if numpy is None or not isinstance(target, numpy.ndarray):
        return
    if not isinstance(state, tuple) or len(state) != 5:
        return
    _, shape, dtype, _, items = state
    if not (isinstance(dtype, numpy.dtype) and dtype.hasobject and isinstance(items, list)):
        return
    try:
        size = math.prod(int(n) for n in shape)
    except (TypeError, ValueError):
        size = -1
    if size != len(items):
        raise InvalidFileError(
            f"corrupt joblib file: an object array of shape {shape!r} holds {len(items)} items"
        )


def read_joblib(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    mmap_mode: str | None = None,
    allowed: Sequence[str] | None = None,
    ensure_native_byte_order: bool = False,
) -> object:
    """Load a file written by ``joblib.dump`` (1.x, any codec) or plain ``pickle``.

    ``source`` is a path or a seekable binary file positioned at the data.
    ``mmap_mode`` maps the arrays of an uncompressed file given by path; for
    a compressed one it warns (``UserWarning``, as joblib) and is ignored, for
    a file object it is ignored (logged at INFO).
    Raises ``ForeignFileError`` for formats it does not read,
    ``InvalidFileError``, ``InvalidFileError`` and ``UnsafeLoadError``.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fileobj:
            return _read(fileobj, os.fspath(source), mmap_mode, allowed, ensure_native_byte_order)
    if mmap_mode is not None:  # as for joblite's files
        logger.info("mmap_mode=%r ignored: a file object cannot be memory-mapped", mmap_mode)
    return _read(source, None, None, allowed, ensure_native_byte_order)


def _read(
    fileobj: BinaryIO,
    path: str | None,
    mmap_mode: str | None,
    allowed: Sequence[str] | None,
    native: bool,
) -> object:
    start = fileobj.tell()
    head = fileobj.read(MAX_PREFIX)
    end = fileobj.seek(0, io.SEEK_END)
    fileobj.seek(start)
    kind = detect(head)
    name = path or "the file"
    if kind is None:
        raise ForeignFileError("not a joblite file, nor a joblib or pickle file joblite reads")
    if kind == "zfile":
        raise ForeignFileError(
            f"{name} uses joblib < 0.10's 'ZF' container, which joblite does not read; "
            "load it with joblib.load and dump it again"
        )
    codec = None if kind == "pickle" else kind
    patterns = None if allowed is None else check_allowed(allowed)
    mapping = mmap_mode if codec is None and start == 0 else None
    if codec is None:
        value = _load(_Reader(_Source(fileobj, end - start, None), patterns, path, mapping, native))
    else:
        with open_decompressed(fileobj, codec) as stream:
            source = _Source(stream, None, codec)
            value = _load(_Reader(source, patterns, path, None, native))
            # Decompress to the end, so a truncated stream or a bad checksum
            # (in the last bytes, after the pickle's STOP) is still an error.
            while source.read_some():
                pass
    if codec is not None and mmap_mode is not None:  # as joblib: asked for, not done
        warnings.warn(
            f"mmap_mode={mmap_mode!r} ignored: {name} is {codec}-compressed",
            UserWarning,
            stacklevel=5,
        )
    return value


def _load(reader: _Reader) -> object:
    try:
        return reader.load_stream()
    except pickle.UnpicklingError as error:
        if type(error) is not pickle.UnpicklingError:
            raise  # UnsafeLoadError: the caller's allowed-list, not the file
        raise InvalidFileError(
            f"the joblib file's pickle stream could not be read: {error}"
        ) from None
    except EOFError:
        raise InvalidFileError("truncated joblib file: the pickle stream ends early") from None
    except InvalidFileError:
        raise
    except (
        IndexError,
        KeyError,
        ValueError,
        TypeError,
        AttributeError,
        OverflowError,
        struct.error,
        RecursionError,
    ) as error:
        # The pickle machine's own errors on a malformed stream (an empty stack,
        # a bad memo key, an unparsable number), or a layout numpy refused.
        raise InvalidFileError(
            f"not a valid joblib or pickle file: {type(error).__name__}: {error}"
        ) from error
