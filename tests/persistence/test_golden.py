"""Files written in format versions 1 and 2 keep loading, to the same value, forever."""

from __future__ import annotations

import importlib.util
import io
import json
import pathlib
import warnings
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from joblite._core import _sections
from joblite.persistence import dump, inspect, load

from .helpers import assert_same

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"


def _make_golden() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_golden", DATA / "make_golden.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE_GOLDEN = _make_golden()
ALL_GOLDEN = {**MAKE_GOLDEN.GOLDEN, **MAKE_GOLDEN.GOLDEN_V2}


def _expected(name: str) -> Any:
    if name in MAKE_GOLDEN.GOLDEN_V2:
        return MAKE_GOLDEN.expected_value_v2()
    return MAKE_GOLDEN.expected_value()


@pytest.mark.parametrize("name", sorted(ALL_GOLDEN))
@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_golden_file_loads_to_the_expected_value(name: str, mmap_mode: str | None) -> None:
    with warnings.catch_warnings():
        # mmap_mode on the compressed golden file warns; that is tested in test_mmap.py
        warnings.simplefilter("ignore", UserWarning)
        loaded = load(DATA / name, mmap_mode=mmap_mode, allowed=[])  # builtins + numpy only
    assert_same(loaded, _expected(name))


@pytest.mark.parametrize("name", sorted(ALL_GOLDEN))
def test_golden_manifest_is_unchanged(name: str) -> None:
    expected: dict[str, Any] = json.loads((DATA / f"{name}.manifest.json").read_text())
    assert inspect(DATA / name) == expected
    assert expected["format_version"] == (2 if name in MAKE_GOLDEN.GOLDEN_V2 else 1)


def test_the_version_2_golden_file_holds_filtered_arrays() -> None:
    filters = [entry["filter"] for entry in inspect(DATA / "golden_v2_filters.jl")["arrays"]]
    assert filters == ["delta8", "shuffle4", None]


def _numpy_pickles_datetime_dtypes_like_the_golden_writer() -> bool:
    # numpy 2.2 (the last for Python 3.10) pickles a datetime64 dtype's empty metadata
    # as {} where the numpy that wrote the golden files writes None, so the pickle
    # stream differs by bytes that are numpy's, not joblite's writer's.
    state = np.dtype("M8[D]").__reduce__()[2]
    return state[-1][0] is None


@pytest.mark.skipif(
    not _numpy_pickles_datetime_dtypes_like_the_golden_writer(),
    reason="this numpy pickles datetime64 dtypes differently from the golden files' writer",
)
@pytest.mark.parametrize("name", sorted(ALL_GOLDEN))
def test_writing_the_golden_value_reproduces_the_file(name: str, tmp_path: pathlib.Path) -> None:
    # The writer's fast paths must not drift from formats 1 and 2, byte for byte.
    path = tmp_path / name
    dump(_expected(name), path, compress=ALL_GOLDEN[name])
    assert path.read_bytes() == (DATA / name).read_bytes()


class _Quoted:
    pass


_Quoted.__qualname__ = 'Qu"ot\\ed\u00e9'  # the object type must be JSON-escaped


@pytest.mark.parametrize(
    "value",
    [
        1,
        None,
        "text",
        {"a": [1, 2.5]},
        b"\x00" * 5000,
        _Quoted(),
        np.arange(128.0),
        {"w": np.ones((3, 4), order="F"), "b": np.zeros(0), "t": np.arange(3, dtype=">i4")},
    ],
    ids=["int", "none", "str", "dict", "bytes", "quoted-type-name", "array", "arrays"],
)
@pytest.mark.parametrize("protocol", [2, 5])
def test_small_files_match_the_general_layout(value: object, protocol: int) -> None:
    # A small file is built whole in memory (its manifest formatted directly when it
    # has no arrays: Memory writes one per miss) and written with one call, by dump
    # to a path too: its bytes must be what the general writer streams.
    from joblite._core import fileformat
    from joblite._core.codecs import UNCOMPRESSED
    from joblite._core.pickling import dump_parts

    pickled = dump_parts(value, protocol=protocol)
    general = io.BytesIO()
    fileformat.write_pickled(value, pickled, general, UNCOMPRESSED, None)
    whole = fileformat.small_file(value, pickled, UNCOMPRESSED)
    assert whole == general.getvalue()
    written = io.BytesIO()
    dump(value, written, protocol=protocol)
    assert written.getvalue() == general.getvalue()
    assert inspect(io.BytesIO(whole))["object_type"] == fileformat._type_name(value)


@pytest.mark.parametrize("nbytes", [0, 1, 1000, _sections.HASH_PIECE, _sections.HASH_PIECE + 1])
def test_section_checksums_combine_the_digests_of_their_pieces(nbytes: int) -> None:
    # Sections of one piece take a shortcut; the checksum is the format's, whatever the size.
    data = memoryview(bytes(range(256)) * (nbytes // 256) + bytes(nbytes % 256))
    pieces = [
        data[start : start + _sections.HASH_PIECE]
        for start in range(0, nbytes, _sections.HASH_PIECE)
    ]
    expected = _sections.combine_digests(_sections.checksum(piece) for piece in pieces)
    assert _sections.section_checksum(data) == expected
