"""Concurrent callers: computed once, never a partial read, no lock outliving its holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from joblite.exceptions import CacheLockTimeoutError
from joblite.memory import Memory
from joblite.memory._locks import FileLock


def _wait_for(path: Path, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(
                f"helper exited early: {process.stderr.read() if process.stderr else ''}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.01)


def test_threads_compute_once(memory: Memory) -> None:
    calls = []
    barrier = threading.Barrier(8)
    results = []

    @memory.cache
    def slow(x: int) -> int:
        calls.append(x)
        time.sleep(0.05)  # widen the window in which others arrive; not needed for correctness
        return x * 2

    def worker() -> None:
        barrier.wait()
        results.append(slow(21))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [42] * 8
    assert calls == [21]


def test_lock_false_lets_threads_compute_concurrently(tmp_path: Path) -> None:
    mem = Memory(tmp_path, verbose=0, lock=False)
    barrier = threading.Barrier(2, timeout=30)

    @mem.cache
    def meet(x: int) -> int:
        barrier.wait()  # would deadlock (and time out) if the two calls were serialized
        return x

    threads = [threading.Thread(target=meet, args=(1,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not barrier.broken


SCRIPT = """
import os, sys, time
from joblite.memory import Memory
mem = Memory(sys.argv[1], verbose=0)
log = sys.argv[2]

@mem.cache
def slow(x):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, b"x")
    os.close(fd)
    time.sleep(0.3)
    return [x] * 1000

go = sys.argv[3]
while not os.path.exists(go):
    time.sleep(0.005)
assert slow(7) == [7] * 1000
"""


def test_processes_compute_once(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(SCRIPT)
    log, go = tmp_path / "log", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "cache"), str(log), str(go)],
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    assert log.read_bytes() == b"x"


HAMMER = """
import logging, sys, random
from joblite.memory import Memory

class FailOnWarning(logging.Handler):
    # A partial read would be caught by the checksum and silently recomputed:
    # the warning that recovery logs is the only trace, so it fails the run.
    def emit(self, record):
        print("unexpected warning:", record.getMessage(), file=sys.stderr)
        sys.stderr.flush()
        import os
        os._exit(3)

logging.getLogger("joblite").addHandler(FailOnWarning(logging.WARNING))
mem = Memory(sys.argv[1], verbose=0)

@mem.cache
def value(k):
    return {"key": k, "payload": bytes([k]) * (1000 + 5000 * k)}

rng = random.Random(int(sys.argv[2]))
for i in range(int(sys.argv[3])):
    k = rng.randrange(8)
    if rng.random() < 0.2:
        value.invalidate(k)
    elif rng.random() < 0.1:
        value.call(k)  # rewrite an existing entry
    got = value(k)
    assert got == {"key": k, "payload": bytes([k]) * (1000 + 5000 * k)}, (k, len(got["payload"]))
"""


def test_many_processes_never_read_a_partial_entry(tmp_path: Path) -> None:
    script = tmp_path / "hammer.py"
    script.write_text(HAMMER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "cache"), str(seed), "1000"],
            stderr=subprocess.PIPE,
        )
        for seed in range(8)
    ]
    for p in procs:
        _, err = p.communicate(timeout=90)
        assert p.returncode == 0, err.decode()


KILLED_WRITER = """
import os, sys, time
from joblite.memory import Memory
mem = Memory(sys.argv[1], verbose=0)
signal_file = sys.argv[2]

class Slow:
    def __reduce__(self):
        with open(signal_file + ".tmp", "w") as f:  # we are inside the write now
            f.write(make.__cache_key__(1))
        os.replace(signal_file + ".tmp", signal_file)
        time.sleep(60)
        return (Slow, ())

@mem.cache
def make(x):
    return [b"a" * 100_000, Slow()]

make(1)
"""


def test_sigkill_mid_write_leaves_no_entry_and_no_lock(tmp_path: Path) -> None:
    script = tmp_path / "killed.py"
    script.write_text(KILLED_WRITER)
    signal_file = tmp_path / "writing"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "cache"), str(signal_file)],
        stderr=subprocess.PIPE,
    )
    _wait_for(signal_file, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    key = signal_file.read_text()

    mem = Memory(tmp_path / "cache", verbose=0)
    assert mem.store is not None
    assert [k for k in mem.store.walk() if k.endswith(".out")] == []
    with mem.store.lock(key, timeout=30):  # the dead writer's lock is free
        pass


def test_dead_lock_holder_does_not_block(tmp_path: Path) -> None:
    script = tmp_path / "holder.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            from joblite.memory import FileStore
            store = FileStore(sys.argv[1])
            with store.lock("some/entry"):
                open(sys.argv[2], "w").close()
                time.sleep(60)
            """
        )
    )
    held = tmp_path / "held"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "store"), str(held)], stderr=subprocess.PIPE
    )
    _wait_for(held, proc)
    from joblite.memory import FileStore

    store = FileStore(tmp_path / "store")
    with pytest.raises(CacheLockTimeoutError), store.lock("some/entry", timeout=0.05):
        pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    with store.lock("some/entry", timeout=30):
        pass


def test_lock_timeout_raises(tmp_path: Path) -> None:
    mem = Memory(tmp_path, verbose=0, lock_timeout=0.05)
    f = mem.cache(lambda x: x)
    assert mem.store is not None
    with mem.store.lock(f.__cache_key__(1) + ".out"), pytest.raises(CacheLockTimeoutError):
        f(1)
    assert f(1) == 1


def test_exclusive_create_fallback_breaks_stale_locks(tmp_path: Path) -> None:
    path = str(tmp_path / "locks" / "a.meta")
    holder = FileLock(path, use_flock=False)
    holder.acquire()
    with pytest.raises(CacheLockTimeoutError):
        FileLock(path, use_flock=False, timeout=0.05).acquire()
    old = time.time() - 3600
    os.utime(path + ".lock", (old, old))
    with FileLock(path, use_flock=False, stale_after=60, timeout=5):
        pass
    assert not os.path.exists(path + ".lock")


def test_waiter_on_a_removed_lock_file_locks_the_current_one(tmp_path: Path) -> None:
    path = str(tmp_path / ".entry.out.part")
    holder = FileLock(path)
    holder.acquire()
    waiter = FileLock(path, timeout=60)
    waiting = threading.Event()
    original_wait = waiter._wait_flock

    def wait_flock(*args: Any) -> None:
        waiting.set()  # the waiter has opened the holder's file
        original_wait(*args)

    waiter._wait_flock = wait_flock  # type: ignore[method-assign]
    thread = threading.Thread(target=waiter.acquire)
    thread.start()
    assert waiting.wait(60)
    holder.release()  # removes the file it did not rename away
    thread.join(60)
    assert waiter.held_file_size(path) is not None  # locks the file named path now
    with pytest.raises(CacheLockTimeoutError):
        FileLock(path, timeout=0.05).acquire()
    waiter.release()
    assert not os.path.exists(path)
