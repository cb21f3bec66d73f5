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


def _user_files(directory: Path) -> dict[Path, str]:
    """Files a user might keep in a directory (a mistyped DIR, or beside the cache)."""
    files = {
        directory / "notes.txt": "important",
        directory / ".git_like": "",
        directory / "src" / "main.py": "code",
        # Shaped like entries (<a>/<b>/<c>.out, a journal), but not joblite's.
        directory / "build" / "obj" / "main.out": "binary",
        directory / "logs" / "2024" / "journal": "diary",
        # Named like joblite's temp files and old enough for gc to collect, were it ours.
        directory / "src" / ".tmp-joblite-draft": "draft",
    }
    old = time.time() - 7 * 86400
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.utime(path, (old, old))
    return files


@pytest.mark.parametrize(
    "argv", [["rm"], ["rm", "main"], ["gc", "--max-items", "0"], ["ls"], ["stats"]]
)
def test_a_directory_that_is_not_a_cache_is_refused_untouched(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    files = _user_files(tmp_path)
    with pytest.raises(SystemExit) as raised:
        main(["cache", argv[0], str(tmp_path), *argv[1:]])
    assert raised.value.code not in (0, None)  # a message: exit status 1
    assert "does not look like a joblite cache" in str(raised.value.code)
    assert "nothing was changed" in str(raised.value.code)
    for path, text in files.items():
        assert path.read_text() == text


def test_refusal_exits_non_zero_as_a_subprocess(tmp_path: Path) -> None:
    files = _user_files(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "joblite", "cache", "rm", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "does not look like a joblite cache" in result.stderr
    assert all(path.exists() for path in files)


@pytest.mark.parametrize("inside", [True, False], ids=["in-joblib-folder", "beside-it"])
def test_rm_and_gc_delete_only_joblite_entries(
    cache_dir: Path, inside: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _user_files(cache_dir / "joblib" if inside else cache_dir)
    out = run(capsys, "gc", str(cache_dir), "--max-items", "0")
    assert out.startswith("removed 4 entries")
    assert "entries:       0" in run(capsys, "stats", str(cache_dir))
    Memory(cache_dir, verbose=0).cache(square)(1)
    out = run(capsys, "rm", str(cache_dir))
    assert out.startswith("removed 1 entries")
    assert "functions:     0" in run(capsys, "stats", str(cache_dir))
    for path, text in files.items():
        assert path.read_text() == text


def test_the_cache_root_itself_is_accepted(
    cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = cache_dir / "joblib"
    assert "entries:       4" in run(capsys, "stats", str(root))
    assert run(capsys, "rm", str(root)).startswith("removed 4 entries")
    # Now empty: still a valid (empty) cache, not an error.
    assert "entries:       0" in run(capsys, "stats", str(root))
