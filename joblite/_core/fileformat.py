"""joblite's own container format (versions 1 and 2): header, manifest, pickle, arrays.

Layout, all integers little-endian::

    header    32 bytes: magic b"\\x89JOBLITE", u16 format version, u16 flags,
              u32 reserved (0), u64 manifest length, u64 xxh3_64 of the
              header's first 24 bytes + the manifest. Flag 1 (ARRAYS_WRITABLE)
              is set when a reader maps the file with ``mmap_mode="r+"``: its
              arrays may then change in place, so their checksums are no
              longer verified (the header, manifest and pickle stream still are).
    manifest  UTF-8 JSON: codec, object type, each section's size, ... (never
              needs unpickling, so ``read_manifest`` is safe on untrusted files)
    sections  section 0 is the pickle stream, then one per out-of-band array:
      uncompressed: raw bytes, each starting on a 64-byte boundary counted from
              the file start, so mmap maps arrays in place; their offsets
              (relative to the first aligned byte after the manifest) and
              xxh3_64 checksums are in the manifest.
      compressed: each section cut into ``chunk_size`` chunks, each stored as
              a frame ``u32 compressed size, u32 raw size, u64 xxh3_64 of
              (sizes + compressed bytes)`` + the compressed bytes; chunks are
              (de)compressed in parallel threads and streamed.

Version 2 adds a ``filter`` to each array entry of a compressed file's
manifest (:mod:`joblite._core._filters`: each chunk was filtered before
compression); it is written only when an array is filtered, so other files
stay version 1 for readers that know no other.

Example::

    >>> import io
    >>> buffer = io.BytesIO()
    >>> write_object({"a": 1}, buffer)
    >>> _ = buffer.seek(0)
    >>> read_object(buffer)
    {'a': 1}
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import stat
import struct
import warnings
from collections.abc import Generator, Iterable, Sequence
from typing import Any, BinaryIO

from joblite._core import _reading, _sections
from joblite._core._compressed import check_compressed_sizes, get_codec_for_file, read_compressed
from joblite._core._manifest import Layout, check_array_sizes, parse_manifest
from joblite._core._reading import read_exact
from joblite._core._sections import Section
from joblite._core.arguments import MMAP_MODES
from joblite._core.codecs import UNCOMPRESSED, Compression, get_codec
from joblite._core.pickling import dump_parts, loads
from joblite.exceptions import (
    CorruptFileError,
    ForeignFileError,
    InvalidFileError,
    UnsupportedVersionError,
)

__all__ = [
    "ALIGNMENT",
    "FORMAT_VERSION",
    "MAGIC",
    "read_manifest",
    "read_object",
    "write_object",
]

logger = logging.getLogger(__name__)

MAGIC = b"\x89JOBLITE"
FORMAT_VERSION = 2  # the newest version this joblite reads and writes
# What a file needs: version 1 unless an array is filtered (see _filters).
BASE_VERSION = 1
FILTERS_VERSION = 2
ALIGNMENT = 64
CHUNK_SIZE = 8 * 1024 * 1024
_HEADER = struct.Struct("<8sHHIQQ")
ARRAYS_WRITABLE = 1
_MAX_MANIFEST = 256 * 1024 * 1024
# Regular files up to this size are read whole in one call (see _read_path).
SMALL_FILE = 1024 * 1024
# Sections of a file behind a URL are fetched in ranges of at most RANGE_BYTES,
# RANGES_AT_ONCE at a time (so at most 64 MiB of fetched bytes are held at once).
RANGE_BYTES = 8 * 1024 * 1024
RANGES_AT_ONCE = 8
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
# Built once: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)

# First bytes of files joblib writes: a pickle, or one of its compressors' streams.
_JOBLIB_SIGNATURES = {
    b"\x80": "an uncompressed joblib or pickle file",
    b"\x78": "a zlib-compressed joblib file",
    b"ZF": "a zlib-compressed joblib file (old format)",
    b"\x1f\x8b": "a gzip-compressed joblib file",
    b"BZh": "a bz2-compressed joblib file",
    b"\xfd7zXZ": "an xz-compressed joblib file",
    b"\x5d\x00\x00": "an lzma-compressed joblib file",
    b"\x04\x22\x4d\x18": "an lz4-compressed joblib file",
    b"\x28\xb5\x2f\xfd": "a zstd-compressed file",
}


def _align(offset: int) -> int:
    return -(-offset // ALIGNMENT) * ALIGNMENT


def _type_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _dtype_description(dtype: Any) -> object:
    # Structured dtypes need their field list; everything else has a short code.
    return dtype.str if dtype.names is None else dtype.descr


def write_object(
    obj: object,
    fileobj: BinaryIO,
    *,
    compression: Compression = UNCOMPRESSED,
    protocol: int | None = None,
) -> None:
    """Serialize ``obj`` into the writable binary ``fileobj`` (format version 1, or 2 if filtered).

    Arrays' bytes are written straight from their memory. Raises what pickling
    raises for unpicklable objects (before anything is written), and
    :class:`~joblite.exceptions.MissingDependencyError` for a missing codec.
    """
    codec = None if compression.codec is None else get_codec(compression.codec)
    pickled = dump_parts(obj, protocol=protocol)
    if codec is None and not pickled.buffers and len(pickled.data) <= SMALL_FILE:
        fileobj.write(_plain_small_file(obj, pickled.data, pickled.protocol))
        return
    views = [memoryview(pickled.data), *(buffer.raw() for buffer in pickled.buffers)]
    arrays_nbytes = sum(info.nbytes for info in pickled.arrays)
    entries: list[dict[str, Any]] = [{"nbytes": len(pickled.data)}]
    entries += [
        {
            "dtype": _dtype_description(info.dtype),
            "shape": list(info.shape),
            "order": info.order,
            "nbytes": info.nbytes,
        }
        for info in pickled.arrays
    ]
    manifest: dict[str, object] = {
        "format_version": BASE_VERSION,
        "object_type": _type_name(obj),
        "protocol": pickled.protocol,
        "codec": compression.codec,
        "level": compression.level if codec is not None else 0,
        "chunk_size": CHUNK_SIZE if codec is not None else None,
        "pickle": entries[0],
        "arrays": entries[1:],
        "arrays_nbytes": arrays_nbytes,
        "total_nbytes": arrays_nbytes + len(pickled.data),
    }
    if codec is None and arrays_nbytes + len(pickled.data) <= SMALL_FILE:
        _write_small(fileobj, manifest, views, entries)
        return
    sections = [
        Section(view, info) for view, info in zip(views, [None, *pickled.arrays], strict=True)
    ]
    if codec is not None:
        _sections.choose_filters(sections, codec, compression.level)
        if any(section.filter is not None for section in sections):
            # Version 2 only when a filter is used: other files stay readable by
            # joblite releases that know version 1 alone.
            manifest["format_version"] = FILTERS_VERSION
            for entry, section in zip(entries[1:], sections[1:], strict=True):
                entry["filter"] = section.filter
        fileobj.write(_encode_head(manifest))
        _sections.write_compressed(fileobj, sections, codec, compression.level, CHUNK_SIZE)
    else:
        _write_uncompressed(fileobj, manifest, sections, entries)


def _write_small(
    fileobj: BinaryIO,
    manifest: dict[str, object],
    views: list[memoryview],
    entries: list[dict[str, Any]],
) -> None:
    """An uncompressed file of a small object: checksummed inline, written in one call.

    Memory writes one per cache miss, so the per-call overhead matters here.
    """
    offset = 0
    for view, entry in zip(views, entries, strict=True):
        offset = _align(offset)
        entry["offset"] = offset
        entry["checksum"] = f"{_sections.section_checksum(view):016x}"
        offset += view.nbytes
    manifest["data_nbytes"] = offset
    head = _encode_head(manifest)
    parts: list[bytes | memoryview] = [head]
    position = len(head)
    data_start = _align(position)
    for view, entry in zip(views, entries, strict=True):
        parts += (bytes(data_start + entry["offset"] - position), view)
        position = data_start + entry["offset"] + view.nbytes
    fileobj.write(b"".join(parts))


# The manifest of a file holding only a pickle stream (no arrays, no codec),
# laid out as the general path's encoder would write it; formatted directly
# because Memory writes one per cache miss (a test checks both agree).
_PLAIN_MANIFEST = (
    b'{"format_version":%d,"object_type":%s,"protocol":%d,"codec":null,"level":0,'
    b'"chunk_size":null,"pickle":{"nbytes":%d,"offset":0,"checksum":"%016x"},'
    b'"arrays":[],"arrays_nbytes":0,"total_nbytes":%d,"data_nbytes":%d}'
)


def _plain_small_file(obj: object, data: bytes, protocol: int) -> bytes:
    """The whole file of a small object without arrays, uncompressed."""
    nbytes = len(data)
    checksum = _sections.section_checksum(memoryview(data))
    object_type = _ENCODER.encode(_type_name(obj)).encode()
    manifest = _PLAIN_MANIFEST % (
        BASE_VERSION,
        object_type,
        protocol,
        nbytes,
        checksum,
        nbytes,
        nbytes,
    )
    header_start = _HEADER.pack(MAGIC, BASE_VERSION, 0, 0, len(manifest), 0)[:24]
    manifest_checksum = _sections.checksum(header_start + manifest)
    head = header_start + struct.pack("<Q", manifest_checksum) + manifest
    return head + bytes(_align(len(head)) - len(head)) + data


def _write_uncompressed(
    fileobj: BinaryIO,
    manifest: dict[str, object],
    sections: list[Section],
    entries: list[dict[str, Any]],
) -> None:
    """Lay the sections out on aligned offsets, checksum them, write everything."""
    offset = 0
    threads = _sections.thread_count_for(sum(section.nbytes for section in sections))
    # Big data, seekable file: hash while writing, then rewrite the header and manifest
    # (checksums are fixed-width hex, so the manifest keeps its length).
    patch = threads > 1 and _sections.can_patch(fileobj)
    for section, entry in zip(sections, entries, strict=True):
        offset = _align(offset)
        assert section.view is not None
        entry["offset"] = section.offset = offset
        digest = 0 if patch else _sections.section_checksum(section.view, threads)
        entry["checksum"] = f"{digest:016x}"
        offset += section.nbytes
    manifest["data_nbytes"] = offset
    start = fileobj.tell() if patch else 0
    head = _encode_head(manifest)
    data_start = _align(len(head))
    fileobj.write(head)
    checksums = _sections.write_raw(
        fileobj, sections, len(head), data_start, data_start + offset, hash_threads=threads * patch
    )
    if patch:
        for entry, digest in zip(entries, checksums, strict=True):
            entry["checksum"] = f"{digest:016x}"
        end = fileobj.tell()
        fileobj.seek(start)
        patched = _encode_head(manifest)
        assert len(patched) == len(head)
        fileobj.write(patched)
        fileobj.seek(end)


def _encode_head(manifest: dict[str, object]) -> bytes:
    """The header and the manifest, ready to write."""
    manifest_bytes = _ENCODER.encode(manifest).encode()
    version = int(manifest["format_version"])  # type: ignore[call-overload]
    header_start = _HEADER.pack(MAGIC, version, 0, 0, len(manifest_bytes), 0)[:24]
    manifest_checksum = _sections.checksum(header_start + manifest_bytes)
    return header_start + struct.pack("<Q", manifest_checksum) + manifest_bytes


def _foreign_file_error(head: bytes) -> InvalidFileError:
    for signature, description in _JOBLIB_SIGNATURES.items():
        if head.startswith(signature):
            return ForeignFileError(
                f"not a joblite file: it looks like {description}; "
                "load it with joblib.load (or pickle) if you trust it"
            )
    return InvalidFileError("not a joblite file: the magic bytes are missing")


def _read_layout(fileobj: BinaryIO) -> Layout:
    head = read_exact(fileobj, _HEADER.size, what="header", truncated_ok=True)
    if not head.startswith(MAGIC[: len(head)]) or not head:
        raise _foreign_file_error(head) if head else InvalidFileError("not a joblite file: empty")
    if len(head) < _HEADER.size:
        raise CorruptFileError(f"truncated joblite file: only {len(head)} header bytes")
    _, version, flags, _, manifest_length, expected = _HEADER.unpack(head)
    if version > FORMAT_VERSION:
        raise UnsupportedVersionError(
            f"the file uses joblite format version {version}; this joblite reads versions "
            f"up to {FORMAT_VERSION}: upgrade joblite to load it"
        )
    if version < 1 or flags & ~ARRAYS_WRITABLE or manifest_length > _MAX_MANIFEST:
        raise CorruptFileError("corrupt joblite header (bad version, flags or manifest size)")
    manifest_bytes = read_exact(fileobj, manifest_length, what="manifest")
    if _sections.checksum(head[:24] + manifest_bytes) != expected:
        raise CorruptFileError("corrupt joblite file: the manifest checksum does not match")
    layout = parse_manifest(manifest_bytes, _HEADER.size + manifest_length)
    if layout.manifest["format_version"] != version:
        raise CorruptFileError("corrupt joblite file: the header and manifest versions differ")
    layout.arrays_writable = bool(flags & ARRAYS_WRITABLE)
    if layout.arrays_writable:
        for section in layout.sections[1:]:
            section.checksum = None
    return layout


def _mark_arrays_writable(path: str, layout: Layout) -> None:
    """Set ARRAYS_WRITABLE before an "r+" map lets the caller change the arrays.

    Flags and header checksum are rewritten with one 22-byte write, so a
    crash leaves the old header or the new one.
    """
    with open(path, "r+b") as f:
        head = bytearray(read_exact(f, _HEADER.size, what="header"))
        manifest_length = _HEADER.unpack(head)[4]
        manifest_bytes = read_exact(f, manifest_length, what="manifest")
        struct.pack_into("<H", head, 10, ARRAYS_WRITABLE)
        struct.pack_into("<Q", head, 24, _sections.checksum(bytes(head[:24]) + manifest_bytes))
        f.seek(10)
        f.write(head[10:])
    layout.arrays_writable = True


def read_manifest(source: str | os.PathLike[str] | BinaryIO) -> dict[str, object]:
    """The JSON manifest of a joblite file, read without unpickling anything.

    Raises :class:`~joblite.exceptions.InvalidFileError` (not a joblite file),
    :class:`~joblite.exceptions.CorruptFileError` (truncated or altered
    header/manifest) or :class:`~joblite.exceptions.UnsupportedVersionError`.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fileobj:
            return _read_layout(fileobj).manifest
    return _read_layout(source).manifest


