"""Byte filters (shuffle, delta) on compressed arrays: lossless, chosen by measurement, checked."""

from __future__ import annotations

import io
import pathlib
import zlib
from typing import Any

import numpy as np
import pytest

from joblite._core import _filters, fileformat
from joblite._core._sections import checksum
from joblite._core.codecs import get_codec
from joblite.exceptions import CorruptFileError
from joblite.persistence import dump, format_manifest, inspect, load

from .helpers import ALL_CODECS, assert_same, rewrite_manifest

RNG = np.random.default_rng(12)
N = 40_000  # every array below is over _filters.MIN_FILTERED bytes
T = np.arange(N, dtype=np.float32)
# The benchmark's mix, small: which filter each should get, if any.
MIX: dict[str, tuple[Any, str | None]] = {
    "rounded": (np.round(RNG.normal(size=N), 3), None),  # few distinct values: LZ wins
    "sorted_indices": (np.cumsum(RNG.integers(0, 5, N)), "delta8"),
    "codes": (RNG.integers(0, 16, N, dtype=np.int32), "shuffle4"),
    "mostly_zero": (np.where(RNG.random(N) < 0.05, RNG.normal(size=N), 0.0), None),
    "signal": ((np.sin(T / 500) * 10 + np.sin(T / 37)).astype(np.float32), "shuffle4"),
    "repeated": (np.repeat(RNG.normal(size=N // 100), 100), None),
}


def _payload() -> dict[str, Any]:
    return {
        **{name: array for name, (array, _) in MIX.items()},
        "big_endian": np.arange(N, dtype=">i8"),
        "fortran": np.asfortranarray(np.arange(N, dtype=np.int16).reshape(200, -1) * 3),
        "complex": (np.arange(N) + 1j * np.arange(N)[::-1]).astype(np.complex128),
        "datetimes": np.datetime64("2024-01-01") + np.arange(N).astype("m8[s]"),
        "uint": np.arange(N, dtype=np.uint32)[::-1].copy(),
        "records": np.zeros(N // 4, dtype=[("a", "<i8"), ("b", "<f4")]),
        "bools": np.arange(N) % 3 == 0,
        "items": [{"id": i} for i in range(100)],
    }


@pytest.mark.parametrize("name", sorted(_filters.FILTERS))
@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 1001, 65_537])
def test_every_filter_is_lossless_on_any_bytes(name: str, size: int) -> None:
    # Any length (a tail that makes no whole element), any bytes: a crafted file
    # can name any filter for any array, and a chunk need not start on an element.
    data = memoryview(RNG.integers(0, 256, size, dtype=np.uint8).tobytes())
    encoded = _filters.encode(name, data)
    assert encoded.nbytes == size
    out = bytearray(size)
    _filters.decode_into(name, bytes(encoded), memoryview(out))
    assert bytes(out) == bytes(data)


def test_decoding_into_a_buffer_of_another_size_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot fill"):
        _filters.decode_into("shuffle8", bytes(16), memoryview(bytearray(24)))
    with pytest.raises(ValueError, match="unknown filter"):
        _filters.encode("shuffle3", memoryview(bytes(6)))


@pytest.mark.parametrize("name", list(MIX))
def test_each_array_of_the_mix_gets_the_filter_that_measures_best(name: str) -> None:
    array, expected = MIX[name]
    codec = get_codec("zstd")
    view = memoryview(array).cast("B")
    assert _filters.choose(codec, 3, view, array.dtype.kind, array.dtype.itemsize) == expected
    if expected is not None:  # and it does make the array smaller
        plain = len(codec.compress(view, 3))
        assert len(codec.compress(_filters.encode(expected, view), 3)) < plain


class _CountingCodec:
    """zlib level 1, counting the bytes it is given."""

    name = "counting"
    extensions: tuple[str, ...] = ()
    default_level = 1

    def __init__(self) -> None:
        self.seen = 0

    def compress(self, data: bytes | memoryview, level: int) -> bytes:
        self.seen += memoryview(data).nbytes
        return zlib.compress(data, level)

    def decompress(self, data: bytes | memoryview) -> bytes:
        return zlib.decompress(data)


@pytest.mark.parametrize("nbytes", [64 * 1024, 200_000, 256 * 1024, 700_000, 3 << 20, 100 << 20])
def test_the_trial_compresses_at_most_three_eighths_of_an_array(nbytes: int) -> None:
    codec = _CountingCodec()
    array = np.zeros(nbytes // 8, dtype=np.int64)  # integers: three ways (none, shuffle, delta)
    _filters.choose(codec, 1, memoryview(array).cast("B"), "i", 8)
    assert 0 < codec.seen <= 3 * nbytes / 8
    if nbytes >= 1 << 20:
        assert codec.seen < nbytes / 10


def test_only_numeric_arrays_of_2_4_8_byte_elements_are_candidates() -> None:
    assert _filters.candidates("f", 8) == ["shuffle8"]
    assert _filters.candidates("i", 4) == ["shuffle4", "delta4"]
    assert _filters.candidates("M", 8) == ["shuffle8", "delta8"]
    assert _filters.candidates("c", 16) == ["shuffle8"]
    for kind, itemsize in (("b", 1), ("u", 1), ("V", 12), ("S", 8), ("f", 16), ("O", 8)):
        assert _filters.candidates(kind, itemsize) == []


@pytest.mark.parametrize("codec", ALL_CODECS)
def test_filtered_files_round_trip_with_every_codec(
    codec: str, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    # Chunks of an odd size: they start and end inside elements, which filters must survive.
    monkeypatch.setattr(fileformat, "CHUNK_SIZE", 64 * 1024 + 3)
    value = _payload()
    path = tmp_path / "filtered.jl"
    dump(value, path, compress=(codec, 1))
    manifest = inspect(path)
    assert manifest["format_version"] == 2
    filters = {entry["filter"] for entry in manifest["arrays"]}
    assert {"delta8", "shuffle4"} <= filters
    assert_same(load(path), value)
    data = path.read_bytes()
    assert_same(load(io.BytesIO(data)), value)
    assert_same(load(_Stream(data)), value)  # unknown size: decoded chunk by chunk


class _Stream(io.RawIOBase):
    """Readable, not seekable: a load that cannot know the file's size."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._data.readinto(buffer)


def test_inspect_names_each_arrays_filter() -> None:
    buffer = io.BytesIO()
    dump({name: array for name, (array, _) in MIX.items()}, buffer, compress=True)
    manifest = inspect(io.BytesIO(buffer.getvalue()))
    assert [entry["filter"] for entry in manifest["arrays"]] == [
        expected for _, expected in MIX.values()
    ]


def test_the_command_line_rendering_names_each_arrays_filter() -> None:
    buffer = io.BytesIO()
    dump({"codes": MIX["codes"][0], "rounded": MIX["rounded"][0]}, buffer, compress=True)
    lines = format_manifest(inspect(io.BytesIO(buffer.getvalue()))).splitlines()
    assert lines[0] == "joblite file, format version 2"
    assert lines[5].endswith("filter shuffle4")  # [0] codes
    assert "filter" not in lines[6]  # [1] rounded: stored as it is


@pytest.mark.parametrize(
    ("value", "compress"),
    [
        ({"codes": MIX["codes"][0]}, 0),  # uncompressed: never filtered
        ({"codes": MIX["codes"][0][:1000]}, True),  # too small to filter
        ({"rounded": MIX["rounded"][0]}, True),  # no filter wins
    ],
    ids=["uncompressed", "small", "no-winner"],
)
def test_files_without_a_filtered_array_stay_version_1(value: object, compress: object) -> None:
    # joblite releases that read version 1 only can still read them.
    buffer = io.BytesIO()
    dump(value, buffer, compress=compress)
    manifest = inspect(io.BytesIO(buffer.getvalue()))
    assert manifest["format_version"] == 1
    assert all("filter" not in entry for entry in manifest["arrays"])


def _filtered_file() -> bytes:
    buffer = io.BytesIO()
    dump({"codes": MIX["codes"][0], "n": 1}, buffer, compress=True)
    assert inspect(io.BytesIO(buffer.getvalue()))["arrays"][0]["filter"] == "shuffle4"
    return buffer.getvalue()


def _set_filter(name: object, version: int = 2) -> Any:
    def change(manifest: dict[str, Any]) -> None:
        manifest["arrays"][0]["filter"] = name
        manifest["format_version"] = version

    return change


def _declare_16_gib(manifest: dict[str, Any]) -> None:
    size = 16 << 30
    entry = manifest["arrays"][0]
    entry["shape"], entry["nbytes"] = [size // 4], size
    manifest["arrays_nbytes"] = size
    manifest["total_nbytes"] = size + manifest["pickle"]["nbytes"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set_filter("bitshuffle4"), "unknown filter"),
        (_set_filter(7), "unknown filter"),
        (_set_filter("shuffle4", version=1), "needs format version 2"),
        (_declare_16_gib, "more than the|bad frame sizes"),
    ],
    ids=["unknown-name", "not-a-string", "in-version-1", "declares-16-GiB"],
)
def test_crafted_filter_manifests_are_corrupt_files(
    change: Any, message: str, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "crafted.jl"
    path.write_bytes(rewrite_manifest(_filtered_file(), change))
    with pytest.raises(CorruptFileError, match=message):
        load(path)


def test_a_filter_on_an_uncompressed_file_is_a_corrupt_file() -> None:
    buffer = io.BytesIO()
    dump({"codes": MIX["codes"][0]}, buffer)
    data = rewrite_manifest(buffer.getvalue(), _set_filter("shuffle4"))
    with pytest.raises(CorruptFileError, match="needs format version 2 and a codec"):
        inspect(io.BytesIO(data))


def test_a_header_version_unlike_the_manifests_is_a_corrupt_file() -> None:
    data = bytearray(_filtered_file())
    manifest_length = int.from_bytes(data[16:24], "little")
    data[8:10] = (1).to_bytes(2, "little")  # the header says 1, the manifest 2
    manifest = bytes(data[32 : 32 + manifest_length])
    data[24:32] = checksum(bytes(data[:24]) + manifest).to_bytes(8, "little")
    with pytest.raises(CorruptFileError, match="versions differ"):
        load(io.BytesIO(bytes(data)))
