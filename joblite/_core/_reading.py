"""Reading a file's sections (pickle stream, array buffers) back, never trusting the file.

Split out of :mod:`joblite._core.fileformat`, which parses the layout and
checks declared sizes against what the file can hold; this module moves the
bytes: split out of a small file read whole, ``pread`` straight into fresh
arrays on threads (hashing each block while it is in cache) for paths,
``readinto`` for file objects and ``numpy.memmap`` for mapped loads
(compressed files: :mod:`joblite._core._compressed`).

Destinations are ``numpy.empty`` buffers, whose pages are touched only as
data lands, so memory grows with the bytes really read or decompressed; a
stream of unknown size is collected as it arrives instead.

Example::

    >>> import io
    >>> read_exact(io.BytesIO(b"abc"), 2, what="header")
    b'ab'
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import xxhash

from joblite._core._sections import (
    HASH_PIECE,
    Pipeline,
    Section,
    checksum,
    combine_digests,
    pieces,
    section_checksum,
    thread_count_for,
)
from joblite.exceptions import CorruptFileError, InvalidFileError

# A cache entry is opened without following a link or blocking on a FIFO.
_O_READ_ENTRY = os.O_RDONLY | getattr(os, "O_BINARY", 0)
_O_READ_ENTRY |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)

__all__ = [
    "allocate",
    "bytes_left",
    "map_raw",
    "read_exact",
    "read_raw",
    "read_raw_at",
    "read_raw_ranges",
    "split_whole",
]

# Reads are issued and hashed in blocks of this size, so each block is hashed
# while still in the CPU cache. 256 MiB float64 from the page cache, 2 vCPUs,
# minimum of 15 runs: 1 MiB blocks on 2 threads 53 ms on ext4 and 53 ms on tmpfs,
# against 62 ms and 70 ms for one plain readinto of the whole buffer (no hash);
# 256 KiB blocks 54 / 67 ms, 4 MiB blocks 49 / 67 ms (noisier).
READ_BLOCK = 1024 * 1024
# Bigger reads of file objects go in steps, so a size a crafted file declares is
# never allocated before the data is there.
_READ_STEP = 16 * 1024 * 1024


def read_exact(fileobj: BinaryIO, size: int, *, what: str, truncated_ok: bool = False) -> bytes:
    """Read ``size`` bytes; a short read is a truncated file (CorruptFileError)."""
    data = fileobj.read(min(size, _READ_STEP))
    if len(data) < size and data:
        parts = [data]
        done = len(data)
        while done < size:
            part = fileobj.read(min(size - done, _READ_STEP))
            if not part:
                break
            parts.append(part)
            done += len(part)
        data = b"".join(parts)
    if len(data) != size and not truncated_ok:
        raise CorruptFileError(
            f"truncated joblite file: the {what} needs {size} bytes, only {len(data)} remain"
        )
    return data


def _skip(fileobj: BinaryIO, nbytes: int, what: str) -> None:
    for start in range(0, nbytes, _READ_STEP):
        read_exact(fileobj, min(_READ_STEP, nbytes - start), what=what)


def section_name(index: int) -> str:
    return "pickle stream" if index == 0 else f"array {index - 1}"


def _truncated(what: str, nbytes: int, done: int) -> CorruptFileError:
    return CorruptFileError(
        f"truncated joblite file: the {what} needs {nbytes} bytes, only {done} remain"
    )


def allocate(section: Section) -> tuple[Any, memoryview]:
    """A destination for a section's bytes; untouched pages cost no memory until written."""
    import numpy as np

    buffer: Any = np.empty(section.nbytes, dtype=np.uint8)
    return buffer, memoryview(buffer)


def _verify(index: int, section: Section, digest: int) -> None:
    # None: the array may have been written through an "r+" map (see fileformat).
    if section.checksum is not None and digest != section.checksum:
        raise CorruptFileError(
            f"corrupt joblite file: the {section_name(index)} checksum does not match"
        )


def _pread_piece(fd: int, view: memoryview, offset: int, what: str) -> int:
    """``pread`` one hash piece into ``view`` block by block; return its xxh3_64."""
    hasher = xxhash.xxh3_64()
    for start in range(0, view.nbytes, READ_BLOCK):
        block = view[start : start + READ_BLOCK]
        done = 0
        while done < block.nbytes:
            count = os.preadv(fd, [block[done:]], offset + start + done)
            if count == 0:  # the file was cut short under us: an error, not a crash
                raise _truncated(what, view.nbytes, start + done)
            done += count
        hasher.update(block)
    return int(hasher.intdigest())


