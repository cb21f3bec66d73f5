"""Every ``compress`` form, and a contract every codec must meet."""

from __future__ import annotations

import bz2
import pathlib
import sys
from typing import Any

import numpy as np
import pytest

from joblite._core import codecs
from joblite._core.codecs import Compression, get_codec, normalize_compress, register_compressor
from joblite.exceptions import MissingDependencyError
from joblite.persistence import dump, inspect, load

from .helpers import ALL_CODECS, assert_same

# Compressible (repeated values) and incompressible parts, spanning many 64 KiB chunks.
PAYLOAD: dict[str, Any] = {
    "zeros": np.zeros(100_000),
    "noise": np.random.default_rng(1).random(30_000),
    "fortran": np.asfortranarray(np.arange(60_000, dtype=">i4").reshape(300, 200)),
    "items": [{"id": i, "name": f"item{i}"} for i in range(3000)],
    "empty": np.empty(0),
}


@pytest.mark.parametrize("codec", ALL_CODECS)
def test_codec_contract(codec: str) -> None:
    implementation = get_codec(codec)
    data = bytes(range(256)) * 1000
    assert implementation.name == codec
    assert all(ext.startswith(".") for ext in implementation.extensions)
    for level in {1, implementation.default_level, 9}:
        compressed = implementation.compress(memoryview(data), level)
        assert implementation.decompress(compressed) == data
        assert len(compressed) < len(data)
    assert implementation.decompress(implementation.compress(b"", 3)) == b""


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("codec", ALL_CODECS)
@pytest.mark.parametrize("form", ["name", "tuple", "extension", "extension_level"])
def test_every_form_round_trips_with_every_codec(
    tmp_path: pathlib.Path, codec: str, form: str
) -> None:
    extension = get_codec(codec).extensions[0]
    compress, filename = {
        "name": (codec, "data.jl"),
        "tuple": ((codec, 1), "data.jl"),
        "extension": (0, f"data{extension}"),
        "extension_level": (2, f"data{extension}"),
    }[form]
    path = tmp_path / filename
    dump(PAYLOAD, path, compress=compress)
    manifest = inspect(path)
    assert manifest["codec"] == codec
    assert manifest["file_size"] < manifest["total_nbytes"]  # type: ignore[operator]
    assert_same(load(path), PAYLOAD)
    with pytest.warns(UserWarning, match="mmap_mode"):  # compressed: loaded in memory
        assert_same(load(path, mmap_mode="r"), PAYLOAD)


@pytest.mark.parametrize(
    ("compress", "filename", "expected"),
    [
        (0, None, Compression(None, 0)),
        (False, None, Compression(None, 0)),
        (None, None, Compression(None, 0)),
        (3, None, Compression("zlib", 3)),
        (9, "model.pkl", Compression("zlib", 9)),
        (True, None, Compression("zstd", 3)),
        ("lz4", None, Compression("lz4", 0)),
        (("zlib", 0), None, Compression(None, 0)),
        (("zstd", 19), None, Compression("zstd", 19)),
        (("bz2", None), None, Compression("bz2", 3)),
        (0, "model.gz", Compression("gzip", 3)),
        (True, "model.xz", Compression("xz", 3)),
        (5, "dir/MODEL.BZ2", Compression("bz2", 5)),
        (0, pathlib.Path("m.lzma"), Compression("lzma", 3)),
        (1, "m.zst", Compression("zstd", 1)),
        ("zlib", "model.gz", Compression("zlib", 3)),  # an explicit name beats the extension
        (("lz4", 2), "model.gz", Compression("lz4", 2)),
    ],
)
def test_normalize_compress_forms(compress: object, filename: Any, expected: Compression) -> None:
    assert normalize_compress(compress, filename) == expected


@pytest.mark.parametrize(
    "compress", [10, -1, 2.5, "snappy", ("zlib",), ("zlib", 3, 4), ("zlib", 30), (3, "zlib"), [3]]
)
def test_bad_compress_values_name_the_argument(tmp_path: pathlib.Path, compress: object) -> None:
    with pytest.raises(ValueError, match="compress"):
        dump([1], tmp_path / "x.jl", compress=compress)
    assert list(tmp_path.iterdir()) == []


