"""Atomic writes: a reader sees the old file or the new one, never a partial one."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from joblite._core.fsutil import (
    TEMP_PREFIX,
    atomic_write,
    atomic_write_bytes,
    open_no_follow,
    safe_remove,
)


def test_atomic_write_replaces_the_target(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as f:
        f.write(b"new contents")
        assert target.read_bytes() == b"old", "the target changes only when the block ends"
    assert target.read_bytes() == b"new contents"
    assert os.listdir(tmp_path) == ["data.bin"]


@pytest.mark.parametrize("fsync", [False, True])
def test_failed_write_leaves_old_file_and_no_temp_file(tmp_path: Path, fsync: bool) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")

    def write_then_fail() -> None:
        with atomic_write(target, fsync=fsync) as f:
            f.write(b"partial")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["data.bin"]


def test_new_file_gets_the_permissions_of_a_plain_open(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "a", b"x", fsync=True)
    (tmp_path / "b").write_bytes(b"x")
    assert (tmp_path / "a").stat().st_mode == (tmp_path / "b").stat().st_mode


def test_safe_remove(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "d" / "sub").mkdir(parents=True)
    assert safe_remove(tmp_path / "f")
    assert safe_remove(tmp_path / "d")
    assert not safe_remove(tmp_path / "f")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_writer_killed_mid_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    script = textwrap.dedent(
        f"""
        import sys, time
        from joblite._core.fsutil import atomic_write
        with atomic_write({str(target)!r}) as f:
            f.write(b"x" * 1_000_000)
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "writing"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert target.read_bytes() == b"old"
    leftovers = [name for name in os.listdir(tmp_path) if name != "data.bin"]
    assert all(name.startswith(TEMP_PREFIX) for name in leftovers)


def test_writes_through_a_symlink_like_open_does(tmp_path: Path) -> None:
    real = tmp_path / "real.bin"
    real.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink()
    assert real.read_bytes() == b"new"


def test_existing_file_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "private.bin"
    target.write_bytes(b"old")
    target.chmod(0o600)
    atomic_write_bytes(target, b"new")
    assert target.stat().st_mode & 0o777 == 0o600


def test_errors_name_the_users_path(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "f.bin"
    with pytest.raises(FileNotFoundError, match="directory does not exist") as raised:
        atomic_write_bytes(missing, b"x")
    assert raised.value.filename == str(missing)
    with pytest.raises(IsADirectoryError) as raised_dir:
        atomic_write_bytes(tmp_path, b"x")
    assert raised_dir.value.filename == str(tmp_path)
    assert os.listdir(tmp_path) == []


def test_atomic_write_without_following_replaces_a_link_not_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    link = tmp_path / "function.json"
    link.symlink_to(victim)
    with atomic_write(link, follow_symlinks=False) as f:
        f.write(b"{}")
    assert victim.read_bytes() == b"precious"
    assert not link.is_symlink()
    assert link.read_bytes() == b"{}"


@pytest.mark.parametrize("kind", ["symlink", "hard link"])
def test_open_no_follow_refuses_a_planted_link_or_replaces_it(tmp_path: Path, kind: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    journal = tmp_path / "journal"
    if kind == "symlink":
        journal.symlink_to(victim)
    else:
        os.link(victim, journal)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    with pytest.raises(OSError, match=r"Errno (40|31)|link") as refused:
        open_no_follow(str(journal), flags)
    assert refused.value.errno in (errno.ELOOP, errno.EMLINK)
    fd = open_no_follow(str(journal), flags, replace_planted=True)
    os.write(fd, b"line\n")
    os.close(fd)
    assert victim.read_bytes() == b"precious"
    assert journal.read_bytes() == b"line\n"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_new_file_gets_the_umask_of_now_like_open(tmp_path: Path) -> None:
    # The umask is applied when the file is created, as open() does, not the one
    # joblite saw at import; a replaced file keeps its own mode whatever the umask.
    (tmp_path / "kept").write_bytes(b"old")
    (tmp_path / "kept").chmod(0o644)
    previous = os.umask(0o077)
    try:
        atomic_write_bytes(tmp_path / "a", b"x")
        with atomic_write(tmp_path / "b") as f:
            f.write(b"x")
        (tmp_path / "c").write_bytes(b"x")
        atomic_write_bytes(tmp_path / "kept", b"new")
    finally:
        os.umask(previous)
    modes = {name: (tmp_path / name).stat().st_mode & 0o777 for name in ("a", "b", "c", "kept")}
    assert modes == {"a": 0o600, "b": 0o600, "c": 0o600, "kept": 0o644}


def test_a_planted_temp_name_costs_a_retry_not_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Temp names are random, and opened exclusively: a file (or link) already
    # there under the next name is neither written through nor replaced.
    planted = tmp_path / f"{TEMP_PREFIX}{'00' * 8}"
    planted.symlink_to(tmp_path / "victim")
    draws = iter([b"\0" * 8, b"\1" * 8])
    monkeypatch.setattr(os, "urandom", lambda n: next(draws))
    atomic_write_bytes(tmp_path / "data.bin", b"new")
    assert (tmp_path / "data.bin").read_bytes() == b"new"
    assert planted.is_symlink()
    assert not (tmp_path / "victim").exists()
    assert sorted(os.listdir(tmp_path)) == sorted(["data.bin", planted.name])


def test_a_failed_write_of_bytes_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")

    def disk_full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["data.bin"]
