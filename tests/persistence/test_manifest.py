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
