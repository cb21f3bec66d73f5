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
from joblite._core._head import (
    ALIGNMENT,
    ARRAYS_WRITABLE,
    BASE_VERSION,
    FILTERS_VERSION,
    FORMAT_VERSION,
    MAGIC,
    plain_small_file,
    read_layout,
    whole_layout,
)
from joblite._core._head import HEADER as _HEADER
from joblite._core._head import align as _align
from joblite._core._head import encode_head as _encode_head
from joblite._core._head import type_name as _type_name
from joblite._core._manifest import Layout, check_array_sizes
from joblite._core._reading import read_exact
from joblite._core._sections import Section
from joblite._core.arguments import MMAP_MODES
from joblite._core.codecs import UNCOMPRESSED, Codec, Compression, get_codec
from joblite._core.pickling import Pickled, dump_parts, loads
from joblite.exceptions import CorruptFileError, InvalidFileError

__all__ = [
    "ALIGNMENT",
    "FORMAT_VERSION",
    "MAGIC",
    "read_manifest",
    "read_object",
    "small_file",
    "write_object",
    "write_pickled",
]

logger = logging.getLogger(__name__)

CHUNK_SIZE = 8 * 1024 * 1024
# Regular files up to this size are read whole in one call (see _read_path).
SMALL_FILE = 1024 * 1024
# Sections of a file behind a URL are fetched in ranges of at most RANGE_BYTES,
# RANGES_AT_ONCE at a time (so at most 64 MiB of fetched bytes are held at once).
RANGE_BYTES = 8 * 1024 * 1024
RANGES_AT_ONCE = 8
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


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
    whole = small_file(obj, pickled, compression)
    if whole is not None:
        fileobj.write(whole)
    else:
        write_pickled(obj, pickled, fileobj, compression, codec)


def small_file(obj: object, pickled: Pickled, compression: Compression) -> bytes | None:
    """The whole file of ``obj`` (pickled as ``pickled``) if it is small and uncompressed.

    None for a compressed file or more than ``SMALL_FILE`` bytes of payload:
    those are written by :func:`write_pickled`. A small file is written with
    one call (``dump`` to a path: :func:`~joblite._core.fsutil.atomic_write_bytes`).

    >>> from joblite._core.pickling import dump_parts
    >>> small_file([1], dump_parts([1]), UNCOMPRESSED)[:8]
    b'\\x89JOBLITE'
    """
    if compression.codec is not None:
        return None
    if not pickled.buffers:
        if len(pickled.data) > SMALL_FILE:
            return None
        return plain_small_file(obj, pickled.data, pickled.protocol)
    manifest, entries, views = _describe(obj, pickled, compression)
    if int(manifest["total_nbytes"]) > SMALL_FILE:  # type: ignore[call-overload]
        return None
    return _small_file_with_arrays(manifest, views, entries)


def write_pickled(
    obj: object,
    pickled: Pickled,
    fileobj: BinaryIO,
    compression: Compression,
    codec: Codec | None,
) -> None:
    """Write the file of ``obj``, already pickled as ``pickled``, into ``fileobj``.

    The general path, for what :func:`small_file` declines (it writes any file).
    """
    manifest, entries, views = _describe(obj, pickled, compression)
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


def _describe(
    obj: object, pickled: Pickled, compression: Compression
) -> tuple[dict[str, object], list[dict[str, Any]], list[memoryview]]:
    """The manifest (without offsets and checksums), its section entries, the sections' bytes."""
    compressed = compression.codec is not None
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
        "level": compression.level if compressed else 0,
        "chunk_size": CHUNK_SIZE if compressed else None,
        "pickle": entries[0],
        "arrays": entries[1:],
        "arrays_nbytes": arrays_nbytes,
        "total_nbytes": arrays_nbytes + len(pickled.data),
    }
    return manifest, entries, views


