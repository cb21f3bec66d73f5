"""Hostile joblib-format files against load(allowed=...): the same guarantees as joblite files.

The payloads of test_allowed_hostile.py, written as joblib files (by joblite's
``dump(format="joblib")`` and by joblib itself, plain and gzip-compressed),
plus the one only joblib's format has: an array wrapper whose dtype's state
declares object fields, followed by raw bytes that would be read as pointers.
Payloads that crash an unprotected process run in a subprocess.
"""

from __future__ import annotations

import gzip
import pathlib
import pickle
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from joblite.persistence import dump, load

from .test_allowed_hostile import (
    CRASHERS,
    PAYLOAD_NAMES,
    REFUSED,
    ROOT,
    SHAPES,
    _crafted,
    _object_dtype_state,
    _payloads,
    _run_crasher,
)

WRITERS = ("joblite", "joblib")
COMPRESS = (0, ("gzip", 3))


def _write_joblib_files(value: Any, folder: pathlib.Path) -> list[pathlib.Path]:
    """``value`` as a joblib file from each writer, plain and gzip-compressed."""
    import joblib

    paths = []
    for writer in WRITERS:
        for compress in COMPRESS:
            path = folder / f"{writer}-{'gzip' if compress else 'raw'}.pkl"
            if writer == "joblib":
                joblib.dump(value, path, compress=compress)
            else:
                dump(value, path, format="joblib", compress=compress)
            paths.append(path)
    return paths


@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_hostile_payloads_in_joblib_files_are_refused_under_every_allow_list(
    tmp_path: pathlib.Path, name: str
) -> None:
    marker = tmp_path / "pwned"
    for path in _write_joblib_files({"x": [1, _payloads(marker)[name]]}, tmp_path):
        for shape, allowed in SHAPES.items():
            with pytest.raises(REFUSED):
                load(path, allowed=allowed)
            assert not marker.exists(), (name, path.name, shape)


def _wrapper_stream(dtype: Any, after: bytes) -> bytes:
    """A joblib stream of one array wrapper with ``dtype``, its data being ``after``."""
    state = {
        "subclass": np.ndarray,
        "shape": (1,),
        "order": "C",
        "dtype": dtype,
        "allow_mmap": False,
        "numpy_array_alignment_bytes": None,
    }
    wrapper = b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81"
    return wrapper + pickle.dumps(state, protocol=2)[2:-1] + b"b" + after + b"."


def _run_joblib_crasher(kind: str, folder: str) -> None:
    """In a subprocess: every joblib file in ``folder``, as ``_run_crasher`` does."""
    for path in sorted(pathlib.Path(folder).glob("*.pkl")):
        print(path.name)
        _run_crasher(kind, str(path))


def _check_crasher(kind: str, folder: pathlib.Path) -> None:
    files = sorted(folder.glob("*.pkl"))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from {__name__} import _run_joblib_crasher; "
            f"_run_joblib_crasher({kind!r}, {str(folder)!r})",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (result.returncode, result.stdout[-500:], result.stderr[-2000:])
    lines = [line for line in result.stdout.splitlines() if not line.endswith(".pkl")]
    assert len(lines) == len(SHAPES) * len(files)
    assert all(line.endswith(("UnsafeLoadError", "InvalidFileError")) for line in lines), lines


@pytest.mark.parametrize("kind", CRASHERS)
def test_values_that_crash_when_used_are_refused_in_joblib_files(
    tmp_path: pathlib.Path, kind: str
) -> None:
    _write_joblib_files({"x": _crafted(kind)}, tmp_path)
    _check_crasher(kind, tmp_path)


def test_an_array_wrapper_with_a_crafted_dtype_state_is_refused(tmp_path: pathlib.Path) -> None:
    # numpy.dtype("V8") given a state that declares an object field with flags 0:
    # the dtype says "no objects", so the 8 bytes after the wrapper would become
    # an object pointer (0x4141414141414141) and using the array would crash.
    stream = _wrapper_stream(_object_dtype_state(), b"A" * 8)
    (tmp_path / "raw.pkl").write_bytes(b"\x80\x02}U\x01x" + stream[2:-1] + b"s.")
    (tmp_path / "gzip.pkl").write_bytes(gzip.compress((tmp_path / "raw.pkl").read_bytes()))
    _check_crasher("wrapper dtype", tmp_path)


def test_an_array_wrapper_still_loads_a_well_formed_array() -> None:
    # The control for the test above: the same stream with an honest dtype.
    import io

    stream = _wrapper_stream(np.dtype("<i8"), (7).to_bytes(8, "little"))
    for allowed in SHAPES.values():
        assert load(io.BytesIO(stream), allowed=allowed).tolist() == [7]  # type: ignore[attr-defined]


def test_sizes_in_a_compressed_joblib_file_are_bounded_by_what_it_delivered(
    tmp_path: pathlib.Path,
) -> None:
    # 64 MiB asked for by a file of a few dozen bytes: the decompressed size is
    # unknown up front, so the bound is what the stream has delivered so far.
    value = _payloads(tmp_path / "unused")["bytearray(n)"]
    value.args = (1 << 26,)
    dump({"x": value}, tmp_path / "b.pkl", format="joblib", compress=("gzip", 3))
    with pytest.raises(REFUSED, match="more than the file holds"):
        load(tmp_path / "b.pkl", allowed=[])


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_legitimate_data_in_joblib_files_loads_under_the_default_set(
    tmp_path: pathlib.Path, protocol: int
) -> None:
    import joblib

    from .test_allowed_hostile import _legitimate, _same

    for compress in COMPRESS:
        joblib.dump(_legitimate(), tmp_path / "ok.pkl", protocol=protocol, compress=compress)
        restricted: Any = load(tmp_path / "ok.pkl", allowed=[])
        plain: Any = load(tmp_path / "ok.pkl")
        for key, value in plain.items():
            assert _same(restricted[key], value), (key, compress)
