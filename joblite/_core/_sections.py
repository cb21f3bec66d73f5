"""Moving a file's sections (pickle stream, array buffers) to and from disk.

Split out of :mod:`joblite._core.fileformat`, which owns the layout; this
module does the I/O: writes straight from the arrays' memory into
preallocated files (hashing on threads meanwhile), loads split out of a small
file read whole, copied out of a read-only map on threads (or ``readinto``
for file objects), ``numpy.memmap``
for mapped loads, and the chunked, threaded, streamed (de)compression of
compressed files.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import mmap
import os
import stat
import struct
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

import xxhash

from joblite._core.codecs import Codec
from joblite.exceptions import CorruptFileError, MissingDependencyError

logger = logging.getLogger(__name__)

_FRAME = struct.Struct("<IIQ")
_DIGEST = struct.Struct("<Q")
HASH_PIECE = 4 * 1024 * 1024
_WRITE_SLICE = 64 * 1024 * 1024
_PREALLOCATE_MIN = 1024 * 1024
_PARALLEL_MIN = 16 * 1024 * 1024
_PARALLEL_COPY_MIN = 256 * 1024 * 1024
_MAX_THREADS = 8


@dataclass
class Section:
    """One section: its bytes when writing, its manifest entry when reading."""

    view: memoryview | None
    array: object | None  # None for the pickle stream
    nbytes: int = -1
    offset: int | None = None  # uncompressed files only
    checksum: int | None = None  # uncompressed files only

    def __post_init__(self) -> None:
        if self.nbytes < 0 and self.view is not None:
            self.nbytes = self.view.nbytes


def checksum(data: bytes | memoryview) -> int:
    """xxh3_64 of ``data`` (header + manifest, compressed frames)."""
    return int(xxhash.xxh3_64_intdigest(data))


def combine_digests(digests: Iterable[int]) -> int:
    """A section's checksum: xxh3_64 of its ``HASH_PIECE`` pieces' xxh3_64 digests.

    Hashing by pieces lets threads hash (and copy) a large array in parallel.
    """
    return checksum(b"".join(_DIGEST.pack(digest) for digest in digests))


def _pieces(nbytes: int) -> range:
    return range(0, nbytes, HASH_PIECE)


def section_checksum(view: memoryview, threads: int = 1) -> int:
    """The checksum of one uncompressed section (see :func:`combine_digests`)."""
    if 0 < view.nbytes <= HASH_PIECE:  # one piece: what combine_digests would do, inline
        return checksum(_DIGEST.pack(checksum(view)))
    if threads == 1:  # no pipeline: small sections are checksummed per call
        return combine_digests(
            [checksum(view[start : start + HASH_PIECE]) for start in _pieces(view.nbytes)]
        )
    pipeline = _Pipeline(threads)
    try:
        digests: list[int] = []
        for start in _pieces(view.nbytes):
            digests += pipeline.submit(checksum, view[start : start + HASH_PIECE])
        digests += pipeline.drain()
    finally:
        pipeline.close()
    return combine_digests(digests)


def read_exact(fileobj: BinaryIO, size: int, *, what: str, truncated_ok: bool = False) -> bytes:
    """Read ``size`` bytes; a short read is a truncated file (CorruptFileError)."""
    data = fileobj.read(size)
    if len(data) != size and not truncated_ok:
        raise CorruptFileError(
            f"truncated joblite file: the {what} needs {size} bytes, only {len(data)} remain"
        )
    return data


def _readinto_exact(fileobj: BinaryIO, view: memoryview, *, what: str) -> None:
    readinto: Callable[[memoryview], int | None] | None = getattr(fileobj, "readinto", None)
    done = 0
    while done < view.nbytes:
        if readinto is not None:
            count = readinto(view[done:]) or 0
        else:
            chunk = fileobj.read(view.nbytes - done)
            count = len(chunk)
            view[done : done + count] = chunk
        if count == 0:
            raise CorruptFileError(
                f"truncated joblite file: the {what} needs {view.nbytes} bytes, only {done} remain"
            )
        done += count


def _preallocate(fileobj: BinaryIO, nbytes: int) -> None:
    """Reserve the file's blocks up front: on ext4 this halves the time of a big write.

    Only for regular files; anything unusual (pipes, BytesIO, no support) skips it.
    """
    if nbytes < _PREALLOCATE_MIN or not hasattr(os, "posix_fallocate"):
        return
    if "a" in str(getattr(fileobj, "mode", "")):
        return  # appends would land after the reserved (zero) bytes
    try:
        fd = fileobj.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        fileobj.flush()
        os.posix_fallocate(fd, fileobj.tell(), nbytes)
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        logger.debug("could not preallocate %d bytes; writing without", nbytes)


def can_patch(fileobj: BinaryIO) -> bool:
    """True if ``fileobj`` can seek back to rewrite its header (not append-only)."""
    try:
        return fileobj.seekable() and "a" not in str(getattr(fileobj, "mode", ""))
    except (AttributeError, ValueError):
        return False


def write_raw(
    fileobj: BinaryIO,
    sections: list[Section],
    position: int,
    data_start: int,
    end: int,
    *,
    hash_threads: int = 0,
) -> list[int]:
    """Write uncompressed sections at their aligned offsets, straight from memory.

    With ``hash_threads``, also checksum them on threads while writing (both
    release the GIL) and return each section's checksum.
    """
    _preallocate(fileobj, end - position)
    # A pool even for one thread: the point is hashing while this thread writes.
    pipeline = _Pipeline(hash_threads, force_pool=True) if hash_threads else None
    checksums = []
    try:
        for section in sections:
            assert section.view is not None
            assert section.offset is not None
            target = data_start + section.offset
            fileobj.write(b"\0" * (target - position))
            view = section.view
            if pipeline is None:
                for start in range(0, view.nbytes, _WRITE_SLICE):
                    fileobj.write(view[start : start + _WRITE_SLICE])
            else:
                digests: list[int] = []
                for start in _pieces(view.nbytes):
                    piece = view[start : start + HASH_PIECE]
                    digests += pipeline.submit(checksum, piece)
                    fileobj.write(piece)
                digests += pipeline.drain()
                checksums.append(combine_digests(digests))
            position = target + section.nbytes
    finally:
        if pipeline is not None:
            pipeline.close()
    return checksums


def _section_name(index: int) -> str:
    return "pickle stream" if index == 0 else f"array {index - 1}"


def _allocate(section: Section) -> tuple[object, memoryview]:
    """A destination for a section's bytes: bytes-like for pickle, uint8 arrays for arrays."""
    if section.array is None:
        buffer = bytearray(section.nbytes)
        return buffer, memoryview(buffer)
    import numpy as np

    array: Any = np.empty(section.nbytes, dtype=np.uint8)
    return array, memoryview(array)


