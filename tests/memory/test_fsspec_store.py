"""Memory on object storage: a real S3-protocol server (moto) reached through s3fs.

The store contract (test_stores.py and the Memory tests over the ``store``
fixture) runs over the fsspec store too; here are what only an object store
has: URLs, conditional-create lease locks, per-writer journals, request counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from joblite.exceptions import CacheLockTimeoutError
from joblite.memory import FsspecStore, Memory
from joblite.memory._eviction import scan_entries
from joblite.memory._journal import JOURNAL, read_journal

pytest.importorskip("s3fs", reason="the S3 tests need the test extra (s3fs, moto[server])")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def s3_url(s3_server: str) -> Iterator[str]:
    """A fresh ``s3://bucket/<random>`` prefix, emptied afterwards."""
    url = f"{s3_server}/{uuid.uuid4().hex}"
    yield url
    FsspecStore(url).delete("")


def double(x: int) -> int:
    return 2 * x


class RequestCounter:
    """The S3 API operations a store's client makes (botocore's event hook)."""

    def __init__(self, store: FsspecStore) -> None:
        self.calls: list[str] = []
        store.fs.s3.meta.events.register("before-call.s3", self._count)

    def _count(self, model: object, **_: object) -> None:
        self.calls.append(str(model.name))  # type: ignore[attr-defined]

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


