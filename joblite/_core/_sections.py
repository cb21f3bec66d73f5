"""Writing a file's sections (pickle stream, array buffers) to disk, and what reads share.

Split out of :mod:`joblite._core.fileformat`, which owns the layout; this
module writes straight from the arrays' memory into preallocated files
(hashing on threads meanwhile) and compresses in chunks on threads. It also
holds what :mod:`joblite._core._reading` shares with it: :class:`Section`,
the checksums and the thread pipeline.
"""

from __future__ import annotations

import collections
import io
import logging
import os
import stat
import struct
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

import xxhash

from joblite._core import _filters
from joblite._core.codecs import Codec

logger = logging.getLogger(__name__)

FRAME = struct.Struct("<IIQ")  # compressed frames: u32 size, u32 raw size, u64 xxh3_64
_DIGEST = struct.Struct("<Q")
HASH_PIECE = 4 * 1024 * 1024
_WRITE_SLICE = 64 * 1024 * 1024
_PREALLOCATE_MIN = 1024 * 1024
_PARALLEL_MIN = 16 * 1024 * 1024
_MAX_THREADS = 8
# Compressed files keep chunks of up to this many bytes in all in flight on threads
# beyond 2 per thread (see Pipeline): ~16 of a RandomForest's 1 MB arrays (dump 506
# -> 270 ms, load 408 -> 280 ms, 2 vCPUs), while 8 MiB chunks stay at 2 per thread as
# before (64 MiB made the 500 MB mix load 5% slower). _MAX_PENDING caps the count.
IN_FLIGHT_BYTES = 16 * 1024 * 1024
_MAX_PENDING = 256


@dataclass
class Section:
    """One section: its bytes when writing, its manifest entry when reading."""

    view: memoryview | None
    array: object | None  # None for the pickle stream
    nbytes: int = -1
    offset: int | None = None  # uncompressed files only
    checksum: int | None = None  # uncompressed files only
    filter: str | None = None  # compressed files only: see joblite._core._filters

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


def pieces(nbytes: int) -> range:
    """Start offsets of a section's ``HASH_PIECE`` pieces (its checksum's unit)."""
    return range(0, nbytes, HASH_PIECE)


def section_checksum(view: memoryview, threads: int = 1) -> int:
    """The checksum of one uncompressed section (see :func:`combine_digests`)."""
    if 0 < view.nbytes <= HASH_PIECE:  # one piece: what combine_digests would do, inline
        return checksum(_DIGEST.pack(checksum(view)))
    if threads == 1:  # no pipeline: small sections are checksummed per call
        return combine_digests(
            [checksum(view[start : start + HASH_PIECE]) for start in pieces(view.nbytes)]
        )
    pipeline = Pipeline(threads)
    try:
        digests: list[int] = []
        for start in pieces(view.nbytes):
            digests += pipeline.submit(checksum, view[start : start + HASH_PIECE])
        digests += pipeline.drain()
    finally:
        pipeline.close()
    return combine_digests(digests)


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
    pipeline = Pipeline(hash_threads, force_pool=True) if hash_threads else None
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
                for start in pieces(view.nbytes):
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