def _small_file_with_arrays(
    manifest: dict[str, object], views: list[memoryview], entries: list[dict[str, Any]]
) -> bytes:
    """An uncompressed file of a small object: checksummed inline, returned whole.

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
    return b"".join(parts)


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
            return read_layout(fileobj).manifest
    return read_layout(source).manifest


def read_object(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    mmap_mode: str | None = None,
    allowed: Sequence[str] | None = None,
    fetch_ranges: _reading.FetchRanges | None = None,
    entry: os.stat_result | None = None,
) -> object:
    """Load the object stored in a joblite file (a path or a readable binary file).

    With ``mmap_mode`` ("r", "r+", "c"; "w+" means "r+") and an uncompressed
    file given by path, arrays are ``numpy.memmap`` views of the file. For a
    compressed file or a file object, ``mmap_mode`` is ignored (logged at
    INFO) and arrays are loaded in memory. Every section is checksummed,
    except the array data of a memory-mapped load (read lazily by design).
    ``allowed`` restricts unpickling (see :func:`joblite._core.pickling.loads`).
    ``fetch_ranges`` (a remote file object's ranged reader) fetches the
    sections of an uncompressed file several ranges at once. ``entry``, the
    ``lstat`` a cache checked a path by, makes the open refuse anything else:
    a link or a FIFO (opened without blocking) swapped in since is an
    ``InvalidFileError``; a newer entry renamed over it is read.

    Raises :class:`~joblite.exceptions.InvalidFileError`, ``CorruptFileError``,
    ``UnsupportedVersionError``, ``MissingDependencyError``, ``UnsafeLoadError``,
    and ``ValueError`` for a bad ``mmap_mode``.
    """
    if mmap_mode not in MMAP_MODES:
        raise ValueError(f"`mmap_mode` must be one of {MMAP_MODES}, got {mmap_mode!r}")
    if isinstance(source, (str, os.PathLike)):
        return _read_path(source, mmap_mode, allowed, entry)
    if mmap_mode is not None:
        logger.info("mmap_mode=%r ignored: a file object cannot be memory-mapped", mmap_mode)
    return _read_from(source, None, None, allowed, fetch_ranges=fetch_ranges)


def _read_path(
    path: str | os.PathLike[str],
    mmap_mode: str | None,
    allowed: Sequence[str] | None,
    entry: os.stat_result | None = None,
) -> object:
    fd = os.open(path, os.O_RDONLY | _O_BINARY) if entry is None else _reading.open_entry(path)
    try:
        info = os.fstat(fd)
        if entry is not None:
            _reading.check_entry(path, info, writable=mmap_mode in ("r+", "w+"))
        # Cache hits load many small files: one read and parsing from memory costs a
        # few microseconds where a map or buffered reads cost tens.
        whole = None
        if mmap_mode is None and stat.S_ISREG(info.st_mode) and info.st_size <= SMALL_FILE:
            whole = _reading.read_to_end(fd, info.st_size, SMALL_FILE)
    except BaseException:
        os.close(fd)
        raise
    if whole is not None:
        os.close(fd)
        return _read_whole(whole, allowed)
    with open(fd, "rb") as fileobj:
        return _read_from(fileobj, os.fspath(path), mmap_mode, allowed)


def _read_whole(whole: bytes, allowed: Sequence[str] | None) -> object:
    """Load a small file read whole, parsed straight from memory."""
    layout = whole_layout(whole)
    if layout.codec is not None:  # small but compressed: the frames are streamed
        fileobj = io.BytesIO(whole)
        fileobj.seek(layout.manifest_end)
        return _read_sections(fileobj, layout, None, None, allowed)
    if len(layout.sections) > 1:
        check_array_sizes(layout)
    data_start = _align(layout.manifest_end)
    end = data_start + layout.data_nbytes
    pickle_data, buffers = _reading.split_whole(whole, layout.sections, data_start, end)
    return _unpickle(pickle_data, buffers, allowed)


def _read_from(
    fileobj: BinaryIO,
    path: str | None,
    mmap_mode: str | None,
    allowed: Sequence[str] | None,
    fetch_ranges: _reading.FetchRanges | None = None,
) -> object:
    """Load from ``fileobj``, positioned at the file's start."""
    return _read_sections(fileobj, read_layout(fileobj), path, mmap_mode, allowed, fetch_ranges)


def _read_sections(
    fileobj: BinaryIO,
    layout: Layout,
    path: str | None,
    mmap_mode: str | None,
    allowed: Sequence[str] | None,
    fetch_ranges: _reading.FetchRanges | None = None,
) -> object:
    """Load the sections after the head (``layout``) at ``fileobj``'s position."""
    if len(layout.sections) > 1:
        check_array_sizes(layout)
    available = _reading.bytes_left(fileobj)
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
        if fetch_ranges is not None and available is not None:
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