def _readinto_piece(fileobj: BinaryIO, view: memoryview, what: str) -> int:
    """``readinto`` one hash piece block by block; return its xxh3_64."""
    readinto: Callable[[memoryview], int | None] | None = getattr(fileobj, "readinto", None)
    hasher = xxhash.xxh3_64()
    for start in range(0, view.nbytes, READ_BLOCK):
        block = view[start : start + READ_BLOCK]
        done = 0
        while done < block.nbytes:
            if readinto is not None:
                count = readinto(block[done:]) or 0
            else:
                data = fileobj.read(block.nbytes - done)
                count = len(data)
                block[done : done + count] = data
            if count == 0:
                raise _truncated(what, view.nbytes, start + done)
            done += count
        hasher.update(block)
    return int(hasher.intdigest())


def read_raw_at(fd: int, sections: list[Section], data_start: int) -> tuple[Any, list[Any]]:
    """``pread`` an uncompressed file's sections into fresh buffers on threads, verifying each.

    Never a map: a file truncated while it is read gives CorruptFileError, not
    SIGBUS. Threads read and hash different pieces at once (reads release the GIL).
    """
    pipeline = Pipeline(thread_count_for(sum(section.nbytes for section in sections)))
    holders = []
    try:
        for index, section in enumerate(sections):
            assert section.offset is not None
            holder, view = allocate(section)
            start = data_start + section.offset
            digests: list[int] = []
            for piece in pieces(section.nbytes):
                digests += pipeline.submit(
                    _pread_piece,
                    fd,
                    view[piece : piece + HASH_PIECE],
                    start + piece,
                    section_name(index),
                )
            digests += pipeline.drain()
            _verify(index, section, combine_digests(digests))
            holders.append(holder)
    finally:
        pipeline.close()
    return holders[0], holders[1:]


# fetch(starts, ends) -> the bytes of each range [start, end), fetched at once.
FetchRanges = Callable[[list[int], list[int]], list[bytes]]


@dataclass
class _Range:
    """One ranged read: file bytes ``[start, end)`` holding whole hash pieces."""

    start: int
    end: int
    # (section index, start in the section, length, file offset) of each piece
    pieces: list[tuple[int, int, int, int]]


def _plan_ranges(sections: list[Section], data_start: int, range_bytes: int) -> list[_Range]:
    """Cut the sections into ranges of whole pieces; neighbouring small sections share one."""
    ranges: list[_Range] = []
    for index, section in enumerate(sections):
        assert section.offset is not None
        for start in pieces(section.nbytes):
            length = min(HASH_PIECE, section.nbytes - start)
            offset = data_start + section.offset + start
            last = ranges[-1] if ranges else None
            if (
                last is not None
                and last.end <= offset
                and offset + length - last.start <= range_bytes
            ):
                last.end = offset + length
                last.pieces.append((index, start, length, offset))
            else:
                ranges.append(_Range(offset, offset + length, [(index, start, length, offset)]))
    return ranges


def read_raw_ranges(
    fetch: FetchRanges,
    sections: list[Section],
    data_start: int,
    *,
    range_bytes: int,
    at_once: int,
) -> tuple[Any, list[Any]]:
    """Fetch an uncompressed file's sections as ranged reads, ``at_once`` at a time.

    For files behind URLs, where a request costs a round trip: ranges of up
    to ``range_bytes`` are fetched together, copied into fresh buffers and
    hashed piece by piece; each section's checksum is verified at the end.
    """
    allocated = [allocate(section) for section in sections]
    digests: list[list[int]] = [[] for _ in sections]
    ranges = _plan_ranges(sections, data_start, range_bytes)
    for batch in range(0, len(ranges), at_once):
        group = ranges[batch : batch + at_once]
        fetched = fetch([r.start for r in group], [r.end for r in group])
        for request, data in zip(group, fetched, strict=True):
            view = memoryview(data)
            for index, start, length, offset in request.pieces:
                piece = view[offset - request.start : offset - request.start + length]
                if piece.nbytes != length:
                    raise _truncated(section_name(index), sections[index].nbytes, start)
                allocated[index][1][start : start + length] = piece
                digests[index].append(checksum(piece))
    for index, section in enumerate(sections):
        _verify(index, section, combine_digests(digests[index]))
    holders = [holder for holder, _ in allocated]
    return holders[0], holders[1:]