def _verify(index: int, section: Section, digest: int) -> None:
    # None: the array may have been written through an "r+" map (see fileformat).
    if section.checksum is not None and digest != section.checksum:
        raise CorruptFileError(
            f"corrupt joblite file: the {_section_name(index)} checksum does not match"
        )


def read_raw(
    fileobj: BinaryIO, sections: list[Section], position: int, data_start: int
) -> tuple[object, list[object]]:
    """Read an uncompressed file object's sections in order, verifying each checksum."""
    results = []
    for index, section in enumerate(sections):
        assert section.offset is not None
        target = data_start + section.offset
        if target < position:
            raise CorruptFileError("corrupt joblite file: overlapping sections")
        read_exact(fileobj, target - position, what="padding")
        holder, view = _allocate(section)
        digests = []
        for start in _pieces(section.nbytes):
            piece = view[start : start + HASH_PIECE]
            _readinto_exact(fileobj, piece, what=_section_name(index))
            digests.append(checksum(piece))
        _verify(index, section, combine_digests(digests))
        results.append(holder)
        position = target + section.nbytes
    return results[0], results[1:]


_COPY_BLOCK = 1024 * 1024


def split_whole(
    data: bytes, sections: list[Section], data_start: int, end: int
) -> tuple[object, list[object]]:
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


