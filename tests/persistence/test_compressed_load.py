"""Compressed loads unpickle while later arrays decompress: still every frame checked, no leaks."""

from __future__ import annotations

import io
import threading
from typing import Any

import numpy as np
import pytest

from joblite._core import fileformat
from joblite.exceptions import CorruptFileError
from joblite.persistence import dump, load

from .helpers import assert_same

VALUE = {
    "first": np.arange(300_000, dtype=np.int64),
    "middle": [{"i": i} for i in range(100)],
    "last": np.linspace(0, 1, 300_000),
}


def _file(value: object = VALUE) -> bytes:
    buffer = io.BytesIO()
    dump(value, buffer, compress=("zstd", 1))
    return buffer.getvalue()


def _corrupt_last_frame(data: bytes) -> bytes:
    corrupted = bytearray(data)
    corrupted[-5] ^= 0xFF  # inside the last array's last frame
    return bytes(corrupted)


@pytest.mark.usefixtures("small_chunks")
def test_sections_handed_out_while_unpickling_give_the_value() -> None:
    value = {**VALUE, "empty": np.empty(0), "after_empty": np.arange(70_000.0)}
    assert_same(load(io.BytesIO(_file(value))), value)


@pytest.mark.usefixtures("small_chunks")
def test_a_corrupt_array_after_unpickling_began_is_a_corrupt_file() -> None:
    threads = threading.active_count()
    with pytest.raises(CorruptFileError, match="array 1 checksum"):
        load(io.BytesIO(_corrupt_last_frame(_file())))
    assert threading.active_count() == threads  # the decompressing threads have ended


@pytest.mark.usefixtures("small_chunks")
def test_arrays_the_pickle_stream_never_asks_for_are_verified_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An unpickler that takes only the first buffer (a crafted stream could do so):
    # the remaining frames must be read and checked all the same.
    def first_buffer_only(data: Any, buffers: Any, *, allowed: Any = None) -> object:
        return next(iter(buffers))

    monkeypatch.setattr(fileformat, "loads", first_buffer_only)
    data = _file()
    assert isinstance(load(io.BytesIO(data)), np.ndarray)
    with pytest.raises(CorruptFileError, match="array 1 checksum"):
        load(io.BytesIO(_corrupt_last_frame(data)))


def test_an_unpickling_error_ends_the_decompressing_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing(data: Any, buffers: Any, *, allowed: Any = None) -> object:
        next(iter(buffers))
        raise KeyError("raised by the unpickler")

    monkeypatch.setattr(fileformat, "CHUNK_SIZE", 64 * 1024)
    data = _file()
    monkeypatch.setattr(fileformat, "loads", failing)
    threads = threading.active_count()
    with pytest.raises(KeyError, match="raised by the unpickler"):
        load(io.BytesIO(data))
    assert threading.active_count() == threads