def read_object(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    mmap_mode: str | None = None,
    allowed: Sequence[str] | None = None,
    fetch_ranges: _reading.FetchRanges | None = None,
) -> object:
    """Load the object stored in a joblite file (a path or a readable binary file).

    With ``mmap_mode`` ("r", "r+", "c"; "w+" means "r+") and an uncompressed
    file given by path, arrays are ``numpy.memmap`` views of the file. For a
    compressed file or a file object, ``mmap_mode`` is ignored (logged at
    INFO) and arrays are loaded in memory. Every section is checksummed,
    except the array data of a memory-mapped load (read lazily by design).
    ``allowed`` restricts unpickling (see :func:`joblite._core.pickling.loads`).
    ``fetch_ranges`` (a remote file object's ranged reader) fetches the
    sections of an uncompressed file several ranges at once.

    Raises :class:`~joblite.exceptions.InvalidFileError`, ``CorruptFileError``,
    ``UnsupportedVersionError``, ``MissingDependencyError``, ``UnsafeLoadError``,
    and ``ValueError`` for a bad ``mmap_mode``.
    """
    if mmap_mode not in MMAP_MODES:
        raise ValueError(f"`mmap_mode` must be one of {MMAP_MODES}, got {mmap_mode!r}")
    if isinstance(source, (str, os.PathLike)):
        return _read_path(source, mmap_mode, allowed)
    if mmap_mode is not None:
        logger.info("mmap_mode=%r ignored: a file object cannot be memory-mapped", mmap_mode)
    return _read_from(source, None, None, allowed, fetch_ranges=fetch_ranges)