def test_missing_extra_raises_missing_dependency(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump(PAYLOAD, tmp_path / "z.jl", compress="zstd")
    monkeypatch.setitem(sys.modules, "zstandard", None)  # makes `import zstandard` fail
    with pytest.raises(MissingDependencyError, match=r"joblite\[zstd\]"):
        dump([1], tmp_path / "y.jl", compress="zstd")
    with pytest.raises(MissingDependencyError) as raised:
        load(tmp_path / "z.jl")
    assert raised.value.extra == "zstd"
    assert isinstance(raised.value, ImportError)
    # compress=True falls back to zlib when zstd is missing.
    assert normalize_compress(True) == Compression("zlib", 3)
    assert list(path.name for path in tmp_path.iterdir()) == ["z.jl"]


class _JoblibStyleWrapper:
    """What joblib's CompressorWrapper looks like: a file-object factory and an extension."""

    fileobj_factory = bz2.BZ2File  # called as factory(fileobj, mode, compresslevel=...)
    prefix = b"BZh"
    extension = ".mybz"


class _ReverseCodec:
    """A toy codec implementing the Codec protocol directly."""

    name = "reverse"
    extensions = (".rev",)
    default_level = 1

    def compress(self, data: bytes | memoryview, level: int) -> bytes:
        return bytes(data)[::-1]

    def decompress(self, data: bytes | memoryview) -> bytes:
        return bytes(data)[::-1]


@pytest.fixture
def restore_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codecs, "_CODECS", dict(codecs._CODECS))


@pytest.mark.usefixtures("restore_registry", "small_chunks")
@pytest.mark.parametrize("compressor", [_JoblibStyleWrapper(), _ReverseCodec()])
def test_register_compressor(tmp_path: pathlib.Path, compressor: object) -> None:
    register_compressor("custom", compressor)
    dump(PAYLOAD, tmp_path / "c.jl", compress=("custom", 3))
    assert inspect(tmp_path / "c.jl")["codec"] == "custom"
    assert_same(load(tmp_path / "c.jl"), PAYLOAD)
    with pytest.raises(ValueError, match="already registered"):
        register_compressor("custom", compressor)
    register_compressor("custom", compressor, force=True)


@pytest.mark.usefixtures("restore_registry")
def test_register_compressor_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="compressor_name"):
        register_compressor(3, _ReverseCodec())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="compressor"):
        register_compressor("bad", object())


def test_compressed_files_are_smaller_and_default_is_zstd(tmp_path: pathlib.Path) -> None:
    dump(PAYLOAD, tmp_path / "raw.jl")
    dump(PAYLOAD, tmp_path / "small.jl", compress=True)
    assert inspect(tmp_path / "small.jl")["codec"] == "zstd"
    raw_size = (tmp_path / "raw.jl").stat().st_size
    assert (tmp_path / "small.jl").stat().st_size < raw_size / 2


@pytest.mark.parametrize(
    ("compress", "maximum"),
    [(("zlib", 15), 9), (("lzma", 10), 9), (("xz", 22), 9), (("bz2", 10), 9), (("lz4", 17), 16)],
)
def test_out_of_range_levels_are_refused_per_codec(
    tmp_path: pathlib.Path, compress: tuple[str, int], maximum: int
) -> None:
    name = compress[0]
    expected = f"`compress`: {name} levels are an int from 0 to {maximum}"
    with pytest.raises(ValueError, match=expected):
        dump([1, 2, 3], tmp_path / "x.jl", compress=compress)
    assert list(tmp_path.iterdir()) == []


def test_joblib_compressor_wrappers_are_used_as_joblib_uses_them(tmp_path: pathlib.Path) -> None:
    import joblib.compressor

    from joblite._core.codecs import register_compressor

    register_compressor("jl-gzip", joblib.compressor.GzipCompressorWrapper(), force=True)
    dump({"a": list(range(100))}, tmp_path / "x.jl", compress=("jl-gzip", 3))
    assert load(tmp_path / "x.jl") == {"a": list(range(100))}
