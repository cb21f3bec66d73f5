"""The compression layer of joblib's file format: whole-stream codecs, told apart by prefix.

joblib compresses the entire pickle stream (arrays included) as one stream of
a standard format, so a file is recognised by that format's magic bytes and
read back through a streaming decompressor: memory use stays a buffer's worth,
whatever the file expands to. Files compressed by hand (``gzip model.pkl``)
are the same formats and load the same way.

Example::

    >>> import io
    >>> sink = io.BytesIO()
    >>> with compressing_writer(sink, "gzip", 3) as stream:
    ...     _ = stream.write(b"data")
    >>> detect(sink.getvalue()[:MAX_PREFIX])
    'gzip'
    >>> _ = sink.seek(0)
    >>> open_decompressed(sink, "gzip").read()
    b'data'
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from joblite._core.codecs import get_codec
from joblite.exceptions import InvalidFileError

__all__ = ["CODECS", "MAX_PREFIX", "compressing_writer", "detect", "open_decompressed"]

# Magic bytes of each format joblib writes, as joblib's compressors detect them.
_PREFIXES = (
    (b"ZF", "zfile"),  # joblib < 0.10's own zlib container: not supported
    (b"\x78", "zlib"),
    (b"\x1f\x8b", "gzip"),
    (b"BZ", "bz2"),
    (b"\xfd7zXZ", "xz"),
    (b"\x5d\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\x80", "pickle"),  # PROTO: an uncompressed pickle stream, protocol 2 or later
)
MAX_PREFIX = max(len(prefix) for prefix, _ in _PREFIXES)
# The codecs joblib's format supports, in the names joblib (and joblite) use.
CODECS = ("zlib", "gzip", "bz2", "lzma", "xz", "lz4")
_READ_SIZE = 1024 * 1024


def detect(head: bytes) -> str | None:
    """The format whose magic bytes start ``head``: a codec, "pickle", "zfile" or None."""
    for prefix, name in _PREFIXES:
        if head.startswith(prefix):
            return name
    return None


class _ZlibReader(io.RawIOBase):
    """A raw zlib stream (what joblib's ``BinaryZlibFile`` writes), decompressed on demand.

    ``max_length`` keeps each call's output to the size asked for, so a small
    file that expands enormously never does so all at once.
    """

    def __init__(self, fileobj: BinaryIO) -> None:
        self._fileobj = fileobj
        self._decompressor = zlib.decompressobj()
        self._pending = b""  # compressed input not yet consumed

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._decompressor.eof:
            if not self._pending:
                self._pending = self._fileobj.read(_READ_SIZE)
                if not self._pending:
                    raise InvalidFileError("truncated joblib file: the zlib stream ends early")
            try:
                data = self._decompressor.decompress(self._pending, view.nbytes)
            except zlib.error as error:
                raise InvalidFileError(f"corrupt zlib stream in joblib file: {error}") from None
            self._pending = self._decompressor.unconsumed_tail
            if data:
                view[: len(data)] = data
                return len(data)
        return 0


def open_decompressed(fileobj: BinaryIO, codec: str) -> BinaryIO:
    """A buffered reader of ``fileobj``'s decompressed stream (``codec`` from :func:`detect`).

    Raises :class:`~joblite.exceptions.MissingDependencyError` for lz4 without its extra.
    """
    # The stdlib and lz4 file objects decompress incrementally and buffer themselves;
    # the caller closes the one returned (SIM115 below: it outlives this function).
    stream: Any
    if codec == "zlib":
        stream = io.BufferedReader(_ZlibReader(fileobj), _READ_SIZE)
    elif codec == "gzip":  # also reads files of several gzip members (concatenated)
        stream = gzip.GzipFile(fileobj=fileobj, mode="rb")
    elif codec == "bz2":
        stream = bz2.BZ2File(fileobj, "rb")
    elif codec in ("lzma", "xz"):
        stream = lzma.LZMAFile(fileobj, "rb")  # noqa: SIM115
    elif codec == "lz4":
        get_codec("lz4")  # MissingDependencyError naming the extra
        import lz4.frame

        stream = lz4.frame.LZ4FrameFile(fileobj, "rb")
    else:
        raise ValueError(f"unknown joblib codec {codec!r}")
    return stream  # type: ignore[no-any-return]


class _CompressingWriter(io.RawIOBase):
    """Writes through a streaming compressor object into ``fileobj``."""

    def __init__(self, fileobj: BinaryIO, compressor: Any) -> None:
        self._fileobj = fileobj
        self._compressor = compressor

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        compressed = self._compressor.compress(view)
        if compressed:
            self._fileobj.write(compressed)
        return view.nbytes

    def finish(self) -> None:
        self._fileobj.write(self._compressor.flush())


def _compressor(codec: str, level: int) -> Any:
    if codec == "zlib":
        return zlib.compressobj(level)
    if codec == "gzip":  # wbits 31: the gzip container, with mtime 0 (reproducible)
        return zlib.compressobj(level, zlib.DEFLATED, 31)
    if codec == "bz2":
        return bz2.BZ2Compressor(max(level, 1))
    if codec in ("lzma", "xz"):
        file_format = lzma.FORMAT_ALONE if codec == "lzma" else lzma.FORMAT_XZ
        return lzma.LZMACompressor(format=file_format, preset=level)
    if codec == "lz4":
        get_codec("lz4")  # MissingDependencyError naming the extra
        import lz4.frame

        compressor = lz4.frame.LZ4FrameCompressor(compression_level=level)
        return _Lz4Compressor(compressor)
    raise ValueError(f"`compress`: joblib's format supports {', '.join(CODECS)}; got {codec!r}")


class _Lz4Compressor:
    """lz4's frame compressor behind the compress/flush interface of the stdlib ones."""

    def __init__(self, compressor: Any) -> None:
        self._compressor = compressor
        self._header: bytes | None = compressor.begin()

    def compress(self, data: memoryview) -> bytes:
        header, self._header = self._header or b"", None
        return header + bytes(self._compressor.compress(data))

    def flush(self) -> bytes:
        header, self._header = self._header or b"", None
        return header + bytes(self._compressor.flush())


@contextlib.contextmanager
def compressing_writer(fileobj: BinaryIO, codec: str | None, level: int) -> Iterator[BinaryIO]:
    """A writer into ``fileobj``, compressed with ``codec`` (None: written as is).

    The stream is finished when the block ends without an error.
    """
    if codec is None:
        yield fileobj
        return
    raw = _CompressingWriter(fileobj, _compressor(codec, level))
    writer = io.BufferedWriter(raw, _READ_SIZE)
    yield writer
    writer.flush()
    raw.finish()
