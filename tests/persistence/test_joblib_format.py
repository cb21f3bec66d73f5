"""joblib's files load natively (joblib not imported), and dump(format="joblib") writes them."""

from __future__ import annotations

import gzip
import importlib.util
import io
import math
import os
import pathlib
import pickle
import subprocess
import sys
import textwrap
import zlib
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from joblite.exceptions import ForeignFileError, InvalidFileError, UnsafeLoadError
from joblite.persistence import dump, load

from .helpers import assert_same

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"
ROOT = DATA.parent.parent


def _make_joblib_golden() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_joblib_golden", DATA / "make_joblib_golden.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GOLDEN = _make_joblib_golden()
GOLDEN_FILES = sorted([*GOLDEN.GOLDEN, GOLDEN.EXTERNAL_GZIP])


def _native(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` as joblib's default ensure_native_byte_order="auto" loads it."""
    return {**value, "big_endian": value["big_endian"].astype("=i4")}


# ------------------------------------------------------------ reading joblib's files


def test_golden_files_load_without_joblib_in_a_fresh_process() -> None:
    # The test extra installs joblib: only a process where importing it fails
    # proves the reader never needs it.
    script = textwrap.dedent(
        f"""
        import io, sys
        sys.modules["joblib"] = None  # any import of joblib now raises ImportError
        sys.path.insert(0, {str(ROOT)!r})
        from tests.persistence.helpers import assert_same
        from tests.persistence.test_joblib_format import GOLDEN, GOLDEN_FILES, DATA, _native
        import joblite
        expected = GOLDEN.expected_value()
        for name in GOLDEN_FILES:
            assert_same(joblite.load(DATA / name, allowed=[]), _native(expected))
            assert_same(joblite.load(DATA / name, ensure_native_byte_order=False), expected)
            with open(DATA / name, "rb") as f:
                assert_same(joblite.load(f), _native(expected))
        out = io.BytesIO()
        joblite.dump(expected, out, format="joblib", compress=("gzip", 3))
        written = io.BytesIO(out.getvalue())
        assert_same(joblite.load(written, ensure_native_byte_order=False), expected)
        assert sys.modules["joblib"] is None
        print("ok", len(GOLDEN_FILES))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok", str(len(GOLDEN_FILES))]


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_golden_file_loads_to_the_recorded_value(name: str) -> None:
    expected = GOLDEN.expected_value()
    assert_same(load(DATA / name, allowed=[]), _native(expected))
    loaded: Any = load(DATA / name, ensure_native_byte_order=False)
    assert_same(loaded, expected)
    assert loaded["float64"].flags.writeable  # as joblib: arrays the caller may change


def test_uncompressed_joblib_file_maps_its_arrays() -> None:
    loaded: Any = load(DATA / "joblib_1.6.pkl", mmap_mode="r", allowed=[])
    assert isinstance(loaded["float64"], np.memmap)
    assert not loaded["float64"].flags.writeable
    assert loaded["int32_fortran"].flags.f_contiguous
    assert loaded["big_endian"].dtype == np.dtype(">i4")  # a map keeps the file's byte order
    assert_same(np.asarray(loaded["structured"]), GOLDEN.expected_value()["structured"])
    assert not isinstance(loaded["object"], np.memmap)  # objects are never mapped


def test_mmap_mode_on_a_compressed_joblib_file_warns_and_loads_in_memory() -> None:
    with pytest.warns(UserWarning, match=r"mmap_mode='r' ignored: .*zlib-compressed"):
        loaded: Any = load(DATA / "joblib_1.6_zlib.pkl", mmap_mode="r")
    assert not isinstance(loaded["float64"], np.memmap)
    assert_same(loaded, GOLDEN.expected_value())  # mapped or not, "auto" keeps the order


def test_r_plus_writes_through_to_the_joblib_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "copy.pkl"
    path.write_bytes((DATA / "joblib_1.6.pkl").read_bytes())
    loaded: Any = load(path, mmap_mode="w+", allowed=[])  # "w+" means "r+", as in joblib
    loaded["float64"][0] = 42.0
    loaded["float64"].flush()
    del loaded
    assert load(path)["float64"][0] == 42.0  # type: ignore[index]


# ------------------------------------------------------------ ensure_native_byte_order


def test_ensure_native_byte_order_as_in_joblib(tmp_path: pathlib.Path) -> None:
    value = {"big": np.arange(3, dtype=">f8")}
    joblib_path = tmp_path / "j.pkl"
    dump(value, joblib_path, format="joblib")
    assert load(joblib_path)["big"].dtype == np.dtype("=f8")  # type: ignore[index]
    assert load(joblib_path, ensure_native_byte_order=False)["big"].dtype == np.dtype(">f8")  # type: ignore[index]
    joblite_path = tmp_path / "j.jl"
    dump(value, joblite_path)
    assert load(joblite_path)["big"].dtype == np.dtype(">f8")  # type: ignore[index]
    native: Any = load(joblite_path, ensure_native_byte_order=True)
    assert native["big"].dtype == np.dtype("=f8")
    assert native["big"].tolist() == [0.0, 1.0, 2.0]
    for path in (joblib_path, joblite_path):
        with pytest.raises(ValueError, match="ensure_native_byte_order"):
            load(path, mmap_mode="r", ensure_native_byte_order=True)
        with pytest.raises(ValueError, match="ensure_native_byte_order"):
            load(path, ensure_native_byte_order="yes")


# ------------------------------------------------------------ hostile joblib files


def _wrapper_stream(state: dict[str, Any], after: bytes = b"") -> bytes:
    """A pickle stream holding one joblib array wrapper with ``state``, then ``after``."""
    state_pickle = pickle.dumps(state, protocol=2)[2:-1]
    return (
        b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81"
        + state_pickle
        + b"b"
        + after
        + b"."
    )


HUGE = {
    "subclass": np.ndarray,
    "shape": (2**40,),
    "order": "C",
    "dtype": np.dtype("f8"),
    "allow_mmap": True,
    "numpy_array_alignment_bytes": None,
}


@pytest.mark.parametrize("compress", [None, "gzip", "zlib"])
def test_a_huge_array_size_is_an_error_not_an_allocation(compress: str | None) -> None:
    data = _wrapper_stream(HUGE, b"\0" * 64)
    if compress == "gzip":
        data = gzip.compress(data)
    elif compress == "zlib":
        data = zlib.compress(data)
    # 8 TiB claimed, 64 bytes present: read as they come (or refused up front), never allocated
    with pytest.raises(InvalidFileError, match="8796093022208 bytes"):
        load(io.BytesIO(data))


@pytest.mark.parametrize(
    "stream",
    [
        b"\x80\x04\x95" + (2**62).to_bytes(8, "little") + b"N.",  # FRAME of 4 EiB
        b"\x80\x05\x96" + (2**62).to_bytes(8, "little") + b".",  # BYTEARRAY8 of 4 EiB
        b"\x80\x04\x8e" + (2**62).to_bytes(8, "little") + b".",  # BINBYTES8 of 4 EiB
    ],
    ids=["frame", "bytearray8", "binbytes8"],
)
def test_huge_lengths_in_the_pickle_stream_are_errors(
    stream: bytes, tmp_path: pathlib.Path
) -> None:
    # From a real file too, where a plain read of the claimed length would allocate it.
    (tmp_path / "huge.pkl").write_bytes(stream)
    for source in (io.BytesIO(stream), tmp_path / "huge.pkl"):
        with pytest.raises(InvalidFileError, match=r"needs 4611686018427387904 bytes, only \d+"):
            load(source)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"shape": (-1,)}, "shape"),
        ({"shape": "3"}, "shape"),
        ({"order": "X"}, "order"),
        ({"dtype": "f8"}, "dtype"),
    ],
)
def test_malformed_array_headers_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidFileError, match=message):
        load(io.BytesIO(_wrapper_stream({**HUGE, **change})))


def test_every_truncation_of_a_joblib_file_is_an_invalid_file() -> None:
    for name in ("joblib_1.6.pkl", "joblib_1.6_zlib.pkl"):
        data = (DATA / name).read_bytes()
        for size in range(1, len(data)):
            with pytest.raises(InvalidFileError) as raised:
                load(io.BytesIO(data[:size]), allowed=[])
            assert not isinstance(raised.value, ForeignFileError)  # read, and found damaged


def test_every_byte_flip_of_a_joblib_file_loads_or_raises_a_clear_error() -> None:
    # A joblib file has no checksums: a flip may load (a changed value), or must raise
    # a clear error; numpy segfaults on some object-array states, which must not be reached.
    data = (DATA / "joblib_1.6.pkl").read_bytes()
    loaded = 0
    foreign: list[tuple[int, InvalidFileError]] = []
    for position in range(len(data)):
        flipped = bytearray(data)
        flipped[position] ^= 0xFF
        try:
            load(io.BytesIO(bytes(flipped)), allowed=[])
        except UnsafeLoadError:
            continue
        except InvalidFileError as error:
            foreign.append((position, error))  # read, and found damaged: fine unless "foreign"
            continue
        loaded += 1
    assert [(p, e) for p, e in foreign if isinstance(e, ForeignFileError)] == []
    assert loaded > 0  # array bytes and padding changed: still well-formed


def test_allowed_restricts_joblib_files_and_their_object_arrays(tmp_path: pathlib.Path) -> None:
    import joblib

    joblib.dump({"objects": np.array([os.getcwd], dtype=object)}, tmp_path / "o.pkl")
    with pytest.raises(UnsafeLoadError) as refused:  # found in the nested object-array stream
        load(tmp_path / "o.pkl", allowed=[])
    assert refused.value.global_name == "posix.getcwd"
    # A name on the deny-list stays refused even when listed; an ordinary one loads.
    with pytest.raises(UnsafeLoadError, match=r"posix\.getcwd"):
        load(tmp_path / "o.pkl", allowed=["posix.getcwd"])
    joblib.dump(math.sqrt, tmp_path / "f.pkl", compress=3)
    with pytest.raises(UnsafeLoadError, match=r"math\.sqrt"):
        load(tmp_path / "f.pkl", allowed=["numpy"])
    assert load(tmp_path / "f.pkl", allowed=["math.sqrt"]) is math.sqrt


def test_a_dumped_memmap_loads_restricted(tmp_path: pathlib.Path) -> None:
    import joblib

    np.save(tmp_path / "a.npy", np.arange(4.0))
    joblib.dump({"m": np.load(tmp_path / "a.npy", mmap_mode="r")}, tmp_path / "m.pkl")
    loaded: Any = load(tmp_path / "m.pkl", allowed=[])  # joblib records the numpy.memmap class
    assert type(loaded["m"]) is np.ndarray
    assert loaded["m"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_formats_of_joblib_before_0_10_are_refused_by_name(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ForeignFileError, match=r"joblib < 0\.10"):
        load(io.BytesIO(b"ZF0x10\n" + zlib.compress(b"x")))
    old = b"\x80\x02cjoblib.numpy_pickle\nNDArrayWrapper\n)\x81}b."
    with pytest.raises(ForeignFileError, match=r"joblib < 0\.10"):
        load(io.BytesIO(old))


# ------------------------------------------------------------ writing joblib's format


@pytest.mark.parametrize("compress", [0, 3, True, "gzip", "bz2", "lzma", "xz", "lz4"])
def test_dump_format_joblib_is_read_by_joblib(tmp_path: pathlib.Path, compress: object) -> None:
    import joblib

    value = GOLDEN.expected_value()
    value["strided"] = np.arange(20.0)[::3]
    value["shared"] = [value["float64"], value["float64"]]
    path = tmp_path / "model.pkl"
    assert dump(value, path, compress=compress, format="joblib") == [str(path)]
    assert_same(joblib.load(path, ensure_native_byte_order=False), value)
    assert_same(load(path, ensure_native_byte_order=False), value)
    if compress == 0:
        mapped = joblib.load(path, mmap_mode="r")
        assert isinstance(mapped["float64"], np.memmap)
        assert_same(np.asarray(mapped["int32_fortran"]), value["int32_fortran"])


def test_dump_format_joblib_into_a_file_object(tmp_path: pathlib.Path) -> None:
    import joblib

    value = {"a": np.arange(5, dtype=np.int16), "b": "text"}
    with open(tmp_path / "f.pkl", "wb") as f:
        f.write(b"")  # joblib aligns arrays on the file's offsets: start anywhere
        assert dump(value, f, format="joblib") == []
    assert_same(joblib.load(tmp_path / "f.pkl"), value)
    assert_same(joblib.load(tmp_path / "f.pkl", mmap_mode="r")["a"], value["a"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"compress": "zstd"}, "compress"),
        ({"protocol": 1}, "protocol"),
        ({"format": "npy"}, "format"),
    ],
)
def test_dump_format_joblib_rejects_what_joblib_cannot_read(
    tmp_path: pathlib.Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        dump([1], tmp_path / "x.pkl", **{"format": "joblib", **kwargs})
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ file objects, as joblib


@pytest.mark.parametrize("file_format", ["joblite", "joblib"])
def test_load_reads_a_buffer_where_dump_left_it(file_format: str) -> None:
    buffer = io.BytesIO()
    dump({"a": np.arange(3)}, buffer, format=file_format)
    assert_same(load(buffer), {"a": np.arange(3)})  # no seek(0) needed, as in joblib
    # positioned inside its data, a file object is still read from there
    buffer = io.BytesIO()
    buffer.write(b"header")
    dump([1, 2], buffer, format=file_format)
    buffer.seek(len(b"header"))
    assert load(buffer) == [1, 2]


@pytest.mark.parametrize("allowed", [None, []])
def test_a_bytearray_inside_a_frame_loads(allowed: list[str] | None) -> None:
    import joblib

    # joblib frames protocol-5 streams: the bytearray's bytes are in the frame.
    buffer = io.BytesIO()
    joblib.dump({"b": bytearray(b"ab"), "a": np.arange(2)}, buffer, protocol=5)
    buffer.seek(0)
    assert_same(load(buffer, allowed=allowed), {"b": bytearray(b"ab"), "a": np.arange(2)})
