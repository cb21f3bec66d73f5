"""A cache that cannot be written still serves its hits and never loses a computed value.

The tests run as root, whom ``chmod`` does not stop, so a read-only cache is
simulated by making every write below it fail as a read-only mount (EROFS)
or another user's directory (EACCES) would; a slow test also mounts a real
read-only tmpfs where that is permitted.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from joblite.cli import main
from joblite.memory import Memory

CALLS: list[int] = []


def square(x: int) -> int:
    CALLS.append(x)
    return x * x


@pytest.fixture(autouse=True)
def _no_calls() -> None:
    CALLS.clear()


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def make_unwritable(monkeypatch: pytest.MonkeyPatch, directory: Path, code: int) -> None:
    """Make every write below ``directory`` fail with ``code``, as a read-only mount does."""
    prefix = str(directory)

    def below(path: Any, dir_fd: int | None = None) -> bool:
        # Relative names with a dir_fd come from shutil.rmtree, inside the cache here.
        return dir_fd is not None or os.fspath(path).startswith(prefix)

    def refuse(path: Any) -> OSError:
        return OSError(code, os.strerror(code), os.fspath(path))

    def guard(real: Callable[..., Any], *, flags_at: int | None = None) -> Callable[..., Any]:
        def guarded(path: Any, *args: Any, **kwargs: Any) -> Any:
            writes = flags_at is None or args[flags_at] & _WRITE_FLAGS
            if writes and below(path, kwargs.get("dir_fd")):
                raise refuse(path)
            return real(path, *args, **kwargs)

        return guarded

    monkeypatch.setattr(os, "open", guard(os.open, flags_at=0))
    for name in ("mkdir", "unlink", "remove", "rmdir", "rename", "replace", "chmod", "utime"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))


@pytest.fixture(params=[errno.EROFS, errno.EACCES], ids=["read-only mount", "not writable"])
def code(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    f = Memory(tmp_path / "cache", verbose=0).cache(square)
    assert f(1) == 1
    CALLS.clear()
    return tmp_path / "cache"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("lock", [True, False], ids=["locked", "lock=False"])
def test_a_miss_returns_the_value_with_a_warning_and_hits_still_load(
    cache: Path,
    code: int,
    lock: bool,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_unwritable(monkeypatch, cache, code)
    f = Memory(cache, verbose=0, lock=lock).cache(square)
    with caplog.at_level(logging.WARNING):
        assert f(5) == 25
    assert CALLS == [5]
    assert any("square" in message for message in _warnings(caplog))
    assert f(1) == 1  # a hit from the read-only cache
    assert f(5) == 25  # computed again: nothing could be stored
    assert CALLS == [5, 5]


def test_a_corrupt_entry_is_recomputed_although_it_cannot_be_deleted(
    cache: Path, code: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (entry,) = cache.glob("joblib/*/*/*.out")
    entry.write_bytes(b"not a joblite file")
    make_unwritable(monkeypatch, cache, code)
    with caplog.at_level(logging.WARNING):
        assert Memory(cache, verbose=0).cache(square)(1) == 1
    assert CALLS == [1]
    assert entry.read_bytes() == b"not a joblite file"


def test_old_versions_that_cannot_be_removed_do_not_stop_a_hit(
    cache: Path, code: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (version_dir,) = cache.glob("joblib/*/*")
    shutil.copytree(version_dir, version_dir.with_name("0123456789abcdef"))
    make_unwritable(monkeypatch, cache, code)
    with caplog.at_level(logging.WARNING):
        assert Memory(cache, verbose=0).cache(square)(1) == 1
    assert CALLS == []
    assert any("old entries" in message for message in _warnings(caplog))


def test_a_location_that_cannot_be_created_computes_uncached(
    tmp_path: Path, code: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    make_unwritable(monkeypatch, tmp_path, code)
    with caplog.at_level(logging.WARNING):
        f = Memory(tmp_path / "cache", verbose=0).cache(square)
        assert f(3) == 9
    assert CALLS == [3]
    assert not (tmp_path / "cache").exists()


def test_cache_gc_exits_with_a_one_line_error(
    cache: Path, code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_unwritable(monkeypatch, cache, code)
    with pytest.raises(SystemExit) as exited:
        main(["cache", "gc", str(cache), "--max-items", "0"])
    message = str(exited.value.code)
    assert message.startswith("error: cannot gc")
    assert "\n" not in message
    assert os.strerror(code) in message
    assert list(cache.glob("joblib/*/*/*.out"))  # nothing was half-deleted


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs holding a cache with square(1), remounted read-only; skips if not permitted."""
    mount = shutil.which("mount")
    point = tmp_path / "mnt"
    point.mkdir()
    if mount is None or os.name != "posix":
        pytest.skip("no mount command")
    made = subprocess.run([mount, "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(point)], check=False)
    if made.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        f = Memory(point, verbose=0).cache(square)
        assert f(1) == 1
        subprocess.run([mount, "-o", "remount,ro", str(point)], check=True)
        CALLS.clear()
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.mark.slow
def test_a_real_read_only_mount(read_only_mount: Path, caplog: pytest.LogCaptureFixture) -> None:
    for lock in (True, False):
        f = Memory(read_only_mount, verbose=0, lock=lock).cache(square)
        with caplog.at_level(logging.WARNING):
            assert f(5) == 25
        assert f(1) == 1
    assert CALLS == [5, 5]
    assert any("square" in message for message in _warnings(caplog))
    gc = subprocess.run(
        [sys.executable, "-m", "joblite", "cache", "gc", str(read_only_mount), "--max-items", "0"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    assert gc.returncode != 0
    assert gc.stderr.startswith("error: cannot gc")
    assert gc.stderr.count("\n") == 1
    assert "Read-only file system" in gc.stderr
