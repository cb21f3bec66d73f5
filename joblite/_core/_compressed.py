"""Compressed sections: declared sizes checked against the codec, frames decoded on threads.

Split out of :mod:`joblite._core._reading` and :mod:`joblite._core.fileformat`
(which owns the layout): every frame's sizes and checksum are checked before
it is decompressed, with its declared size as the output cap, and unfiltered
(:mod:`joblite._core._filters`) into the section's buffer. Sections are
yielded in file order as each completes, so the caller can unpickle while
later chunks still decompress.

Example::

    >>> import io
    >>> from joblite._core.codecs import Compression
    >>> from joblite._core.fileformat import read_object, write_object
    >>> buffer = io.BytesIO()
    >>> write_object([1, 2], buffer, compression=Compression("zlib", 1))
    >>> _ = buffer.seek(0)
    >>> read_object(buffer)
    [1, 2]
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Generator, Iterator
from typing import Any, BinaryIO

import xxhash

from joblite._core import _filters
from joblite._core._manifest import Layout
from joblite._core._reading import allocate, read_exact, section_name
from joblite._core._sections import (
    FRAME,
    IN_FLIGHT_BYTES,
    Pipeline,
    Section,
    chunks,
    thread_count,
)
from joblite._core.codecs import Codec, get_codec
from joblite.exceptions import CorruptFileError, InvalidFileError, MissingDependencyError

__all__ = ["check_compressed_sizes", "get_codec_for_file", "read_compressed"]


def check_compressed_sizes(layout: Layout, codec: Any, available: int) -> None:
    """Refuse declared sizes that ``available`` compressed bytes cannot hold.

    Every chunk takes at least a frame header, and no codec expands past its
    ``max_ratio`` (a registered codec without one is only held to the frames).
    """
    frames = sum(-(-section.nbytes // layout.chunk_size) for section in layout.sections)
    raw = sum(section.nbytes for section in layout.sections)
    max_ratio = getattr(codec, "max_ratio", None)
    payload = available - frames * FRAME.size
    if payload < 0 or (max_ratio is not None and raw > payload * max_ratio):
        raise CorruptFileError(
            f"truncated or corrupt joblite file: the manifest declares {raw} bytes in {frames} "
            "chunks, "
            f"more than the {available} compressed bytes left can hold"
        )


def get_codec_for_file(name: str) -> Any:
    """The codec a file names: a missing extra raises MissingDependencyError."""
    try:
        return get_codec(name)
    except ValueError:
        raise InvalidFileError(
            f"the file is compressed with the unknown codec {name!r}; "
            "register it with joblite.register_compressor before loading"
        ) from None


def _decompress(codec: Codec, compressed: bytes, nbytes: int, what: str) -> bytes:
    """One chunk's raw bytes: exactly ``nbytes`` of them, never more produced."""
    bounded: Callable[[bytes, int], bytes] | None = getattr(codec, "decompress_bounded", None)
    try:
        raw = codec.decompress(compressed) if bounded is None else bounded(compressed, nbytes)
    except MissingDependencyError:
        raise
    except Exception as error:  # each codec has its own error type
        raise CorruptFileError(f"corrupt joblite file: cannot decompress the {what}") from error
    if len(raw) != nbytes:
        raise CorruptFileError(f"corrupt joblite file: a chunk of the {what} has the wrong size")
    return raw


def _decompress_into(
    codec: Codec, compressed: bytes, destination: memoryview, what: str, filter_name: str | None
) -> None:
    raw = _decompress(codec, compressed, destination.nbytes, what)
    if filter_name is None:
        import numpy as np

        # numpy copies without the GIL; a memoryview assignment holds it, stalling the
        # unpickler on the main thread (630 MB copied in 1 MiB pieces on a thread: a
        # Python loop on the main thread ran 4.0-4.6 vs 3.0-3.4 M iterations/s, 2 vCPUs).
        np.copyto(np.frombuffer(destination, np.uint8), np.frombuffer(raw, np.uint8))
    else:  # same size as the destination: _decompress checked it
        _filters.decode_into(filter_name, raw, destination)


def read_compressed(
    fileobj: BinaryIO, sections: list[Section], codec: Codec, chunk_size: int, *, sized: bool
) -> Generator[Any, None, None]:
    """Read, verify and decompress every frame, in parallel; yield each section when done.

    Sections come in file order (the pickle stream first), each as soon as its
    last chunk is decompressed, while later chunks go on on threads: the caller
    unpickles meanwhile, pulling arrays as the pickle stream asks for them
    (a 100-tree RandomForest spends 0.13 s of its 0.4 CPU seconds of loading
    in scikit-learn's unpickling, which so overlaps the decompression). Close
    the generator when done: that ends its threads.

    ``sized``: the caller checked the declared sizes against the file's size
    and the codec's maximum expansion, so chunks are decompressed into
    preallocated buffers on threads; otherwise each section is collected as
    its chunks decompress.
    """
    import numpy as np

    allocated = [allocate(section) for section in sections] if sized else []
    collected = [bytearray() for _ in sections] if not sized else []
    chunk_list = list(chunks(sections, chunk_size))
    # Chunks still to decompress in each section, and the section of each task in flight.
    remaining = [-(-section.nbytes // chunk_size) for section in sections]
    in_flight: collections.deque[int] = collections.deque()
    done = 0  # sections already yielded
    pipeline = Pipeline(thread_count(len(chunk_list)) if sized else 1, max_bytes=IN_FLIGHT_BYTES)

    def finished(results: Iterator[None]) -> None:
        for _ in results:
            remaining[in_flight.popleft()] -= 1

    def section(index: int) -> Any:
        if sized:
            return allocated[index][0]
        return np.frombuffer(collected[index], dtype=np.uint8)

    try:
        for index, start, length in chunk_list:
            while done < index and remaining[done] == 0:  # every chunk of it read and done
                yield section(done)
                done += 1
            what = section_name(index)
            header = read_exact(fileobj, FRAME.size, what=f"{what} frame header")
            compressed_size, raw_size, expected = FRAME.unpack(header)
            # A corrupt size must not make us read (and allocate) gigabytes.
            if raw_size != length or compressed_size > length + length // 8 + 65536:
                raise CorruptFileError(f"corrupt joblite file: bad frame sizes in the {what}")
            compressed = read_exact(fileobj, compressed_size, what=what)
            hasher = xxhash.xxh3_64(header[:8])
            hasher.update(compressed)
            if hasher.intdigest() != expected:
                raise CorruptFileError(f"corrupt joblite file: the {what} checksum does not match")
            filter_name = sections[index].filter
            if sized:
                destination = allocated[index][1][start : start + length]
            else:  # one thread: decoded inline, before submit's results are consumed
                chunk = bytearray(length)
                destination = memoryview(chunk)
            in_flight.append(index)
            finished(
                pipeline.submit(
                    _decompress_into,
                    codec,
                    compressed,
                    destination,
                    what,
                    filter_name,
                    nbytes=length,
                )
            )
            if not sized:
                collected[index] += chunk
        finished(pipeline.drain())
        while done < len(sections):
            yield section(done)
            done += 1
    finally:
        pipeline.close()
