"""What a cache miss asks of the file system, and the lock that makes it compute once.

docs/memory.md counts a miss's system calls on the local store; the lock's
short path (it creates its file and locks it at once) must still lock the
file named by the lock's path, whatever another caller did in between.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from joblite.memory import FileStore, Memory, _locks

# What a miss's file work goes through (the os functions joblite calls by module attribute).
_SYSTEM_CALLS = {
    os: [
        "open",
        "close",
        "stat",
        "lstat",
        "fstat",
        "access",
        "read",
        "write",
        "rename",
        "replace",
        "unlink",
        "mkdir",
        "ftruncate",
        "lseek",
        "fsync",
        "scandir",
        "listdir",
    ],
    fcntl: ["flock"],
}


def square(x: int) -> int:
    return x * x


def _counting(real: Callable[..., Any], name: str, calls: list[str]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return real(*args, **kwargs)

    return counted


def test_a_miss_makes_18_system_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = Memory(tmp_path / "cache", verbose=0).cache(square)
    assert f(1) == 1  # the function's first miss makes its directories and function.json
    calls: list[str] = []
    for module, names in _SYSTEM_CALLS.items():
        for name in names:
            monkeypatch.setattr(module, name, _counting(getattr(module, name), name, calls))
    assert f(2) == 4
    monkeypatch.undo()
    # The lookup, the walk from the cache root (lstat, 2 opens, a close), the lock
    # file created and locked (open, flock, fstat), the entry looked for again
    # under the lock, the held file checked (fstat), written, renamed; the journal
    # line (open, fstat, write, close); the lock file and the directory closed.
    assert len(calls) <= 18, calls
    assert calls.count("open") == 4  # two directories, the lock file, the journal
    assert f(2) == 4
    assert f.check_call_in_cache(2)


def test_a_lock_beaten_to_its_new_file_locks_the_file_named_by_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "joblib")
    real_flock = fcntl.flock

    def another_caller_first(fd: int, operation: int) -> None:
        # Between our creating the lock file and locking it, another caller
        # opened it, locked it, stored its entry through it and let go.
        monkeypatch.setattr(_locks.fcntl, "flock", real_flock)
        with store.lock("f/v/e.out") as other, store.open_write("f/v/e.out", lock=other) as out:
            out.write(b"theirs")
        real_flock(fd, operation)

    lock = store.lock("f/v/e.out")
    monkeypatch.setattr(_locks.fcntl, "flock", another_caller_first)
    with lock:
        # Not the file that became the entry: a new lock file, at the lock's path.
        held = os.fstat(lock.fileno())
        named = os.stat(lock.path, follow_symlinks=False)
        assert (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)
        assert lock.held_file_size(lock.path) == 0
        assert lock.exists_beside("e.out") is True  # so a miss loads it, not computes
    assert store.read_bytes("f/v/e.out") == b"theirs"
    assert store.children("f/v") == ["e.out"]  # the new lock file went with the lock
    assert not os.path.exists(lock.path)


def test_a_lock_file_removed_while_held_is_not_written_into(tmp_path: Path) -> None:
    # cache gc (of a computation over an hour long) or a clear() in another process.
    store = FileStore(tmp_path / "joblib")
    with store.lock("f/v/e.out") as lock:
        os.unlink(lock.path)
        assert lock.held_file_size(lock.path) is None
        with store.open_write("f/v/e.out", lock=lock) as out:  # written anew, atomically
            out.write(b"mine")
    assert store.read_bytes("f/v/e.out") == b"mine"
    assert store.children("f/v") == ["e.out"]


def test_a_lock_without_a_held_directory_cannot_tell_what_is_beside_it(tmp_path: Path) -> None:
    lock = _locks.FileLock(str(tmp_path / ".e.out.part"))
    with lock:
        assert lock.exists_beside("e.out") is None  # the caller looks by path instead


@pytest.mark.parametrize("platform", ["faccessat", "no faccessat with dir_fd"])
def test_an_entry_stored_while_a_miss_waited_is_loaded_not_computed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    if platform != "faccessat":
        monkeypatch.setattr(_locks, "_ACCESS_BESIDE", False)
    f = Memory(tmp_path / "cache", verbose=0).cache(square)
    store = f.store
    assert isinstance(store, FileStore)
    with store.lock(f.__cache_key__(3) + ".out") as lock:
        assert lock.exists_beside("anything") is (False if platform == "faccessat" else None)
    # Looked for again under the lock (beside it, or by path), found and loaded.
    real_lock = store.lock

    def lock_after_another_stored(*args: Any, **kwargs: Any) -> _locks.FileLock:
        f.put(10, 3)  # another caller stored it meanwhile (square(3) would be 9)
        return real_lock(*args, **kwargs)

    monkeypatch.setattr(store, "lock", lock_after_another_stored)
    assert f(3) == 10
