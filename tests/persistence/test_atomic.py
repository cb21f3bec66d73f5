"""dump to a path is atomic: a killed or failing dump leaves the old file intact."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
from typing import Any

import numpy as np
import pytest

from joblite._core.fsutil import TEMP_PREFIX
from joblite.persistence import dump, load

from .helpers import assert_same

# The child dumps a big array over `target`, reports once part of it is written, then
# blocks so the parent kills it mid-write: no timing luck involved.
CHILD = textwrap.dedent(
    """
    import sys, threading
    import numpy as np
    from joblite._core import _sections
    from joblite.persistence import dump

    write_raw, write_compressed = _sections.write_raw, _sections.write_compressed

    class Stalling:
        def __init__(self, fileobj):
            self.fileobj, self.written = fileobj, 0
        def __getattr__(self, name):
            return getattr(self.fileobj, name)
        def write(self, data):
            count = self.fileobj.write(data)
            self.written += count
            if self.written > 8 * 1024 * 1024:
                self.fileobj.flush()
                print("mid-write", flush=True)
                threading.Event().wait()
            return count

    _sections.write_raw = lambda f, *args, **kw: write_raw(Stalling(f), *args, **kw)
    _sections.write_compressed = lambda f, *args: write_compressed(Stalling(f), *args)
    noise = np.random.default_rng(0).random(4 * 1024 * 1024)  # incompressible: 32 MiB
    dump({"new": noise}, sys.argv[1], compress=sys.argv[2] == "compressed")
    """
)


@pytest.mark.parametrize("compress", [0, True])
def test_dump_killed_mid_write_leaves_the_old_file(
    tmp_path: pathlib.Path, compress: object
) -> None:
    target = tmp_path / "model.jl"
    old = {"old": np.arange(100.0)}
    dump(old, target, compress=compress)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(target), "compressed" if compress else "raw"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "mid-write"
        temp_files = [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]
        assert len(temp_files) == 1
        assert temp_files[0].stat().st_size > 8 * 1024 * 1024
        assert_same(load(target), old)  # a reader during the write sees the old file
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert_same(load(target), old)
    if compress:  # a compressed file cannot be mapped: joblib warns, so does joblite
        with pytest.warns(UserWarning, match="mmap_mode"):
            assert_same(load(target, mmap_mode="r"), old)
    else:
        assert_same(load(target, mmap_mode="r"), old)


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle this")


@pytest.mark.parametrize("compress", [0, True])
@pytest.mark.parametrize(
    "bad", [threading.Lock(), Unpicklable(), {"ok": np.ones(10), "bad": Unpicklable()}]
)
def test_failed_dump_leaves_no_temp_file_and_the_old_file(
    tmp_path: pathlib.Path, bad: object, compress: object
) -> None:
    target = tmp_path / "model.jl"
    dump([1, 2], target)
    with pytest.raises(TypeError):
        dump(bad, target, compress=compress)
    assert [p.name for p in tmp_path.iterdir()] == ["model.jl"]
    assert load(target) == [1, 2]


def test_failed_dump_to_a_new_path_creates_nothing(tmp_path: pathlib.Path) -> None:
    with pytest.raises(TypeError):
        dump(Unpicklable(), tmp_path / "new.jl")
    assert list(tmp_path.iterdir()) == []


def test_dump_into_a_missing_directory_fails_cleanly(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError):
        dump([1], tmp_path / "missing" / "x.jl")


def test_dumped_file_gets_normal_permissions(tmp_path: pathlib.Path) -> None:
    dump([1], tmp_path / "x.jl")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "x.jl").stat().st_mode & 0o777 == 0o666 & ~umask


def _deleted_files_held_open() -> list[str]:
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.endswith("(deleted)"):
            held.append(target)
    return held


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_replacing_a_big_file_releases_it_and_keeps_it_readable(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import joblite.persistence

    monkeypatch.setattr(joblite.persistence, "_DROP_CACHE_MIN_BYTES", 1024)
    dropped: list[str] = []
    drop = joblite.persistence._drop_cached_pages
    monkeypatch.setattr(
        joblite.persistence, "_drop_cached_pages", lambda path: (dropped.append(path), drop(path))
    )
    target = tmp_path / "model.jl"
    size = 200_000  # 1.6 MB: over SMALL_FILE, so not written whole by the small path
    dump(np.zeros(size), target)
    with open(target, "rb") as reader:  # a reader of the old file keeps its bytes
        dump(np.ones(size), target)  # its cache is dropped, then it is replaced
        assert dropped[-1] == str(target)
        assert_same(load(reader), np.zeros(size))
    assert not [path for path in _deleted_files_held_open() if str(tmp_path) in path]
    assert_same(load(target), np.ones(size))
    with pytest.raises(TypeError):
        dump(Unpicklable(), target)
    assert not [path for path in _deleted_files_held_open() if str(tmp_path) in path]
    assert [p.name for p in tmp_path.iterdir()] == ["model.jl"]
    assert_same(load(target), np.ones(size))
