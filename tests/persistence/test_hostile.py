"""Hostile and changing files: a joblite error, bounded memory, never a crash.

Scenarios that could kill the interpreter (SIGBUS) or exhaust memory run in a
subprocess, so a regression fails the test instead of taking pytest down.
"""

from __future__ import annotations

import bz2
import io
import os
import pathlib
import struct
import sys
import zlib
from typing import Any

import lz4.frame
import numpy as np
import pytest

from joblite import cli
from joblite._core import fileformat
from joblite._core._sections import checksum
from joblite._core.codecs import get_codec
from joblite.exceptions import CorruptFileError
from joblite.persistence import dump, inspect, load

from .helpers import ALL_CODECS, assert_same, rewrite_manifest, run_script


def test_a_file_truncated_while_it_loads_is_an_error_not_a_crash(tmp_path: pathlib.Path) -> None:
    # A writer truncating the file in place at the worst moments: right after the
    # load has checked the file's size, and right after any map of it is made.
    result = run_script(
        """
        import mmap, os, sys
        import numpy as np
        import joblite
        from joblite.exceptions import CorruptFileError

        path = os.path.join(sys.argv[1], "big.jl")
        joblite.dump({"a": np.arange(1_000_000.0)}, path)

        def truncate():
            os.truncate(path, os.path.getsize(path) // 2)

        real_fstat, real_mmap, calls = os.fstat, mmap.mmap, []

        def fstat(fd):
            info = real_fstat(fd)
            calls.append(fd)
            if len(calls) == 2:  # the first decides how to read; the second checks the size
                truncate()
            return info

        def mapped(*args, **kwargs):
            result = real_mmap(*args, **kwargs)
            truncate()
            return result

        os.fstat, mmap.mmap = fstat, mapped
        try:
            joblite.load(path)
        except CorruptFileError as error:
            print("CorruptFileError:", error)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "CorruptFileError: truncated" in result.stdout


def _compressed_file(codec: str, frames: list[bytes], chunk_size: int, nbytes: int) -> bytes:
    """A compressed joblite file whose pickle section is ``frames``, all checksums right."""
    manifest = {
        "format_version": 1,
        "object_type": "builtins.bytes",
        "protocol": 5,
        "codec": codec,
        "level": 1,
        "chunk_size": chunk_size,
        "pickle": {"nbytes": nbytes},
        "arrays": [],
        "arrays_nbytes": 0,
        "total_nbytes": nbytes,
    }
    parts = [fileformat._encode_head(manifest)]
    for frame in frames:
        sizes = struct.pack("<II", len(frame), min(chunk_size, nbytes))
        parts += [sizes, struct.pack("<Q", checksum(sizes + frame)), frame]
    return b"".join(parts)


def _zeros_stream(compressor: Any, nbytes: int) -> bytes:
    """``nbytes`` zeros through a streaming compressor, 1 MiB at a time."""
    block = bytes(1 << 20)
    return b"".join(
        [*(compressor.compress(block) for _ in range(nbytes >> 20)), compressor.flush()]
    )


def _hostile_files() -> dict[str, bytes]:
    import zstandard

    small = io.BytesIO()
    dump({"a": np.arange(10.0)}, small, compress=("zlib", 1))
    raw = io.BytesIO()
    dump(b"x" * 100, raw)
    bomb = 64 << 20  # each frame below decompresses to 64 MiB; its chunk is 64 KiB
    chunk = 64 << 10
    zstd_frame = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(
        zstd_frame, size=bomb, closefd=False
    ) as writer:  # the frame header declares all 64 MiB: zstd allocates them at once
        for _ in range(bomb >> 20):
            writer.write(bytes(1 << 20))
    frames = {
        "zlib": _zeros_stream(zlib.compressobj(9), bomb),
        "gzip": _zeros_stream(zlib.compressobj(9, wbits=31), bomb),
        "bz2": _zeros_stream(bz2.BZ2Compressor(9), bomb),
        "lz4": lz4.frame.compress(bytes(bomb >> 2), store_size=True),
        "zstd": zstd_frame.getvalue(),
    }
    files = {
        f"{codec} frame holding too much": _compressed_file(codec, [frame], chunk, chunk)
        for codec, frame in frames.items()
    }
    for name, size in (("2 GiB", 2 << 30), ("16 GiB", 16 << 30)):
        files[f"compressed, declares {name}"] = rewrite_manifest(
            small.getvalue(), _set_pickle_nbytes(size)
        )
        files[f"uncompressed, declares {name}"] = rewrite_manifest(
            raw.getvalue(), _set_pickle_nbytes(size, uncompressed=True)
        )
    return files


def _set_pickle_nbytes(nbytes: int, *, uncompressed: bool = False) -> Any:
    def change(manifest: dict[str, Any]) -> None:
        manifest["pickle"]["nbytes"] = manifest["total_nbytes"] = nbytes
        if uncompressed:
            manifest["data_nbytes"] = nbytes

    return change


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_small_hostile_files_are_refused_without_big_allocations(tmp_path: pathlib.Path) -> None:
    files = _hostile_files()
    for index, data in enumerate(files.values()):
        (tmp_path / f"{index}.jl").write_bytes(data)
    biggest = max(map(len, files.values()))
    # Each file loaded by path, as a file object and as a stream of unknown length;
    # the peak resident memory of the process must not grow past a small bound.
    result = run_script(
        f"""
        import io, os, resource, sys
        import numpy as np
        import joblite
        from joblite.exceptions import CorruptFileError

        class Stream(io.RawIOBase):  # readable, not seekable: its size is unknown
            def __init__(self, data):
                self._data = io.BytesIO(data)
            def readable(self):
                return True
            def readinto(self, buffer):
                return self._data.readinto(buffer)

        for codec in ("zlib", "gzip", "bz2", "lz4", "zstd", None):  # warm up: imports
            buffer = io.BytesIO()
            joblite.dump(np.zeros(1000), buffer, compress=codec or 0)
            joblite.load(io.BytesIO(buffer.getvalue()))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # A regression must fail this test, not exhaust a shared machine's memory.
        with open("/proc/self/statm") as statm:
            virtual = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (virtual + (1 << 30), resource.RLIM_INFINITY))
        for index in range({len(files)}):
            path = os.path.join(sys.argv[1], f"{{index}}.jl")
            with open(path, "rb") as f:
                data = f.read()
            for source in (path, open(path, "rb"), Stream(data)):
                try:
                    joblite.load(source)
                except CorruptFileError:
                    pass
                else:
                    raise AssertionError(f"file {{index}} loaded from {{source!r}}")
        growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
        print("growth KiB", growth)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    growth = int(result.stdout.split()[-1]) * 1024
    assert growth <= 16 * 2**20 + 10 * biggest, (growth, list(files))


