"""mmap_mode loads: arrays mapped straight from uncompressed files."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import pytest

from joblite.persistence import dump, load

from .helpers import assert_same

VALUE: dict[str, Any] = {
    "c": np.arange(1000.0),
    "f": np.asfortranarray(np.arange(12, dtype=">i2").reshape(3, 4)),
    "zero_d": np.array(1.5),
    "empty": np.empty((0, 2)),
    "structured": np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", ">f8")]),
    "small": [1, "two"],
}


@pytest.fixture
def path(tmp_path: pathlib.Path) -> pathlib.Path:
    target = tmp_path / "mapped.jl"
    dump(VALUE, target)
    return target


@pytest.mark.parametrize("mode", ["r", "r+", "c"])
def test_arrays_are_memmaps_of_the_file_with_equal_values(path: pathlib.Path, mode: str) -> None:
    loaded: Any = load(path, mmap_mode=mode)
    assert_same(loaded, VALUE)
    for key in ("c", "f", "zero_d", "structured"):
        assert isinstance(loaded[key], np.memmap)
        assert pathlib.Path(loaded[key].filename) == path
    # Mapped in place: 64-byte aligned, no copy.
    assert loaded["c"].ctypes.data % 64 == 0
    assert loaded["f"].flags.f_contiguous


def test_read_only_stays_read_only(path: pathlib.Path) -> None:
    loaded: Any = load(path, mmap_mode="r")
    for key in ("c", "f", "zero_d", "empty"):
        assert not loaded[key].flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        loaded["c"][0] = 1.0


@pytest.mark.parametrize("mode", ["r+", "w+"])
def test_r_plus_writes_through_to_the_file(path: pathlib.Path, mode: str) -> None:
    loaded: Any = load(path, mmap_mode=mode)
    loaded["c"][:3] = -1.0
    loaded["c"].flush()
    del loaded
    assert load(path, mmap_mode="r")["c"][:4].tolist() == [-1.0, -1.0, -1.0, 3.0]  # type: ignore[index]
    # A full, checksummed load sees the change too, instead of calling it corruption.
    assert load(path)["c"][:4].tolist() == [-1.0, -1.0, -1.0, 3.0]  # type: ignore[index]


def test_after_r_plus_the_rest_of_the_file_is_still_verified(path: pathlib.Path) -> None:
    from joblite.exceptions import CorruptFileError

    load(path, mmap_mode="r+")
    data = bytearray(path.read_bytes())
    header_and_manifest = 32 + int.from_bytes(data[16:24], "little")
    pickle_start = -(-header_and_manifest // 64) * 64  # section 0, at the aligned data start
    data[pickle_start + 5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="checksum"):
        load(path)


def test_copy_on_write_leaves_the_file_unchanged(path: pathlib.Path) -> None:
    loaded: Any = load(path, mmap_mode="c")
    loaded["c"][:] = 0.0
    assert loaded["c"].sum() == 0
    assert_same(load(path), VALUE)


def test_compressed_file_loads_in_memory_with_a_warning_as_in_joblib(
    tmp_path: pathlib.Path,
) -> None:
    # joblib warns when mmap_mode cannot be honoured for a compressed file; so does joblite.
    dump(VALUE, tmp_path / "c.jl", compress=True)
    with pytest.warns(UserWarning, match=r"mmap_mode='r' ignored: .*c\.jl is compressed"):
        loaded: Any = load(tmp_path / "c.jl", mmap_mode="r")
    assert_same(loaded, VALUE)
    assert not isinstance(loaded["c"], np.memmap)


def test_file_replaced_while_mapped_keeps_the_old_data(path: pathlib.Path) -> None:
    loaded: Any = load(path, mmap_mode="r")
    dump({"c": np.zeros(5)}, path)  # atomic replace: the old inode stays mapped
    assert loaded["c"][:3].tolist() == [0.0, 1.0, 2.0]
