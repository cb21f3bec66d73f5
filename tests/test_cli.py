"""``python -m joblite``: run as a user would, checking what it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import joblite


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "joblite", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def test_inspect_prints_the_manifest(tmp_path: Path) -> None:
    path = tmp_path / "model.jl"
    joblite.dump({"coef": np.zeros((3, 4), dtype=">f4"), "name": "m"}, path, compress=("zlib", 1))
    out = run_cli("inspect", str(path)).stdout
    assert "format version 1" in out
    assert "builtins.dict" in out
    assert "zlib" in out
    assert "3x4" in out
    as_json = json.loads(run_cli("inspect", "--json", str(path)).stdout)
    assert as_json["format_version"] == 1
    assert as_json["arrays"][0]["shape"] == [3, 4]


class SideEffect:
    """Unpickling this would create a file next to the dump."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (Path(self.marker), "unpickled!"))  # type: ignore[return-value]


def test_inspect_never_unpickles(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled.txt"
    path = tmp_path / "payload.jl"
    joblite.dump([SideEffect(str(marker))], path)
    assert "builtins.list" in run_cli("inspect", str(path)).stdout
    assert not marker.exists()


def test_inspect_reports_bad_files_clearly(tmp_path: Path) -> None:
    path = tmp_path / "not-joblite.bin"
    path.write_bytes(b"hello, this is not a joblite file at all" * 10)
    result = run_cli("inspect", str(path), check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("joblite inspect: ")
    assert "Traceback" not in result.stderr
    missing = run_cli("inspect", str(tmp_path / "missing.jl"), check=False)
    assert missing.returncode == 1
    assert "missing.jl" in missing.stderr


@pytest.mark.slow
def test_demo_runs_every_step_and_checks_its_results() -> None:
    out = run_cli("demo", "--size", "small").stdout
    for step in ("[hashing]", "[persistence]", "[memory]", "[parallel]", "[cluster]"):
        assert step in out
    assert "demo finished" in out
    # small really is small: a 256 x 256 float64 array, not the full 128 MiB one
    assert "hash of a 0.5 MiB float64 array" in out
    # the test extra has dask, s3fs and moto: the cluster step ran and counted its computations
    assert "8 calls (4 distinct arguments) on 2 dask worker processes" in out
    assert "4 computations in all" in out


def test_demo_cluster_step_is_skipped_without_its_packages() -> None:
    # As after `pip install -e ".[zstd,lz4]"`: distributed cannot be imported.
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "from joblite._demo import run_demo\n"
        "run_demo(steps='cluster', size='small')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "skipped: needs distributed " in result.stdout
    assert "demo finished" in result.stdout


def test_demo_rejects_an_unknown_size() -> None:
    result = run_cli("demo", "--size", "huge", check=False)
    assert result.returncode != 0
    assert "--size" in result.stderr


def test_demo_rejects_unknown_steps() -> None:
    result = run_cli("demo", "--steps", "hashing,nope", check=False)
    assert result.returncode != 0
    assert "unknown step(s) ['nope']" in result.stderr