def thread_count(chunks: int) -> int:
    """Threads for ``chunks`` independent tasks: at most one per usable CPU, 8 in all."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _MAX_THREADS, chunks))


def thread_count_for(nbytes: int) -> int:
    """Threads worth using for ``nbytes`` of hashing or copying (1 for small data)."""
    return thread_count(nbytes // HASH_PIECE) if nbytes > _PARALLEL_MIN else 1


def chunks(sections: list[Section], chunk_size: int) -> Iterator[tuple[int, int, int]]:
    """``(section index, start, length)`` of each compressed chunk, in file order."""
    for index, section in enumerate(sections):
        for start in range(0, section.nbytes, chunk_size):
            yield index, start, min(chunk_size, section.nbytes - start)


class Pipeline:
    """Run tasks on a few threads, collecting results in order, a bounded number in flight.

    At most ``2 * threads`` tasks are in flight, or more while the bytes they
    cover (``nbytes`` of each :meth:`submit`) stay within ``max_bytes``: many
    small tasks queue up so that no thread idles while the caller waits on the
    oldest. With one thread, tasks run inline: no pool for small objects.
    """

    def __init__(self, threads: int, *, force_pool: bool = False, max_bytes: int = 0) -> None:
        self._pool = ThreadPoolExecutor(threads) if threads > 1 or force_pool else None
        self._limit = 2 * threads
        self._max_bytes = max_bytes
        self._bytes = 0
        self._pending: collections.deque[tuple[Future[Any], int]] = collections.deque()

    def submit(self, fn: Callable[..., Any], *args: Any, nbytes: int = 0) -> Iterator[Any]:
        """Queue ``fn(*args)``; yield results that had to be collected to make room."""
        if self._pool is None:
            yield fn(*args)
            return
        self._pending.append((self._pool.submit(fn, *args), nbytes))
        self._bytes += nbytes
        while len(self._pending) >= self._limit and (
            self._bytes > self._max_bytes or len(self._pending) >= _MAX_PENDING
        ):
            yield self._collect()

    def _collect(self) -> Any:
        future, nbytes = self._pending.popleft()
        self._bytes -= nbytes
        return future.result()

    def drain(self) -> Iterator[Any]:
        while self._pending:
            yield self._collect()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pending.clear()


def _compress_frame(
    codec: Codec, level: int, chunk: memoryview, filter_name: str | None
) -> tuple[bytes, bytes]:
    raw = chunk if filter_name is None else _filters.encode(filter_name, chunk)
    compressed = codec.compress(raw, level)
    sizes = struct.pack("<II", len(compressed), chunk.nbytes)
    hasher = xxhash.xxh3_64(sizes)
    hasher.update(compressed)
    digest = hasher.intdigest()
    return sizes + struct.pack("<Q", digest), compressed


def _choose_filter(codec: Codec, level: int, section: Section) -> str | None:
    dtype: Any = getattr(section.array, "dtype", None)
    if dtype is None or section.view is None:  # the pickle stream
        return None
    return _filters.choose(codec, level, section.view, dtype.kind, dtype.itemsize)


def choose_filters(sections: list[Section], codec: Codec, level: int) -> None:
    """Set each array section's filter (see :func:`joblite._core._filters.choose`), on threads."""
    trials = [s for s in sections if s.nbytes >= _filters.MIN_FILTERED and s.array is not None]
    pipeline = Pipeline(thread_count(len(trials)), max_bytes=IN_FLIGHT_BYTES)
    trial_bytes = _filters.SAMPLE * _filters.SAMPLES  # at most, per candidate
    try:
        chosen: list[str | None] = []
        for section in trials:
            chosen += pipeline.submit(_choose_filter, codec, level, section, nbytes=trial_bytes)
        chosen += pipeline.drain()
    finally:
        pipeline.close()
    for section, name in zip(trials, chosen, strict=True):
        section.filter = name


def write_compressed(
    fileobj: BinaryIO, sections: list[Section], codec: Codec, level: int, chunk_size: int
) -> None:
    """Compress every section in ``chunk_size`` chunks on threads; write frames in order.

    Each chunk is filtered first by its section's ``filter`` (None: as it is).
    """
    chunk_list = list(chunks(sections, chunk_size))
    pipeline = Pipeline(thread_count(len(chunk_list)), max_bytes=IN_FLIGHT_BYTES)
    try:
        for index, start, length in chunk_list:
            section = sections[index]
            assert section.view is not None
            for header, compressed in pipeline.submit(
                _compress_frame,
                codec,
                level,
                section.view[start : start + length],
                section.filter,
                nbytes=length,
            ):
                fileobj.write(header)
                fileobj.write(compressed)
        for header, compressed in pipeline.drain():
            fileobj.write(header)
            fileobj.write(compressed)
    finally:
        pipeline.close()