def test_a_url_is_never_a_local_directory(
    s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mem = Memory(s3_url, verbose=0)
    f = mem.cache(double)
    assert f(21) == 42
    assert os.listdir(tmp_path) == []  # joblib creates ./s3:/bucket/... here
    assert isinstance(mem.store, FsspecStore)
    assert repr(mem) == f"Memory(location={s3_url}/joblib)"
    assert len(scan_entries(FsspecStore(f"{s3_url}/joblib"))) == 1


def test_backend_options_reach_the_file_system(
    s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the environment's endpoint, only the option leads to the server.
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    mem = Memory(s3_url, backend="fsspec", backend_options={"endpoint_url": endpoint}, verbose=0)
    assert mem.cache(double)(2) == 4
    assert mem.cache(double).check_call_in_cache(2)
    with pytest.raises(ValueError, match="lease"):
        Memory(s3_url, backend_options={"lease": 0})


def test_a_missing_protocol_library_is_named() -> None:
    pytest.importorskip("fsspec")
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("gcsfs is installed")
    with pytest.raises(ImportError, match="gcsfs"):
        Memory("gs://bucket/cache")


def test_a_hit_is_one_get_and_a_miss_a_handful_of_requests(s3_url: str) -> None:
    mem = Memory(s3_url, verbose=0)
    store = mem.store
    assert isinstance(store, FsspecStore)
    counter = RequestCounter(store)
    f = mem.cache(double)
    f(1)  # the first miss of a function also lists its versions and writes function.json
    counter.take()
    f(2)
    miss = counter.take()
    # GET (absent), lock PUT, GET again under the lock, result PUT, journal PUT, lock DELETE
    assert miss.count("PutObject") == 3
    assert len(miss) <= 6, miss
    f(2)  # the first hit of an entry in a process also records it (for LRU eviction)
    counter.take()
    f(2)
    assert counter.take() == ["GetObject"]


def test_a_lock_is_created_once_until_released(s3_url: str) -> None:
    store, elsewhere = FsspecStore(s3_url), FsspecStore(s3_url)  # as on two machines
    with store.lock("f/v/e.out"):
        with pytest.raises(CacheLockTimeoutError, match="another caller"):
            elsewhere.lock("f/v/e.out", timeout=0.3).acquire()
        assert store.fs.exists(store.lock_object_path("f/v/e.out"))
    with elsewhere.lock("f/v/e.out", timeout=5):
        pass
    assert not store.fs.exists(store.lock_object_path("f/v/e.out"))


def test_a_live_lease_blocks_and_an_expired_one_is_taken_over(s3_url: str) -> None:
    store = FsspecStore(s3_url, lease=3600)
    path = store.lock_object_path("f/v/e.out")
    live = {"owner": "someone", "expires": time.time() + 3600}
    store.fs.pipe_file(path, json.dumps(live).encode())
    with pytest.raises(CacheLockTimeoutError):
        store.lock("f/v/e.out", timeout=0.3).acquire()
    dead = {"owner": "crashed", "expires": time.time() - 1}
    store.fs.pipe_file(path, json.dumps(dead).encode())
    with store.lock("f/v/e.out", timeout=30):
        assert json.loads(store.fs.cat_file(path))["owner"] != "crashed"


def test_a_holder_whose_lease_was_taken_over_leaves_the_new_lock(s3_url: str) -> None:
    store = FsspecStore(s3_url)
    lock = store.lock("f/v/e.out")
    lock.acquire()
    path = store.lock_object_path("f/v/e.out")
    successor = {"owner": "successor", "expires": time.time() + 3600}
    store.fs.pipe_file(path, json.dumps(successor).encode())  # as a takeover writes it
    lock.release()
    assert json.loads(store.fs.cat_file(path))["owner"] == "successor"


def test_a_planted_far_future_lease_expires_like_any_other(s3_url: str) -> None:
    store = FsspecStore(s3_url, lease=1.0)
    path = store.lock_object_path("f/v/e.out")
    store.fs.pipe_file(path, json.dumps({"owner": "x", "expires": 1e300}).encode())
    with store.lock("f/v/e.out", timeout=60):  # once the object is a lease old
        assert json.loads(store.fs.cat_file(path))["owner"] != "x"


def test_cache_gc_removes_expired_locks_and_keeps_live_ones(
    s3_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from joblite.cli import main

    f = Memory(s3_url, verbose=0).cache(double)
    assert f(1) == 2
    version_dir = f.__cache_key__(1).rsplit("/", 1)[0]
    store = FsspecStore(f"{s3_url}/joblib")
    crashed = store.lock_object_path(f"{version_dir}/crashed.out")
    store.fs.pipe_file(crashed, json.dumps({"owner": "x", "expires": time.time() - 5}).encode())
    with store.lock(f"{version_dir}/computing.out"):  # a live holder, renewing its lease
        live = store.lock_object_path(f"{version_dir}/computing.out")
        assert main(["cache", "gc", s3_url, "--max-items", "10"]) == 0
        assert store.fs.exists(live)
    assert not store.fs.exists(crashed)
    assert "removed 1 stale lock objects" in capsys.readouterr().out
    assert f(1) == 2  # the entry itself stays


def test_a_large_entry_round_trips_whole(s3_url: str) -> None:
    import numpy as np

    store = FsspecStore(s3_url)
    data = np.random.default_rng(0).bytes(20 << 20)  # spooled to a temp file, then uploaded
    with store.open_write("f/v/big.out") as f:
        f.write(data[:1000])
        f.write(data[1000:])
    counter = RequestCounter(store)
    assert store.read_bytes("f/v/big.out") == data
    assert counter.take() == ["GetObject", "GetObject"]  # the first MiB, then the rest
    assert store.stat("f/v/big.out").size == len(data)


@pytest.mark.slow
def test_a_crashed_holder_blocks_others_only_for_its_lease(s3_url: str) -> None:
    # A process takes the entry's lock and dies without releasing it.
    mem = Memory(s3_url, verbose=0, backend_options={"lease": 1.0})
    f = mem.cache(double)
    entry = f.__cache_key__(5)
    crash = (
        "import os, sys\n"
        "from joblite.memory import FsspecStore\n"
        "store = FsspecStore(sys.argv[1], lease=1.0)\n"
        "store.lock(sys.argv[2] + '.out').acquire()\n"
        "os._exit(0)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-c", crash, f"{s3_url}/joblib", entry], env=env, check=True, timeout=60
    )
    assert mem.store is not None
    assert mem.store.fs.exists(mem.store.lock_object_path(entry + ".out"))  # type: ignore[attr-defined]
    blocked = Memory(s3_url, verbose=0, lock_timeout=60, backend_options={"lease": 1.0})
    assert blocked.cache(double)(5) == 10


def test_writers_keep_their_own_journal_and_gc_merges_them(s3_url: str) -> None:
    a, b = Memory(s3_url, verbose=0), Memory(s3_url, verbose=0)
    fa, fb = a.cache(double), b.cache(double)
    assert (fa(1), fb(2), fb(1)) == (2, 4, 2)  # b hits a's entry
    store = FsspecStore(f"{s3_url}/joblib")
    version_dir = fa.__cache_key__(1).rsplit("/", 1)[0]
    journals = [n for n in store.children(version_dir) if n.startswith(JOURNAL)]
    assert len(journals) == 2
    records, _ = read_journal(store, version_dir)
    args = {r.metadata["input_args"]["x"] for r in records.values()}
    assert args == {"1", "2"}
    from joblite.cli import main

    assert main(["cache", "gc", s3_url, "--max-items", "10"]) == 0
    assert [n for n in store.children(version_dir) if n.startswith(JOURNAL)] != journals
    assert len([n for n in store.children(version_dir) if n.startswith(JOURNAL)]) == 1
    merged, lines = read_journal(store, version_dir)
    assert {r.metadata["input_args"]["x"] for r in merged.values()} == {"1", "2"}
    # b's next record starts a new object, not on top of the records gc merged.
    assert fb(3) == 6
    assert read_journal(store, version_dir)[1] == lines + 1


def test_a_forked_child_writes_its_own_journal(
    s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mem = Memory(s3_url, verbose=0)
    f = mem.cache(double)
    f(1)
    store = mem.store
    assert isinstance(store, FsspecStore)
    parent = store.journal_writer
    # What a child sees after os.fork (forking here would also copy the server's thread).
    child_pid = os.getpid() + 1
    monkeypatch.setattr(os, "getpid", lambda: child_pid)
    assert store.journal_writer != parent
    f(2)
    version_dir = f.__cache_key__(2).rsplit("/", 1)[0]
    journals = [n for n in store.children(version_dir) if n.startswith(JOURNAL)]
    assert sorted(journals) == sorted([f"{JOURNAL}-{parent}", f"{JOURNAL}-{store.journal_writer}"])
    records, _ = read_journal(store, version_dir)
    assert {r.metadata["input_args"]["x"] for r in records.values()} == {"1", "2"}


def test_the_cli_reads_and_trims_a_cache_at_a_url(
    s3_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from joblite.cli import main

    f = Memory(s3_url, verbose=0).cache(double)
    for i in range(4):
        f(i)
    assert main(["cache", "ls", s3_url]) == 0
    assert "double" in capsys.readouterr().out
    assert main(["cache", "stats", s3_url]) == 0
    assert "entries:       4" in capsys.readouterr().out
    assert main(["cache", "gc", s3_url, "--max-items", "2"]) == 0
    assert len(scan_entries(FsspecStore(f"{s3_url}/joblib"))) <= 2
    assert main(["cache", "rm", s3_url, "double"]) == 0
    assert scan_entries(FsspecStore(f"{s3_url}/joblib")) == []
    with pytest.raises(SystemExit, match="does not look like a joblite cache"):
        main(["cache", "ls", f"{s3_url}/nothing-here"])