def read_raw(
    fileobj: BinaryIO, sections: list[Section], position: int, data_start: int, *, sized: bool
) -> tuple[Any, list[Any]]:
    """Read an uncompressed file object's sections in order, verifying each checksum.

    ``sized``: the caller checked that the file holds every declared byte, so
    each section is read straight into its buffer; otherwise (a stream of
    unknown length) each is collected piece by piece as data arrives.
    """
    import numpy as np

    results = []
    for index, section in enumerate(sections):
        assert section.offset is not None
        what = section_name(index)
        target = data_start + section.offset
        if target < position:
            raise CorruptFileError("corrupt joblite file: overlapping sections")
        _skip(fileobj, target - position, "padding")
        digests = []
        if sized:
            holder, view = allocate(section)
            for start in pieces(section.nbytes):
                digests.append(_readinto_piece(fileobj, view[start : start + HASH_PIECE], what))
        else:
            collected = bytearray()
            for start in pieces(section.nbytes):
                piece = read_exact(fileobj, min(HASH_PIECE, section.nbytes - start), what=what)
                digests.append(xxhash.xxh3_64_intdigest(piece))
                collected += piece
            holder = np.frombuffer(collected, dtype=np.uint8)
        _verify(index, section, combine_digests(digests))
        results.append(holder)
        position = target + section.nbytes
    return results[0], results[1:]


def split_whole(
    data: bytes, sections: list[Section], data_start: int, end: int
) -> tuple[Any, list[Any]]:
    """The sections of a whole (small) uncompressed file held in memory, each verified.

    The pickle stream is a view of ``data``; each array gets its own writable copy.
    """
    if len(data) < end:
        raise CorruptFileError(
            f"truncated joblite file: {len(data)} bytes, the manifest says {end}"
        )
    whole = memoryview(data)
    results: list[object] = []
    for index, section in enumerate(sections):
        assert section.offset is not None
        start = data_start + section.offset
        view = whole[start : start + section.nbytes]
        _verify(index, section, section_checksum(view))
        results.append(view if section.array is None else bytearray(view))
    return results[0], results[1:]


def map_raw(
    fileobj: BinaryIO, path: str, sections: list[Section], data_start: int, mmap_mode: str
) -> tuple[Any, list[Any]]:
    """Read the pickle stream; map each array section with ``numpy.memmap``."""
    import numpy as np

    pickle_section = sections[0]
    assert pickle_section.offset is not None
    fileobj.seek(data_start + pickle_section.offset)
    holder, view = allocate(pickle_section)
    digests = [
        _readinto_piece(fileobj, view[start : start + HASH_PIECE], "pickle stream")
        for start in pieces(pickle_section.nbytes)
    ]
    _verify(0, pickle_section, combine_digests(digests))
    # Writing back through the map is what "r+" asks for; "w+" would truncate the file.
    mode: Any = "r+" if mmap_mode == "w+" else mmap_mode
    buffers: list[object] = []
    for section in sections[1:]:
        assert section.offset is not None
        if section.nbytes == 0:  # mmap cannot map zero bytes
            empty = np.empty(0, dtype=np.uint8)
            empty.flags.writeable = mode != "r"
            buffers.append(empty)
            continue
        buffers.append(
            np.memmap(
                path,
                dtype=np.uint8,
                mode=mode,
                offset=data_start + section.offset,
                shape=(section.nbytes,),
            )
        )
    return holder, buffers


def bytes_left(fileobj: BinaryIO) -> int | None:
    """Bytes from the position to the end of ``fileobj``; None for a stream of unknown size."""
    try:
        info = os.fstat(fileobj.fileno())
        if stat.S_ISREG(info.st_mode):
            return max(0, info.st_size - fileobj.tell())
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        pass
    try:
        if fileobj.seekable():
            position = fileobj.tell()
            end = fileobj.seek(0, io.SEEK_END)
            fileobj.seek(position)
            return max(0, end - position)
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        pass
    return None


def open_entry(path: str | os.PathLike[str]) -> int:
    """Open a cache entry for reading: never through a link, never blocking on a FIFO."""
    # The cache checked the path with lstat just before: a link or a FIFO
    # swapped in since must neither be followed nor block the open.
    try:
        return os.open(path, _O_READ_ENTRY)
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        raise InvalidFileError(f"{os.fspath(path)} became a link while it was read") from None


def check_entry(path: str | os.PathLike[str], info: os.stat_result, writable: bool) -> None:
    """Refuse an opened entry that is not a regular file (or is hard-linked, if ``writable``)."""
    # The cache's lstat rule, on the file actually opened. Another process may
    # have replaced the entry by a newer one since (a rename): that file is read.
    if not stat.S_ISREG(info.st_mode) or (writable and info.st_nlink > 1):
        raise InvalidFileError(f"{os.fspath(path)} was swapped for a special file or a link")


def read_to_end(fd: int, size: int, chunk: int) -> bytes:
    """All of ``fd``'s file, ``size`` bytes as its fstat said, in one read when it did not grow."""
    # One byte more than the size: a file growing meanwhile is read to its end.
    # Exactly ``size`` bytes for ``size + 1`` asked is the end: no second read
    # to see b"" (a shorter read may be partial, on a network file system).
    first = os.read(fd, size + 1)
    if len(first) == size:
        return first
    chunks = [first]
    while chunks[-1]:
        chunks.append(os.read(fd, chunk))
    return b"".join(chunks)
