"""Compression codecs: a small :class:`Codec` interface and a registry by name.

Every ``compress`` argument joblib accepts (``True``, ``3``, ``"zlib"``,
``("lz4", 3)``, a file extension) is normalized once, at the API edge, by
:func:`normalize_compress` into a :class:`Compression` value; nothing deeper
ever looks at the raw argument again.

Example::

    >>> from joblite._core.codecs import get_codec, normalize_compress
    >>> normalize_compress(("zlib", 3))
    Compression(codec='zlib', level=3)
    >>> codec = get_codec("zlib")
    >>> codec.decompress(codec.compress(b"abc" * 100, 3)) == b"abc" * 100
    True
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from joblite.exceptions import MissingDependencyError

__all__ = [
    "Codec",
    "Compression",
    "available_codecs",
    "default_compression",
    "get_codec",
    "normalize_compress",
    "register_compressor",
]


@runtime_checkable
class Codec(Protocol):
    """What joblite needs from a compressor: one-shot compress and decompress.

    Chunks are (de)compressed independently, so a codec needs no streaming
    state; implementations should release the GIL so chunks run in parallel.
    """

    name: str
    extensions: tuple[str, ...]
    default_level: int

    def compress(self, data: bytes | memoryview, level: int) -> bytes: ...

    def decompress(self, data: bytes | memoryview) -> bytes: ...


# A codec may also offer ``decompress_bounded(data, max_size) -> bytes``: output
# stops at ``max_size`` (past it, ValueError), so a crafted chunk cannot make the
# reader allocate more than the size the file declares; and ``max_ratio``, the
# most its format can expand (raw / compressed), so declared sizes a file cannot
# hold are refused before anything is allocated. joblite's own codecs have both.


class _StreamDecompressor(Protocol):
    """zlib, bz2, lzma and lz4.frame decompressor objects: one shared API."""

    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes | memoryview, max_length: int) -> bytes: ...


def _decompress_bounded(
    decompressor: _StreamDecompressor, data: bytes | memoryview, max_size: int
) -> bytes:
    """Decompress one whole stream, producing at most ``max_size`` bytes (else ValueError)."""
    result = decompressor.decompress(data, max_size)
    if not decompressor.eof:  # stopped at the cap, or the stream ends early
        # zlib keeps unread input in unconsumed_tail; the others keep it internally.
        tail = getattr(decompressor, "unconsumed_tail", b"")
        if decompressor.decompress(tail, 1):
            raise ValueError(f"the stream holds more than the declared {max_size} bytes")
        if not decompressor.eof:
            raise ValueError("the compressed stream ends early")
    return result


@dataclass(frozen=True)
class Compression:
    """The normalized ``compress`` argument: ``codec=None`` means uncompressed."""

    codec: str | None
    level: int


UNCOMPRESSED = Compression(None, 0)


class _ZlibCodec:
    name = "zlib"
    extensions: tuple[str, ...] = (".z",)
    default_level = 3
    max_level = 9
    max_ratio = 1032  # deflate's limit: a 258-byte match in under 2 bits
    _wbits = zlib.MAX_WBITS

    def compress(self, data: bytes | memoryview, level: int) -> bytes:
        return zlib.compress(data, level)

    def decompress(self, data: bytes | memoryview) -> bytes:
        return zlib.decompress(data)

    def decompress_bounded(self, data: bytes | memoryview, max_size: int) -> bytes:
        return _decompress_bounded(zlib.decompressobj(self._wbits), data, max_size)


class _GzipCodec(_ZlibCodec):
    name = "gzip"
    extensions: tuple[str, ...] = (".gz",)
    _wbits = 16 + zlib.MAX_WBITS  # a gzip member around a deflate stream

    def compress(self, data: bytes | memoryview, level: int) -> bytes:
        # mtime=0: the same data gives the same bytes (reproducible files).
        return gzip.compress(data, level, mtime=0)

    def decompress(self, data: bytes | memoryview) -> bytes:
        return gzip.decompress(data)


class _Bz2Codec:
    name = "bz2"
    extensions: tuple[str, ...] = (".bz2",)
    default_level = 3
    max_level = 9
    # Its run-length stages put ~45 MB of zeros in one block of ~40 bytes: measured
    # 1.18M on 200 MiB of zeros, so the bound has a margin.
    max_ratio = 2_000_000

    def compress(self, data: bytes | memoryview, level: int) -> bytes:
        return bz2.compress(data, max(level, 1))

    def decompress(self, data: bytes | memoryview) -> bytes:
        return bz2.decompress(data)

    def decompress_bounded(self, data: bytes | memoryview, max_size: int) -> bytes:
        return _decompress_bounded(bz2.BZ2Decompressor(), data, max_size)


class _LzmaCodec:
    default_level = 3
    max_level = 9
    # Measured 7,000 on 256 MiB of zeros at preset 9; doubled, as LZMA's range coder
    # has no simple published limit.
    max_ratio = 16_000

    def __init__(self, name: str, extension: str, file_format: int) -> None:
        self.name = name
        self.extensions: tuple[str, ...] = (extension,)
        self._format = file_format

    def compress(self, data: bytes | memoryview, level: int) -> bytes:
        return lzma.compress(data, format=self._format, preset=level)

    def decompress(self, data: bytes | memoryview) -> bytes:
        return lzma.decompress(data, format=self._format)

    def decompress_bounded(self, data: bytes | memoryview, max_size: int) -> bytes:
        return _decompress_bounded(lzma.LZMADecompressor(self._format), data, max_size)


class _Lz4Codec:
    name = "lz4"
    extensions: tuple[str, ...] = (".lz4",)
    default_level = 0  # lz4's own fast mode; higher levels switch to lz4-HC
    max_level = 16
    max_ratio = 256  # a match length grows by 255 per extra byte (measured 243 on zeros)

    def compress(self, data: bytes | memoryview, level: int) -> bytes:
        frame = _import_optional("lz4.frame", "lz4", "lz4", "the lz4 codec")
        result: bytes = frame.compress(data, compression_level=level, store_size=True)
        return result

    def decompress(self, data: bytes | memoryview) -> bytes:
        frame = _import_optional("lz4.frame", "lz4", "lz4", "the lz4 codec")
        result: bytes = frame.decompress(data)
        return result

    def decompress_bounded(self, data: bytes | memoryview, max_size: int) -> bytes:
        frame = _import_optional("lz4.frame", "lz4", "lz4", "the lz4 codec")
        return _decompress_bounded(frame.LZ4FrameDecompressor(), data, max_size)


class _ZstdCodec:
    name = "zstd"
    extensions: tuple[str, ...] = (".zst", ".zstd")
    default_level = 3
    max_level = 22
    max_ratio = 32768  # an RLE block: 128 KiB from 4 bytes (measured 32,498 on zeros)

    def __init__(self) -> None:
        # zstd contexts are costly to create and not thread-safe: one per thread and level.
        self._local = threading.local()

    def _contexts(self) -> dict[object, Any]:
        contexts: dict[object, Any] | None = getattr(self._local, "contexts", None)
        if contexts is None:
            contexts = self._local.contexts = {}
        return contexts

    def compress(self, data: bytes | memoryview, level: int) -> bytes:
        contexts = self._contexts()
        compressor = contexts.get(level)
        if compressor is None:
            zstandard = _import_optional("zstandard", "zstandard", "zstd", "the zstd codec")
            compressor = contexts[level] = zstandard.ZstdCompressor(level=level)
        result: bytes = compressor.compress(data)
        return result

    def _decompressor(self) -> Any:
        contexts = self._contexts()
        decompressor = contexts.get("d")
        if decompressor is None:
            zstandard = _import_optional("zstandard", "zstandard", "zstd", "the zstd codec")
            decompressor = contexts["d"] = zstandard.ZstdDecompressor()
        return decompressor

    def decompress(self, data: bytes | memoryview) -> bytes:
        result: bytes = self._decompressor().decompress(data)
        return result

    def decompress_bounded(self, data: bytes | memoryview, max_size: int) -> bytes:
        decompressor = self._decompressor()
        zstandard = _import_optional("zstandard", "zstandard", "zstd", "the zstd codec")
        # A frame declaring its size is decompressed into that many bytes, whatever
        # max_output_size says (which only caps frames without one): check it first.
        if zstandard.frame_content_size(data) > max_size:
            raise ValueError(f"the frame declares more than {max_size} bytes")
        result: bytes = decompressor.decompress(data, max_output_size=max_size)
        return result


class _JoblibCompressorCodec:
    """Adapts a joblib ``CompressorWrapper`` (a file-object factory) to :class:`Codec`."""

    def __init__(self, name: str, wrapper: Any) -> None:
        self.name = name
        extension = getattr(wrapper, "extension", None)
        self.extensions: tuple[str, ...] = (
            (extension,) if isinstance(extension, str) and extension else ()
        )
        self.default_level = 3
        self.max_level = 9
        self._wrapper = wrapper

    def _open(self, fileobj: io.BytesIO, mode: str, level: int | None = None) -> Any:
        # As joblib does: the wrapper's compressor_file/decompressor_file
        # (subclasses override them), else its fileobj_factory.
        if mode == "wb" and hasattr(self._wrapper, "compressor_file"):
            return self._wrapper.compressor_file(fileobj, compresslevel=level)
        if mode == "rb" and hasattr(self._wrapper, "decompressor_file"):
            return self._wrapper.decompressor_file(fileobj)
        if level is None:
            return self._wrapper.fileobj_factory(fileobj, mode)
        return self._wrapper.fileobj_factory(fileobj, mode, compresslevel=level)

    def compress(self, data: bytes | memoryview, level: int) -> bytes:
        buffer = io.BytesIO()
        with self._open(buffer, "wb", level) as f:
            f.write(data)
        return buffer.getvalue()

    def decompress(self, data: bytes | memoryview) -> bytes:
        with self._open(io.BytesIO(data), "rb") as f:
            result: bytes = f.read()
        return result

    def decompress_bounded(self, data: bytes | memoryview, max_size: int) -> bytes:
        with self._open(io.BytesIO(data), "rb") as f:
            result: bytes = f.read(max_size + 1)
        if len(result) > max_size:
            raise ValueError(f"the stream holds more than the declared {max_size} bytes")
        return result


def _import_optional(module: str, package: str, extra: str, feature: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(package, extra, feature) from None


_OPTIONAL_PACKAGES = {"zstd": ("zstandard", "zstandard"), "lz4": ("lz4.frame", "lz4")}

_registry_lock = threading.Lock()
_CODECS: dict[str, Codec] = {
    codec.name: codec
    for codec in (
        _ZlibCodec(),
        _GzipCodec(),
        _Bz2Codec(),
        _LzmaCodec("lzma", ".lzma", lzma.FORMAT_ALONE),
        _LzmaCodec("xz", ".xz", lzma.FORMAT_XZ),
        _Lz4Codec(),
        _ZstdCodec(),
    )
}
# Only joblite's own lz4/zstd codecs need the extras; a user's replacement may not.
_BUILTIN_OPTIONAL = {name: _CODECS[name] for name in _OPTIONAL_PACKAGES}


def available_codecs() -> list[str]:
    """Names of the registered codecs whose dependencies are installed."""
    names = []
    for name in sorted(_CODECS):
        try:
            get_codec(name)
        except MissingDependencyError:
            continue
        names.append(name)
    return names


def get_codec(name: str) -> Codec:
    """The codec registered as ``name``.

    Raises ``ValueError`` for an unknown name and
    :class:`~joblite.exceptions.MissingDependencyError` when the codec's extra
    (``zstd``, ``lz4``) is not installed.
    """
    codec = _CODECS.get(name)
    if codec is None:
        raise ValueError(f"unknown codec {name!r}; expected one of {sorted(_CODECS)}")
    optional = _OPTIONAL_PACKAGES.get(name)
    if optional is not None and codec is _BUILTIN_OPTIONAL.get(name):
        _import_optional(optional[0], optional[1], name, f"the {name} codec")
    return codec


def default_compression() -> Compression:
    """What ``compress=True`` means: zstd level 3 if installed, else zlib level 3."""
    try:
        get_codec("zstd")
    except MissingDependencyError:
        return Compression("zlib", 3)
    return Compression("zstd", 3)


def _codec_from_extension(filename: str | os.PathLike[str] | None) -> str | None:
    if filename is None:
        return None
    lowered = os.fspath(filename).lower()
    for name, codec in _CODECS.items():
        # tuple(): a user's codec may list them; endswith over all codecs is 0.8 µs, any() took 3
        if lowered.endswith(tuple(codec.extensions)):
            return name
    return None


def _check_level(level: object, maximum: int, codec: str | None = None) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= maximum:
        which = f"{codec} levels are" if codec else "the level must be"
        raise ValueError(f"`compress`: {which} an int from 0 to {maximum}, got {level!r}")
    return level


def normalize_compress(
    compress: object, filename: str | os.PathLike[str] | None = None
) -> Compression:
    """Turn any joblib ``compress`` form into one :class:`Compression`.

    Accepted: ``False``/``0`` (uncompressed), ``True`` (:func:`default_compression`),
    an int 1-9 (zlib, joblib's default codec), a codec name (its default level),
    or ``(name, level)``. As in joblib, when ``compress`` is not a tuple and not a
    name, a ``filename`` ending in a codec's extension (``.z .gz .bz2 .xz .lzma
    .lz4 .zst``) selects that codec, compressing even when ``compress`` is 0.

    >>> normalize_compress(3, "model.gz")
    Compression(codec='gzip', level=3)

    Raises ``ValueError`` naming ``compress`` for anything else, and
    :class:`~joblite.exceptions.MissingDependencyError` for a codec whose extra
    is not installed.
    """
    if isinstance(compress, tuple):
        if len(compress) != 2 or not isinstance(compress[0], str):
            raise ValueError(f"`compress` as a tuple must be (codec name, level), got {compress!r}")
        name, level = compress
        codec = _known_codec(name)
        if level is None:
            return Compression(name, codec.default_level)
        # A tuple may use the codec's full range (zstd goes to 22), as an explicit choice.
        level = _check_level(level, getattr(codec, "max_level", 22), name)
        return Compression(name, level) if level else UNCOMPRESSED
    if isinstance(compress, str):
        return Compression(compress, _known_codec(compress).default_level)
    if compress is None:
        compress = False
    if not isinstance(compress, int):
        raise ValueError(
            "`compress` must be a bool, an int 0-9, a codec name or a (name, level) tuple, "
            f"got {compress!r}"
        )
    from_extension = _codec_from_extension(filename)
    if from_extension is not None:
        codec = _known_codec(from_extension)
        if compress is True or compress is False or compress == 0:
            return Compression(from_extension, codec.default_level)
        return Compression(from_extension, _check_level(compress, 9))
    if compress is True:
        return default_compression()
    if compress is False or compress == 0:
        return UNCOMPRESSED
    return Compression("zlib", _check_level(compress, 9))


def _known_codec(name: str) -> Codec:
    if name not in _CODECS:
        raise ValueError(f"`compress`: unknown codec {name!r}; expected one of {sorted(_CODECS)}")
    return get_codec(name)


def register_compressor(compressor_name: str, compressor: object, force: bool = False) -> None:
    """Register a codec under ``compressor_name`` (joblib-compatible).

    ``compressor`` is a :class:`Codec` or a joblib ``CompressorWrapper`` (any
    object with a ``fileobj_factory``, e.g. ``gzip.GzipFile``). Raises
    ``ValueError`` for a bad name or object, or if the name is taken and
    ``force`` is false.

    >>> register_compressor("zlib", object())  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ValueError: ...
    """
    if not isinstance(compressor_name, str) or not compressor_name:
        raise ValueError(f"`compressor_name` must be a non-empty str, got {compressor_name!r}")
    codec: Codec
    if isinstance(compressor, Codec):
        codec = compressor
    elif callable(getattr(compressor, "fileobj_factory", None)):
        codec = _JoblibCompressorCodec(compressor_name, compressor)
    else:
        raise ValueError(
            "`compressor` must implement the Codec interface (name, extensions, "
            "default_level, compress, decompress) or be a joblib CompressorWrapper, "
            f"got {compressor!r}"
        )
    with _registry_lock:
        if compressor_name in _CODECS and not force:
            raise ValueError(
                f"compressor {compressor_name!r} is already registered; pass force=True"
            )
        _CODECS[compressor_name] = codec
