"""dump/load round trips over many kinds of objects, paths and file objects."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import io
import pathlib
from typing import Any

import numpy as np
import pytest

from joblite._core.fileformat import SMALL_FILE
from joblite.persistence import dump, load

from .helpers import assert_same


@dataclasses.dataclass
class Point:
    x: float
    y: float
    tags: list[str] = dataclasses.field(default_factory=list)


def _make_memmap(directory: pathlib.Path) -> np.memmap:  # type: ignore[type-arg]
    mapped = np.memmap(directory / "source.dat", dtype=np.float32, mode="w+", shape=(4, 5))
    mapped[:] = np.arange(20, dtype=np.float32).reshape(4, 5)
    return mapped


def _all_dtype_arrays() -> dict[str, np.ndarray]:  # type: ignore[type-arg]
    arrays = {}
    for code in np.typecodes["All"]:
        if code in "Mm":
            dtype = np.dtype(f"{code}8[ns]")
        elif code in "SUV":
            dtype = np.dtype(f"{code}7")
        else:
            dtype = np.dtype(code)
        if dtype.hasobject:
            arrays[code] = np.array([1, "two", None, (3,)], dtype=object)
        else:
            raw = np.random.default_rng(len(arrays)).integers(0, 256, 5 * dtype.itemsize)
            arrays[code] = raw.astype(np.uint8).view(dtype)
    return arrays


STRUCTURED = np.dtype([("id", "<i4"), ("pos", ">f8", (2,)), ("name", "U5"), ("ok", "?")])

OBJECTS: dict[str, Any] = {
    "scalars": [None, True, 0, -(2**70), 1.5, float("nan"), complex(1, -2), "é", b"\x00\xff"],
    "nested": {"a": [1, (2, 3), {"b": {4, 5}}], "c": frozenset({"x"}), (1, 2): bytearray(b"ab")},
    "containers": collections.OrderedDict(
        a=collections.deque([1, 2]), b=collections.Counter("aab")
    ),
    "dates": [datetime.datetime(2024, 1, 2, 3, 4, 5), datetime.timedelta(days=2)],
    "dataclass": Point(1.0, 2.0, ["a"]),
    "float64": np.linspace(0, 1, 1000),
    "all_dtypes": _all_dtype_arrays(),
    "structured": np.array([(1, (2.0, 3.0), "ab", True), (4, (5.0, 6.0), "cd", False)], STRUCTURED),
    "datetime64": np.array(["2020-01-01T00:00", "NaT"], dtype="M8[m]"),
    "timedelta64": np.arange(5).astype("m8[s]"),
    "object_array": np.array([{"a": 1}, [2], "3", None], dtype=object),
    "zero_d": np.array(3.25),
    "zero_d_big_endian": np.array(7, dtype=">i8"),
    "empty": np.empty((0, 3), dtype=np.int16),
    "empty_fortran": np.empty((3, 0), dtype=np.float32, order="F"),
    "non_contiguous": np.arange(100.0).reshape(10, 10)[::2, 1::3],
    "fortran": np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
    "big_endian": np.arange(10, dtype=">f8"),
    "bool_mask": np.array([True, False, True]),
    "numpy_scalars": [np.float32(1.5), np.int64(-3), np.datetime64("2021-05-05")],
    "dtypes": [np.dtype("<f8"), STRUCTURED, np.dtype(">M8[us]")],
    "shared": (lambda a: [a, a, a[1:]])(np.arange(6)),
    "large": np.random.default_rng(0).random(600_000).reshape(1000, 600),
}


@pytest.mark.parametrize("compress", [0, ("zstd", 3)], ids=["raw", "zstd"])
@pytest.mark.parametrize("name", list(OBJECTS))
def test_round_trip_through_a_path(tmp_path: pathlib.Path, name: str, compress: object) -> None:
    path = tmp_path / "value.jl"
    assert dump(OBJECTS[name], path, compress=compress) == [str(path)]
    assert_same(load(path), OBJECTS[name])


@pytest.mark.parametrize("compress", [0, ("zlib", 1)], ids=["raw", "zlib"])
def test_round_trip_through_file_objects(compress: object) -> None:
    buffer = io.BytesIO()
    buffer.write(b"prefix")  # the object need not start at offset 0
    assert dump(OBJECTS, buffer, compress=compress) == []
    buffer.seek(6)
    assert_same(load(buffer), OBJECTS)
    assert buffer.read() == b""  # the reader consumed exactly the object


def test_round_trip_through_a_real_file_object(tmp_path: pathlib.Path) -> None:
    with open(tmp_path / "f.jl", "wb") as f:
        dump(OBJECTS["large"], f)
    with open(tmp_path / "f.jl", "rb") as f:
        assert_same(load(f, mmap_mode="r"), OBJECTS["large"])  # mmap ignored for file objects


def test_memmap_input_loads_as_equal_array(tmp_path: pathlib.Path) -> None:
    source = _make_memmap(tmp_path)
    path = tmp_path / "m.jl"
    dump({"m": source}, str(path))
    loaded = load(path)["m"]  # type: ignore[index]
    assert type(loaded) is np.ndarray
    assert_same(loaded, np.asarray(source))


def test_sets_shared_references_and_identity_survive(tmp_path: pathlib.Path) -> None:
    array = np.arange(5)
    value = {"set": {1, "a", (2,)}, "twice": [array, array]}
    dump(value, tmp_path / "v.jl")
    loaded = load(tmp_path / "v.jl")
    assert loaded["set"] == {1, "a", (2,)}  # type: ignore[index]
    assert loaded["twice"][0] is loaded["twice"][1]  # type: ignore[index]


def test_lambdas_closures_and_local_classes(tmp_path: pathlib.Path) -> None:
    offset = 10

    class Local:
        def __init__(self, v: int) -> None:
            self.v = v

    value = {"lambda": lambda x: x * 2, "closure": lambda x: x + offset, "obj": Local(3)}
    dump(value, tmp_path / "f.jl", compress=True)
    loaded: Any = load(tmp_path / "f.jl")
    assert loaded["lambda"](4) == 8
    assert loaded["closure"](1) == 11
    assert loaded["obj"].v == 3


def test_loaded_arrays_are_writable_and_own_their_memory(tmp_path: pathlib.Path) -> None:
    dump(np.arange(10.0), tmp_path / "a.jl")
    loaded: Any = load(tmp_path / "a.jl")
    loaded[0] = 5.0
    assert loaded[0] == 5.0


def test_protocol_argument(tmp_path: pathlib.Path) -> None:
    value = {"a": np.arange(4), "b": "x"}
    dump(value, tmp_path / "p.jl", protocol=4)
    assert_same(load(tmp_path / "p.jl"), value)
    with pytest.raises(ValueError, match="protocol"):
        dump(value, tmp_path / "p.jl", protocol=99)


def test_bad_filename_arguments(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="filename"):
        dump([1], 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="filename"):
        load(3.5)  # type: ignore[arg-type]
    dump([1], tmp_path / "x.jl")
    with pytest.raises(ValueError, match="mmap_mode"):
        load(tmp_path / "x.jl", mmap_mode="rw")


BIG = {"big": np.random.default_rng(2).random(3_000_000), "tail": np.arange(7), "small": [1]}


@pytest.mark.parametrize("target", ["path", "bytes_io", "append_mode"])
def test_large_arrays_take_the_threaded_paths(tmp_path: pathlib.Path, target: str) -> None:
    # 24 MB: hashed on threads while written, then the header is patched in place.
    path = tmp_path / "big.jl"
    if target == "path":
        dump(BIG, path)
        assert_same(load(path), BIG)
        assert_same(load(path, mmap_mode="r"), BIG)
        return
    if target == "bytes_io":
        buffer = io.BytesIO(b"head")
        buffer.seek(4)
        dump(BIG, buffer)
        buffer.seek(4)
        assert_same(load(buffer), BIG)
        return
    path.write_bytes(b"head")
    with open(path, "ab") as f:  # append mode cannot seek back: checksums go first
        dump(BIG, f)
    with open(path, "rb") as f:
        assert f.read(4) == b"head"
        assert_same(load(f), BIG)


# Files up to SMALL_FILE bytes are read whole and written in one call; check both sides.
@pytest.mark.parametrize("elements", [10, SMALL_FILE // 8 - 200, SMALL_FILE // 8 + 200])
def test_sizes_around_the_small_file_limit(tmp_path: pathlib.Path, elements: int) -> None:
    value = {"a": np.arange(float(elements)), "b": np.arange(3), "c": [1, "x"]}
    path = tmp_path / "v.jl"
    dump(value, path)
    buffer = io.BytesIO()
    dump(value, buffer)
    assert path.read_bytes() == buffer.getvalue()
    loaded: Any = load(path)
    assert_same(loaded, value)
    assert_same(load(io.BytesIO(buffer.getvalue())), value)
    # Arrays are writable and independent of each other and of the file.
    loaded["a"][:] = -1.0
    loaded["b"][0] = 7
    assert loaded["b"].tolist() == [7, 1, 2]
    assert_same(load(path), value)


def test_a_directory_is_not_a_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(IsADirectoryError):
        load(tmp_path)


@pytest.mark.parametrize("read_threads", [False, True])
def test_big_loads_read_on_one_or_more_threads(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, read_threads: bool
) -> None:
    from joblite._core import _sections
    from joblite.exceptions import CorruptFileError

    # Several threads normally only from 16 MiB on; one thread below.
    monkeypatch.setattr(_sections, "_PARALLEL_MIN", 0 if read_threads else 1 << 40)
    path = tmp_path / "big.jl"
    dump(BIG, path)
    loaded: Any = load(path)
    assert_same(loaded, BIG)
    loaded["big"][:] = 0.0  # a private, writable copy
    assert_same(load(path), BIG)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="array 0"):
        load(path)
