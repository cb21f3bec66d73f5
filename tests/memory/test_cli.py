"""``python -m joblite cache ...``: run as a user would, checking the output."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from joblite.cli import main
from joblite.memory import Memory


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["cache", *argv]) == 0
    return capsys.readouterr().out


def square(x: int) -> list[int]:
    return [x * x] * 1000


def shout(word: str) -> str:
    return word.upper()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    mem = Memory(tmp_path, verbose=0)
    f, g = mem.cache(square), mem.cache(shout)
    for i in range(3):
        f(i)
    f(0)
    f(0)
    g("hi")
    f.lookup(0)  # writes this process's pending hit counts
    return tmp_path


def test_ls(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "ls", str(cache_dir))
    lines = out.splitlines()
    assert lines[0].split() == ["FUNCTION", "ENTRIES", "SIZE", "HITS", "LAST", "ACCESS"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["tests.memory.test_cli.square"][1:2] == ["3"]
    assert rows["tests.memory.test_cli.square"][3] == "2"
    assert rows["tests.memory.test_cli.shout"][1:2] == ["1"]


def test_show(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "show", str(cache_dir), "square")
    assert out.startswith("tests.memory.test_cli.square: 3 entries")
    assert "x = 0" in out
    assert "x = 2" in out
    assert "hits 2" in out


def test_rm_one_function_then_all(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "rm", str(cache_dir), "tests.memory.test_cli.shout")
    assert out.startswith("removed tests.memory.test_cli.shout: 1 entries")
    assert "shout" not in run(capsys, "ls", str(cache_dir))
    out = run(capsys, "rm", str(cache_dir))
    assert out.startswith("removed 3 entries")
    assert "entries:       0" in run(capsys, "stats", str(cache_dir))


def test_gc(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "gc", str(cache_dir), "--max-items", "2")
    assert out.startswith("removed 2 entries")
    assert "entries:       2" in run(capsys, "stats", str(cache_dir))
    root = cache_dir / "joblib"
    old = time.time() - 40 * 86400
    for path in root.rglob("*"):
        os.utime(path, (old, old))
    out = run(capsys, "gc", str(cache_dir), "--max-age", "30d", "--max-size", "10G")
    # Files look 40 days old, but square(0) was hit a moment ago: it stays.
    assert out.startswith("removed 1 entries")
    assert "kept 1 entries" in out


def test_stats(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "stats", str(cache_dir))
    assert "functions:     2" in out
    assert "entries:       4" in out
    assert "hits:          2" in out


def test_errors_name_the_problem(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="no cached function matches 'nothing'"):
        run(capsys, "show", str(cache_dir), "nothing")
    with pytest.raises(SystemExit, match="at least one of"):
        run(capsys, "gc", str(cache_dir))
    with pytest.raises(SystemExit, match="bytes_limit"):
        run(capsys, "gc", str(cache_dir), "--max-size", "huge")
    with pytest.raises(SystemExit, match="not a directory"):
        run(capsys, "ls", str(cache_dir / "missing"))


def test_as_a_subprocess(cache_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "joblite", "cache", "ls", str(cache_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "tests.memory.test_cli.square" in result.stdout
