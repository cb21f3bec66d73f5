"""Seeded fuzzing of the reader: every mutated file loads equal or raises a joblite error.

The fuzz loop runs in a subprocess (with its address space capped), so a crash
(SIGBUS, SIGSEGV) or a runaway allocation fails the test instead of pytest.
"""

from __future__ import annotations

import pathlib

from .helpers import run_script

FUZZ = """
import io, json, os, random, resource, struct, sys
import numpy as np
from joblite._core import fileformat
from joblite._core._sections import checksum
from joblite.exceptions import JobliteError
from joblite.persistence import dump, load

SEED, MUTATIONS = 1, 60  # 480 mutated files, each loaded four ways
CODECS = [0, "bz2", "gzip", "lz4", "lzma", "xz", "zlib", "zstd"]
VALUE = {
    "f": np.linspace(0, 1, 300),
    "s": np.array([(1, b"ab"), (2, b"cd")], dtype=[("i", "<i4"), ("t", "S2")]),
    "F": np.asfortranarray(np.arange(12, dtype=">i2").reshape(3, 4)),
    "meta": ["text", 2.5, None, {"k": (1, 2)}],
}
HEADER = struct.Struct("<8sHHIQQ")


class Stream(io.RawIOBase):  # readable, not seekable: its size is unknown
    def __init__(self, data):
        self._data = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        return self._data.readinto(buffer)


def same(loaded, expected, array_bytes):
    if isinstance(expected, np.ndarray):
        return (
            isinstance(loaded, np.ndarray)
            and loaded.dtype == expected.dtype
            and loaded.shape == expected.shape
            and (not array_bytes or loaded.tobytes("A") == expected.tobytes("A"))
        )
    if isinstance(expected, dict):
        return (
            type(loaded) is dict
            and list(loaded) == list(expected)
            and all(same(loaded[k], expected[k], array_bytes) for k in expected)
        )
    if isinstance(expected, (list, tuple)):
        return (
            type(loaded) is type(expected)
            and len(loaded) == len(expected)
            and all(same(a, b, array_bytes) for a, b in zip(loaded, expected))
        )
    return loaded == expected


def with_manifest(data, change):
    # Change the manifest and fix its checksum, so the reader gets past it.
    length = HEADER.unpack(data[:32])[4]
    text = bytearray(data[32 : 32 + length])
    change(text)
    head = bytearray(data[:32])
    struct.pack_into("<Q", head, 16, len(text))
    head = bytes(head[:24])
    digest = struct.pack("<Q", checksum(head + bytes(text)))
    return head + digest + bytes(text) + data[32 + length :]


def mutate(data, rng):
    kind = rng.randrange(6)
    position = rng.randrange(len(data))
    if kind == 0:  # flip bits
        data = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == 1:  # truncate
        return data[:position]
    if kind == 2:  # an extreme integer anywhere (frame sizes, header fields)
        value = rng.choice([0, 1, 2**31, 2**32 - 1, 2**63, 2**64 - 1])
        width = rng.choice([4, 8])
        return data[:position] + value.to_bytes(8, "little")[:width] + data[position + width :]
    if kind == 3:  # insert or drop bytes
        if rng.random() < 0.5:
            return data[:position] + rng.randbytes(rng.randint(1, 64)) + data[position:]
        return data[:position] + data[position + rng.randint(1, 64) :]
    def change(text):
        if kind == 4:  # a digit of some number in the manifest
            digits = [i for i, c in enumerate(text) if 48 <= c <= 57]
            text[rng.choice(digits)] = rng.choice(b"0123456789")
        else:  # a number replaced by something else
            values = [b"-1", b"1e999", b"9" * 20, b"null", b"[]", b"{}", b'"x"', b"[[[[1]]]]"]
            digit = [48 <= c <= 57 for c in text]
            starts = [i for i in range(1, len(text)) if digit[i] and not digit[i - 1]]
            start = rng.choice(starts)
            end = start
            while end < len(text) and 48 <= text[end] <= 57:
                end += 1
            text[start:end] = rng.choice(values)
    return with_manifest(data, change)


def main():
    folder = sys.argv[1]
    fileformat.CHUNK_SIZE = 512  # many frames per section
    limit = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        virtual = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (virtual + (2 << 30), limit[1]))
    rng = random.Random(SEED)
    counts = {"equal": 0, "error": 0}
    path = os.path.join(folder, "fuzzed.jl")
    for codec in CODECS:
        buffer = io.BytesIO()
        dump(VALUE, buffer, compress=codec)
        original = buffer.getvalue()
        for number in range(MUTATIONS):
            data = mutate(original, rng)
            with open(path, "wb") as f:
                f.write(data)
            # Small files are normally read whole; half the time, read them as big ones.
            fileformat.SMALL_FILE = 0 if number % 2 else 1 << 20
            for mode in ("path", "mmap", "file", "stream"):
                source = {
                    "path": path, "mmap": path, "file": io.BytesIO(data), "stream": Stream(data)
                }[mode]
                try:
                    loaded = load(source, mmap_mode="r" if mode == "mmap" else None)
                except JobliteError:
                    counts["error"] += 1
                    continue
                except BaseException as error:
                    print(f"FAIL codec={codec} mutation={number} mode={mode}: {error!r}")
                    raise
                # Mapped arrays' bytes are not checksummed (documented): only their
                # dtype and shape must match.
                if not same(loaded, VALUE, array_bytes=mode != "mmap"):
                    print(f"FAIL codec={codec} mutation={number} mode={mode}: loaded {loaded!r}")
                    sys.exit(1)
                counts["equal"] += 1
                del loaded
    print("done", counts)


main()
"""


def test_mutated_files_load_equal_or_raise_joblite_errors(tmp_path: pathlib.Path) -> None:
    result = run_script(FUZZ, tmp_path)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    assert "done" in result.stdout