def _copy_piece(source: Any, destination: Any) -> int:
    """Copy one piece and return its xxh3_64, hashing each block while it is in cache.

    Copying a block, then hashing the copy, reads the source from memory once;
    hashing a whole piece and copying it after reads it twice. numpy and xxhash
    release the GIL, so threads copy in parallel.
    """
    hasher = xxhash.xxh3_64()
    for start in range(0, len(destination), _COPY_BLOCK):
        block = destination[start : start + _COPY_BLOCK]
        block[...] = source[start : start + _COPY_BLOCK]
        hasher.update(block)
    return int(hasher.intdigest())


def read_raw_mapped(
    fileobj: BinaryIO, sections: list[Section], data_start: int
) -> tuple[object, list[object]] | None:
    """Copy an uncompressed file's sections out of a read-only map, on threads.

    Copying from the page cache map beats ``readinto`` (whose in-kernel copy
    into fresh pages is slow) and lets several threads copy and verify at once.
    """
    import numpy as np

    try:
        mapped = mmap.mmap(fileobj.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None  # a file system without mmap: the caller reads sequentially
    if hasattr(mapped, "madvise"):
        mapped.madvise(mmap.MADV_SEQUENTIAL)
    source = np.frombuffer(mapped, dtype=np.uint8)
    nbytes = sum(section.nbytes for section in sections)
    # Copying is memory-bound: below a few hundred MB (a cache hit's big result),
    # starting a pool costs more than a second thread gains (measured: 100 MB
    # loads 10% faster, and steadier, on one thread).
    pipeline = _Pipeline(thread_count_for(nbytes) if nbytes >= _PARALLEL_COPY_MIN else 1)
    holders = []
    try:
        for index, section in enumerate(sections):
            assert section.offset is not None
            holder, view = _allocate(section)
            destination = np.frombuffer(view, dtype=np.uint8)
            start = data_start + section.offset
            digests: list[int] = []
            for piece in _pieces(section.nbytes):
                stop = min(piece + HASH_PIECE, section.nbytes)
                digests += pipeline.submit(
                    _copy_piece, source[start + piece : start + stop], destination[piece:stop]
                )
            digests += pipeline.drain()
            _verify(index, section, combine_digests(digests))
            holders.append(holder)
    finally:
        pipeline.close()
        del source
        # BufferError: a view is still referenced; the map closes when it goes.
        with contextlib.suppress(BufferError):
            mapped.close()
    return holders[0], holders[1:]


def map_raw(
    fileobj: BinaryIO, path: str, sections: list[Section], data_start: int, mmap_mode: str
) -> tuple[object, list[object]]:
    """Read the pickle stream; map each array section with ``numpy.memmap``."""
    import numpy as np

    pickle_section = sections[0]
    assert pickle_section.offset is not None
    fileobj.seek(data_start + pickle_section.offset)
    holder, view = _allocate(pickle_section)
    _readinto_exact(fileobj, view, what="pickle stream")
    _verify(0, pickle_section, section_checksum(view))
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


def _thread_count(chunks: int) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _MAX_THREADS, chunks))


