"""What `inspect` reports, how the CLI renders it, and the demo step."""

from __future__ import annotations

import os
import pathlib
from typing import Any

import numpy as np
import pytest

from joblite.persistence import dump, format_manifest, inspect, load

from .helpers import assert_same


class Model:
    def __init__(self) -> None:
        self.coef = np.zeros((100, 3), dtype=">f4", order="F")
        self.when = np.array(["2020-01-01"], dtype="M8[D]")


def test_manifest_describes_type_arrays_and_sizes(tmp_path: pathlib.Path) -> None:
    dump(Model(), tmp_path / "m.jl")
    manifest: Any = inspect(tmp_path / "m.jl")
    assert manifest["format_version"] == 1
    assert manifest["object_type"] == f"{__name__}.Model"
    assert manifest["codec"] is None
    described = [(a["dtype"], a["shape"], a["order"], a["nbytes"]) for a in manifest["arrays"]]
    assert described == [(">f4", [100, 3], "F", 1200), ("<M8[D]", [1], "C", 8)]
    assert manifest["arrays_nbytes"] == 1208
    assert manifest["total_nbytes"] == 1208 + manifest["pickle"]["nbytes"]
    assert manifest["file_size"] == (tmp_path / "m.jl").stat().st_size
    assert all(a["offset"] % 64 == 0 for a in manifest["arrays"])


def test_format_manifest_renders_what_the_cli_prints(tmp_path: pathlib.Path) -> None:
    dump({"a": np.zeros(100_000), "b": list(range(30))}, tmp_path / "m.jl", compress="zlib")
    text = format_manifest(inspect(tmp_path / "m.jl"))
    assert "format version 1" in text
    assert "builtins.dict" in text
    assert "zlib (level 3)" in text
    assert "<f8" in text
    assert "100000" in text
    assert "ratio" in text
    many = format_manifest(inspect(tmp_path / "m.jl") | {"arrays": [{}] * 30}, max_arrays=2)
    assert "and 28 more" in many


def test_loads_read_sequentially_where_pread_is_unavailable(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = {"a": np.arange(300_000.0), "b": "x"}  # past SMALL_FILE: not read whole
    dump(value, tmp_path / "v.jl")
    monkeypatch.delattr(os, "preadv")  # Windows has none
    assert_same(load(tmp_path / "v.jl"), value)


def test_demo_step_runs(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    from joblite._demo import SIZES, _persistence

    _persistence.run(tmp_path, SIZES["small"])
    output = capsys.readouterr().out
    assert "compress=True" in output
    assert "zstd (level 3)" in output
    assert "loaded values equal the dumped ones" in output


class Naïve:  # a type name JSON escapes: such a manifest takes the general parser
    pass


def _plain_file(manifest: bytes, data: bytes) -> bytes:
    """A joblite file around ``manifest`` (checksummed, aligned) and pickle stream ``data``."""
    import struct

    from joblite._core import _head
    from joblite._core._sections import checksum

    start = struct.pack("<8sHHIQ", _head.MAGIC, 1, 0, 0, len(manifest))
    head = start + struct.pack("<Q", checksum(start + manifest)) + manifest
    return head + bytes(_head.align(len(head)) - len(head)) + data


@pytest.mark.parametrize("value", [[1, 2, 3], {"k": None, "é": 1.5}, "x" * 3000, Naïve()])
def test_small_manifests_parse_fast_to_what_the_json_parser_gives(
    value: object, tmp_path: pathlib.Path
) -> None:
    # A small file without arrays has its manifest matched, not JSON-decoded:
    # same manifest, same layout, or None where the general parser must decide.
    from joblite._core._manifest import parse_manifest, parse_plain_manifest

    from .helpers import file_layout

    dump(value, tmp_path / "v.jl")
    data = (tmp_path / "v.jl").read_bytes()
    manifest_end, _ = file_layout(data)
    manifest_bytes = data[32:manifest_end]
    fast = parse_plain_manifest(manifest_bytes, manifest_end)
    general = parse_manifest(manifest_bytes, manifest_end)
    if isinstance(value, Naïve):
        assert fast is None  # "object_type" holds a \u escape
    else:
        assert fast is not None
        assert list(fast.manifest.items()) == list(general.manifest.items())
        assert (fast.manifest_end, fast.codec, fast.chunk_size, fast.data_nbytes) == (
            general.manifest_end,
            general.codec,
            general.chunk_size,
            general.data_nbytes,
        )
        described = [(s.nbytes, s.offset, s.checksum, s.array, s.filter) for s in fast.sections]
        assert described == [
            (s.nbytes, s.offset, s.checksum, s.array, s.filter) for s in general.sections
        ]
    assert type(load(tmp_path / "v.jl")) is type(value)


@pytest.mark.parametrize(
    "numbers",
    [
        (22, 22, 21),  # data_nbytes short of the pickle stream
        (22, 23, 23),  # total_nbytes is not the sum of the sections
        (22, 22, 2**62 + 1),  # beyond any size the format allows
        ("022", "022", "022"),  # not JSON: a leading zero
    ],
)
def test_crafted_plain_manifests_are_refused_as_before(numbers: tuple[Any, ...]) -> None:
    # A manifest of the plain shape whose numbers do not add up is left to the
    # general parser, which refuses it (CorruptFileError), as it always did.
    import io
    import pickle

    from joblite._core._manifest import parse_plain_manifest
    from joblite.exceptions import CorruptFileError

    data = pickle.dumps([1, 2, 3], protocol=5)
    nbytes, total, data_nbytes = numbers
    manifest = (
        '{"format_version":1,"object_type":"builtins.list","protocol":5,"codec":null,'
        f'"level":0,"chunk_size":null,"pickle":{{"nbytes":{nbytes},"offset":0,'
        '"checksum":"0000000000000000"},"arrays":[],"arrays_nbytes":0,'
        f'"total_nbytes":{total},"data_nbytes":{data_nbytes}}}'
    ).encode()
    assert parse_plain_manifest(manifest, 32 + len(manifest)) is None
    with pytest.raises(CorruptFileError):
        load(io.BytesIO(_plain_file(manifest, data)))