def _read_path(
    path: str | os.PathLike[str], mmap_mode: str | None, allowed: Sequence[str] | None
) -> object:
    fd = os.open(path, os.O_RDONLY | _O_BINARY)
    try:
        info = os.fstat(fd)
        # Cache hits load many small files: one read and parsing from memory costs a
        # few microseconds where a map or buffered reads cost tens.
        whole = None
        if mmap_mode is None and stat.S_ISREG(info.st_mode) and info.st_size <= SMALL_FILE:
            whole = _read_to_end(fd, info.st_size)
    except BaseException:
        os.close(fd)
        raise
    if whole is not None:
        os.close(fd)
        return _read_from(io.BytesIO(whole), None, None, allowed, whole=whole)
    with open(fd, "rb") as fileobj:
        return _read_from(fileobj, os.fspath(path), mmap_mode, allowed)


def _read_to_end(fd: int, size: int) -> bytes:
    # One byte more than the size: a file growing meanwhile is read to its end.
    chunks = [os.read(fd, size + 1)]
    while chunks[-1]:
        chunks.append(os.read(fd, SMALL_FILE))
    return b"".join(chunks)


def _read_from(
    fileobj: BinaryIO,
    path: str | None,
    mmap_mode: str | None,
    allowed: Sequence[str] | None,
    whole: bytes | None = None,
    fetch_ranges: _reading.FetchRanges | None = None,
) -> object:
    """Load from ``fileobj``; ``whole`` is the entire file when it was read at once."""
    layout = _read_layout(fileobj)
    if len(layout.sections) > 1:
        check_array_sizes(layout)
    available = None if whole is not None else _reading.bytes_left(fileobj)
    if layout.codec is None:
        data_start = _align(layout.manifest_end)
        end = data_start + layout.data_nbytes
        # Checked before anything is allocated: a declared size the file cannot hold
        # is a corrupt file, not a gigabyte allocation (nor a SIGBUS under a map).
        if available is not None and layout.manifest_end + available < end:
            raise CorruptFileError(
                f"truncated joblite file{f' {path!r}' if path else ''}: "
                f"{layout.manifest_end + available} bytes, the manifest says {end}"
            )
        if whole is not None:
            pickle_data, buffers = _reading.split_whole(whole, layout.sections, data_start, end)
        elif fetch_ranges is not None and available is not None:
            pickle_data, buffers = _reading.read_raw_ranges(
                fetch_ranges,
                layout.sections,
                data_start,
                range_bytes=RANGE_BYTES,
                at_once=RANGES_AT_ONCE,
            )
        elif path is not None and mmap_mode is not None:
            if mmap_mode in ("r+", "w+") and not layout.arrays_writable:
                _mark_arrays_writable(path, layout)
            pickle_data, buffers = _reading.map_raw(
                fileobj, path, layout.sections, data_start, mmap_mode
            )
        elif path is not None and available is not None and hasattr(os, "preadv"):
            pickle_data, buffers = _reading.read_raw_at(
                fileobj.fileno(), layout.sections, data_start
            )
        else:
            pickle_data, buffers = _reading.read_raw(
                fileobj,
                layout.sections,
                layout.manifest_end,
                data_start,
                sized=available is not None,
            )
    else:
        codec = get_codec_for_file(layout.codec)
        if available is not None:
            check_compressed_sizes(layout, codec, available)
        return _load_compressed(
            read_compressed(
                fileobj, layout.sections, codec, layout.chunk_size, sized=available is not None
            ),
            allowed,
            path,
            mmap_mode,
        )
    return _unpickle(pickle_data, buffers, allowed)


def _load_compressed(
    sections: Generator[Any, None, None],
    allowed: Sequence[str] | None,
    path: str | None,
    mmap_mode: str | None,
) -> object:
    """Unpickle while later sections still decompress; every frame is verified all the same."""
    try:
        pickle_data = next(sections)
        value = _unpickle(pickle_data, sections, allowed)
        for _ in sections:  # sections the pickle stream never asked for: checked too
            pass
    finally:
        sections.close()
    if mmap_mode is not None:  # as joblib: asked for, not done
        warnings.warn(f"mmap_mode={mmap_mode!r} ignored: {path} is compressed", stacklevel=6)
    return value


def _unpickle(pickle_data: Any, buffers: Iterable[Any], allowed: Sequence[str] | None) -> object:
    try:
        return loads(pickle_data, buffers, allowed=allowed)
    except pickle.UnpicklingError as error:
        if type(error) is not pickle.UnpicklingError:
            raise  # UnsafeLoadError: the caller's allowed-list, not the file
        raise InvalidFileError(f"the pickle stream could not be read: {error}") from error
    except EOFError as error:
        raise CorruptFileError("corrupt joblite file: the pickle stream ends early") from error