@pytest.mark.parametrize("codec", ALL_CODECS)
def test_files_compressed_near_the_codec_maximum_still_load(codec: str) -> None:
    # Zeros compress about as well as anything can: the size checks must not refuse them.
    value = np.zeros(fileformat.CHUNK_SIZE // 8 + 1000)
    level = getattr(get_codec(codec), "max_level", 9)
    buffer = io.BytesIO()
    dump(value, buffer, compress=(codec, level))
    assert_same(load(io.BytesIO(buffer.getvalue())), value)


@pytest.mark.parametrize("codec", ALL_CODECS)
def test_codecs_stop_decompressing_at_the_declared_size(codec: str) -> None:
    bounded = get_codec(codec).decompress_bounded  # type: ignore[attr-defined]
    compressed = get_codec(codec).compress(bytes(100_000), 3)
    assert bounded(compressed, 100_000) == bytes(100_000)
    with pytest.raises(ValueError, match="more than"):
        bounded(compressed, 99_999)
    with pytest.raises(Exception):  # noqa: B017, PT011 each codec has its own error type
        bounded(compressed[: len(compressed) // 2], 100_000)


def _with_manifest(manifest_bytes: bytes) -> bytes:
    head = fileformat._HEADER.pack(fileformat.MAGIC, 1, 0, 0, len(manifest_bytes), 0)[:24]
    return head + struct.pack("<Q", checksum(head + manifest_bytes)) + manifest_bytes


def _set(path: list[Any], value: object) -> Any:
    def change(manifest: dict[str, Any]) -> None:
        target: Any = manifest
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _shrink_first_array(manifest: dict[str, Any]) -> None:
    # Consistent totals: only the array's size disagrees with its shape and dtype.
    for entry in (manifest["arrays"][0], manifest):
        key = "nbytes" if entry is not manifest else "arrays_nbytes"
        entry[key] -= 8
    manifest["total_nbytes"] -= 8


SCHEMA_VIOLATIONS = {
    "shape is an int": _set(["arrays", 0, "shape"], 7),
    "negative size in shape": _set(["arrays", 0, "shape"], [-1]),
    "order": _set(["arrays", 0, "order"], "X"),
    "dtype is a number": _set(["arrays", 0, "dtype"], 5),
    "dtype field": _set(["arrays", 0, "dtype"], [["a"]]),
    "object_type": _set(["object_type"], None),
    "nbytes disagrees with shape": _shrink_first_array,
    "object dtype": _set(["arrays", 0, "dtype"], "|O"),
    "unknown dtype": _set(["arrays", 0, "dtype"], "<q99"),
}


# Found when loading (numpy reads the dtype), not by inspect, which never imports numpy.
FOUND_BY_LOAD_ONLY = {"nbytes disagrees with shape", "object dtype", "unknown dtype"}


@pytest.mark.parametrize("name", SCHEMA_VIOLATIONS)
def test_manifests_outside_the_schema_are_corrupt_files(tmp_path: pathlib.Path, name: str) -> None:
    buffer = io.BytesIO()
    dump({"w": np.arange(10.0), "n": 1}, buffer)
    path = tmp_path / "bad.jl"
    path.write_bytes(rewrite_manifest(buffer.getvalue(), SCHEMA_VIOLATIONS[name]))
    for mmap_mode in (None, "r"):
        with pytest.raises(CorruptFileError, match=r"manifest|array 0"):
            load(path, mmap_mode=mmap_mode)
    if name not in FOUND_BY_LOAD_ONLY:
        with pytest.raises(CorruptFileError, match="malformed manifest"):
            inspect(path)


def test_a_deeply_nested_manifest_is_a_corrupt_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "deep.jl"
    path.write_bytes(_with_manifest(b"[" * 100_000 + b"]" * 100_000))
    with pytest.raises(CorruptFileError, match="nested"):
        load(path)
    with pytest.raises(CorruptFileError, match="nested"):
        inspect(path)
    # Brackets inside strings do not count.
    quoted = b'{"format_version": "' + b"[" * 100 + b'"}'
    with pytest.raises(CorruptFileError, match="format_version"):
        inspect(io.BytesIO(_with_manifest(quoted)))


def test_cli_inspect_of_a_crafted_manifest_is_one_line(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    buffer = io.BytesIO()
    dump({"w": np.arange(10.0)}, buffer)
    path = tmp_path / "bad.jl"
    path.write_bytes(rewrite_manifest(buffer.getvalue(), SCHEMA_VIOLATIONS["shape is an int"]))
    assert cli.main(["inspect", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("joblite inspect: corrupt joblite file")
    assert captured.err.count("\n") == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_named_pipe_given_by_path_is_read_as_a_stream(tmp_path: pathlib.Path) -> None:
    import threading

    value = {"a": np.arange(300_000.0)}  # past SMALL_FILE: not read whole
    buffer = io.BytesIO()
    dump(value, buffer)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)

    def write() -> None:
        with open(pipe, "wb") as f:  # blocks until the reader opens the pipe
            f.write(buffer.getvalue())

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert_same(load(pipe), value)
    finally:
        writer.join()