def thread_count_for(nbytes: int) -> int:
    """Threads worth using for ``nbytes`` of hashing or copying (1 for small data)."""
    return _thread_count(nbytes // HASH_PIECE) if nbytes > _PARALLEL_MIN else 1


def _chunks(sections: list[Section], chunk_size: int) -> Iterator[tuple[int, int, int]]:
    for index, section in enumerate(sections):
        for start in range(0, section.nbytes, chunk_size):
            yield index, start, min(chunk_size, section.nbytes - start)


class _Pipeline:
    """Run tasks on a few threads, collecting results in order, a bounded number in flight.

    With one thread, tasks run inline: no pool for small objects.
    """

    def __init__(self, threads: int, *, force_pool: bool = False) -> None:
        self._pool = ThreadPoolExecutor(threads) if threads > 1 or force_pool else None
        self._limit = 2 * threads
        self._pending: collections.deque[Future[Any]] = collections.deque()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Iterator[Any]:
        """Queue ``fn(*args)``; yield results that had to be collected to make room."""
        if self._pool is None:
            yield fn(*args)
            return
        self._pending.append(self._pool.submit(fn, *args))
        while len(self._pending) >= self._limit:
            yield self._pending.popleft().result()

    def drain(self) -> Iterator[Any]:
        while self._pending:
            yield self._pending.popleft().result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _compress_frame(codec: Codec, level: int, chunk: memoryview) -> tuple[bytes, bytes]:
    compressed = codec.compress(chunk, level)
    sizes = struct.pack("<II", len(compressed), chunk.nbytes)
    hasher = xxhash.xxh3_64(sizes)
    hasher.update(compressed)
    digest = hasher.intdigest()
    return sizes + struct.pack("<Q", digest), compressed


def write_compressed(
    fileobj: BinaryIO, sections: list[Section], codec: Codec, level: int, chunk_size: int
) -> None:
    """Compress every section in ``chunk_size`` chunks on threads; write frames in order."""
    chunks = list(_chunks(sections, chunk_size))
    pipeline = _Pipeline(_thread_count(len(chunks)))
    try:
        for index, start, length in chunks:
            view = sections[index].view
            assert view is not None
            for header, compressed in pipeline.submit(
                _compress_frame, codec, level, view[start : start + length]
            ):
                fileobj.write(header)
                fileobj.write(compressed)
        for header, compressed in pipeline.drain():
            fileobj.write(header)
            fileobj.write(compressed)
    finally:
        pipeline.close()


def _decompress_into(codec: Codec, compressed: bytes, destination: memoryview, what: str) -> None:
    try:
        raw = codec.decompress(compressed)
    except MissingDependencyError:
        raise
    except Exception as error:  # each codec has its own error type
        raise CorruptFileError(f"corrupt joblite file: cannot decompress the {what}") from error
    if len(raw) != destination.nbytes:
        raise CorruptFileError(f"corrupt joblite file: a chunk of the {what} has the wrong size")
    destination[:] = raw


def read_compressed(
    fileobj: BinaryIO, sections: list[Section], codec: Codec, chunk_size: int
) -> tuple[object, list[object]]:
    """Read, verify and decompress every frame, in parallel, into preallocated buffers."""
    holders = []
    views = []
    for section in sections:
        holder, view = _allocate(section)
        holders.append(holder)
        views.append(view)
    chunks = list(_chunks(sections, chunk_size))
    pipeline = _Pipeline(_thread_count(len(chunks)))
    try:
        for index, start, length in chunks:
            what = _section_name(index)
            header = read_exact(fileobj, _FRAME.size, what=f"{what} frame header")
            compressed_size, raw_size, expected = _FRAME.unpack(header)
            # A corrupt size must not make us read (and allocate) gigabytes.
            if raw_size != length or compressed_size > length + length // 8 + 65536:
                raise CorruptFileError(f"corrupt joblite file: bad frame sizes in the {what}")
            compressed = read_exact(fileobj, compressed_size, what=what)
            hasher = xxhash.xxh3_64(header[:8])
            hasher.update(compressed)
            if hasher.intdigest() != expected:
                raise CorruptFileError(f"corrupt joblite file: the {what} checksum does not match")
            destination = views[index][start : start + length]
            for _ in pipeline.submit(_decompress_into, codec, compressed, destination, what):
                pass
        for _ in pipeline.drain():
            pass
    finally:
        pipeline.close()
    return holders[0], holders[1:]
