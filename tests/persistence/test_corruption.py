"""Bad files raise joblite's own errors: never a raw pickle/struct error or a crash."""

from __future__ import annotations

import io
import pathlib
import pickle
import struct
from typing import Any

import numpy as np
import pytest

from joblite._core import fileformat
from joblite.exceptions import (
    CorruptFileError,
    ForeignFileError,
    InvalidFileError,
    JobliteError,
    UnsupportedVersionError,
)
from joblite.persistence import dump, inspect, load

from .helpers import HEADER, assert_same, file_layout, rewrite_manifest

VALUE: dict[str, Any] = {"w": np.arange(2000.0), "meta": {"name": "model", "n": [1, 2, 3]}}


def _dumped(compress: object) -> bytes:
    buffer = io.BytesIO()
    dump(VALUE, buffer, compress=compress)
    return buffer.getvalue()


def _load_bytes(data: bytes, tmp_path: pathlib.Path, **kwargs: Any) -> object:
    path = tmp_path / "bad.jl"
    path.write_bytes(data)
    return load(path, **kwargs)


def _flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x55]) + data[position + 1 :]


def _section_positions(data: bytes) -> dict[str, int]:
    manifest_end, manifest = file_layout(data)
    if manifest["codec"] is None:
        start = fileformat._align(manifest_end)
        return {
            "manifest": HEADER.size + 5,
            "checksum field": 24,
            "pickle": start + manifest["pickle"]["offset"] + 3,
            "array": start + manifest["arrays"][0]["offset"] + 100,
        }
    return {
        "manifest": HEADER.size + 5,
        "checksum field": 24,
        "frame header": manifest_end + 2,
        "pickle": manifest_end + 16 + 3,
        "last frame": len(data) - 10,
    }


@pytest.mark.parametrize("compress", [0, ("zlib", 1)], ids=["raw", "zlib"])
@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_flipping_a_byte_in_each_section_is_detected(
    tmp_path: pathlib.Path, compress: object, mmap_mode: str | None
) -> None:
    data = _dumped(compress)
    for section, position in _section_positions(data).items():
        if section == "array" and mmap_mode is not None:
            continue  # mapped array data is read lazily, not checksummed (documented)
        with pytest.raises(CorruptFileError):
            _load_bytes(_flip(data, position), tmp_path, mmap_mode=mmap_mode)
        with pytest.raises(CorruptFileError):
            load(io.BytesIO(_flip(data, position)))


@pytest.mark.parametrize("compress", [0, ("zlib", 1)], ids=["raw", "zlib"])
def test_truncation_anywhere_is_detected(tmp_path: pathlib.Path, compress: object) -> None:
    data = _dumped(compress)
    manifest_end, _ = file_layout(data)
    for size in sorted({1, 8, 20, HEADER.size, manifest_end - 1, manifest_end + 40, len(data) - 1}):
        for mmap_mode in (None, "r"):
            with pytest.raises(CorruptFileError, match="truncated"):
                _load_bytes(data[:size], tmp_path, mmap_mode=mmap_mode)
        with pytest.raises(CorruptFileError, match="truncated"):
            load(io.BytesIO(data[:size]))


@pytest.mark.parametrize("compress", [0, ("zlib", 1)], ids=["raw", "zlib"])
def test_every_single_byte_flip_raises_or_loads_the_same_value(compress: object) -> None:
    # A small file, so every position is tried: padding bytes may load fine, nothing else may.
    value = {"a": np.arange(3, dtype=">i2"), "b": "text"}
    buffer = io.BytesIO()
    dump(value, buffer, compress=compress)
    data = buffer.getvalue()
    for position in range(len(data)):
        try:
            loaded = load(io.BytesIO(_flip(data, position)))
        except InvalidFileError:
            continue
        assert_same(loaded, value)


def test_newer_version_is_unsupported(tmp_path: pathlib.Path) -> None:
    data = bytearray(_dumped(0))
    struct.pack_into("<H", data, 8, fileformat.FORMAT_VERSION + 1)
    newer = f"version {fileformat.FORMAT_VERSION + 1}"
    with pytest.raises(UnsupportedVersionError, match=newer):
        _load_bytes(bytes(data), tmp_path)
    with pytest.raises(UnsupportedVersionError):
        inspect(io.BytesIO(bytes(data)))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x80\x04garbage", "joblib"),
        (b"\x1f\x8b\x08\x00rest", "gzip"),
        (b"hello world, this is text", "magic"),
        (b"", "empty"),
    ],
)
def test_files_that_are_not_joblite_files(
    tmp_path: pathlib.Path, content: bytes, message: str
) -> None:
    with pytest.raises(InvalidFileError, match=message) as raised:
        _load_bytes(content, tmp_path)
    assert not isinstance(raised.value, CorruptFileError)
    with pytest.raises(InvalidFileError, match=message):
        inspect(io.BytesIO(content))


@pytest.mark.parametrize("compress", [0, 3])
def test_joblib_written_files_are_not_joblite_files_but_load(
    tmp_path: pathlib.Path, compress: int
) -> None:
    import joblib

    value = {"a": np.arange(3), "b": [1, "x"]}
    joblib.dump(value, tmp_path / "j.pkl", compress=compress)
    assert_same(load(tmp_path / "j.pkl", allowed=[]), value)  # read natively, restricted too
    with open(tmp_path / "j.pkl", "rb") as f:
        assert_same(load(f), value)
    assert_same(load(io.BytesIO(pickle.dumps(value))), value)  # plain pickle too
    with pytest.raises(ForeignFileError, match=r"joblite\.load reads joblib files"):
        inspect(tmp_path / "j.pkl")  # it reads joblite's manifest only


def _set(path: list[Any], value: object) -> Any:
    def change(manifest: dict[str, Any]) -> None:
        target: Any = manifest
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("compress", "change", "error"),
    [
        (("zlib", 1), _set(["codec"], "nonexistent"), "unknown codec"),
        (("zlib", 1), _set(["chunk_size"], 0), "malformed"),
        (0, _set(["arrays", 0, "offset"], 10**12), "malformed|truncated"),
        (0, _set(["arrays", 0, "nbytes"], "many"), "malformed"),
        (0, _set(["pickle"], None), "malformed"),
        (0, _set(["data_nbytes"], -5), "malformed"),
    ],
)
def test_wrong_but_checksummed_manifests(
    tmp_path: pathlib.Path, compress: object, change: Any, error: str
) -> None:
    data = rewrite_manifest(_dumped(compress), change)
    for mmap_mode in (None, "r"):
        with pytest.raises(InvalidFileError, match=error):
            _load_bytes(data, tmp_path, mmap_mode=mmap_mode)


def test_errors_are_joblite_errors_and_value_errors() -> None:
    for error in (InvalidFileError, CorruptFileError, UnsupportedVersionError):
        assert issubclass(error, JobliteError)
        assert issubclass(error, ValueError)


def test_corruption_deep_in_a_large_array_is_detected(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "big.jl"
    dump({"big": np.random.default_rng(3).random(3_000_000)}, path)
    data = bytearray(path.read_bytes())
    data[len(data) - 5_000_000] ^= 0x01
    with pytest.raises(CorruptFileError, match="array 0"):
        _load_bytes(bytes(data), tmp_path)
    with pytest.raises(CorruptFileError, match="array 0"):
        load(io.BytesIO(bytes(data)))
