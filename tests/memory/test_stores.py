"""The store contract, run against every store implementation."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from joblite.memory import FileStore, Memory, Store
from joblite.persistence import dump

from ..persistence.helpers import assert_same


def test_missing_keys_raise_key_error(store: Store) -> None:
    with pytest.raises(KeyError):
        store.read_bytes("a/b")
    with pytest.raises(KeyError):
        store.open_read("a/b")
    with pytest.raises(KeyError):
        store.stat("a/b")
    assert store.children("a") == []
    assert not store.delete("a")


def test_write_read_stat_and_children(store: Store) -> None:
    store.write_bytes("f/v/e1/output", b"hello")
    with store.open_write("f/v/e2/output") as f:
        f.write(b"abc")
        f.write(b"def")
    assert store.read_bytes("f/v/e1/output") == b"hello"
    with store.open_read("f/v/e2/output") as f:
        assert f.read() == b"abcdef"
    assert store.stat("f/v/e2/output").size == 6
    assert store.children("") == ["f"]
    assert store.children("f/v") == ["e1", "e2"]
    assert sorted(store.walk("f")) == ["f/v/e1/output", "f/v/e2/output"]


def test_overwrite_is_atomic_and_failed_write_keeps_old_value(store: Store) -> None:
    store.write_bytes("k/output", b"old")

    class Abort(Exception):
        pass

    def failing_write() -> None:
        with store.open_write("k/output") as f:
            f.write(b"partial")
            raise Abort

    with pytest.raises(Abort):
        failing_write()
    assert store.read_bytes("k/output") == b"old"
    store.write_bytes("k/output", b"new")
    assert store.read_bytes("k/output") == b"new"


def test_delete_subtree(store: Store) -> None:
    for key in ("a/1/x", "a/2/x", "b/1/x"):
        store.write_bytes(key, b"1")
    assert store.delete("a/1")
    assert store.children("a") == ["2"]
    assert store.delete("a")
    assert store.children("") == ["b"]
    assert store.delete("")
    assert store.children("") == []


def test_append(store: Store) -> None:
    store.append("v/journal", b"one\n")
    store.append("v/journal", b"two\n")
    assert store.read_bytes("v/journal") == b"one\ntwo\n"


def test_append_under_a_key_lock(store: Store) -> None:
    # What a miss does: the entry, then its journal line, under the entry's lock.
    store.append("f/v/journal", b"one\n")
    with store.lock("f/v/e.out") as lock:
        with store.open_write("f/v/e.out", lock=lock) as f:
            f.write(b"value")
        store.append_locked("f/v/journal", b"two\n", lock)
    assert store.read_bytes("f/v/journal") == b"one\ntwo\n"
    assert store.read_bytes("f/v/e.out") == b"value"


def test_thread_lock_is_exclusive(store: Store) -> None:
    import threading

    inside = []
    errors = []

    def work() -> None:
        with store.lock("k"):
            inside.append(1)
            if len(inside) > 1:
                errors.append("two holders")
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_store_pickles(store: Store) -> None:
    store.write_bytes("k", b"v")
    clone = pickle.loads(pickle.dumps(store))
    assert clone.read_bytes("k") == b"v"
    assert clone.location == store.location


def test_file_store_hides_temp_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    store.write_bytes("f/output", b"1")
    (tmp_path / "s" / "f" / ".tmp-joblite-abc").write_bytes(b"junk")
    assert store.children("f") == ["output"]
    assert list(store.walk()) == ["f/output"]


def test_file_store_rejects_unknown_options(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="backend_options"):
        FileStore(tmp_path, compresslevel=3)


def test_a_store_written_for_joblibs_interface_fails_clearly() -> None:
    import joblite

    class JoblibStyleStore(joblite.StoreBackendBase):  # type: ignore[misc]
        def _open_item(self, f, mode):  # type: ignore[no-untyped-def]
            return open(f, mode)

    with pytest.raises(TypeError, match="abstract method"):
        JoblibStyleStore()


def test_writes_through_the_key_lock(store: Store) -> None:
    # FileStore writes into the file it holds the lock on, then renames it.
    with store.lock("f/v/e.out") as lock, store.open_write("f/v/e.out", lock=lock) as f:
        f.write(b"abc")
        f.write(memoryview(b"defg"))
        f.write(bytearray(b"h"))
    assert store.read_bytes("f/v/e.out") == b"abcdefgh"
    assert store.children("f/v") == ["e.out"]


def test_a_write_after_a_failed_one_under_the_same_lock_starts_afresh(store: Store) -> None:
    def fail_half_way(lock: object) -> None:
        with store.open_write("f/v/e.out", lock=lock) as f:
            f.write(b"half of an entry")
            raise RuntimeError("the writer failed")

    with store.lock("f/v/e.out") as lock:
        with pytest.raises(RuntimeError):
            fail_half_way(lock)
        with store.open_write("f/v/e.out", lock=lock) as f:
            f.write(b"good")
    assert store.read_bytes("f/v/e.out") == b"good"


def test_file_store_writes_every_byte_when_the_system_writes_fewer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path)
    data = bytes(range(256)) * 40
    with store.lock("f/v/e.out") as lock:
        real_write = os.write
        # os.write may write fewer bytes than asked (a signal, a full disk on the way).
        monkeypatch.setattr(os, "write", lambda fd, chunk: real_write(fd, bytes(chunk)[:1000]))
        with store.open_write("f/v/e.out", lock=lock) as f:
            assert f.write(data) == len(data)
        monkeypatch.undo()
    assert store.read_bytes("f/v/e.out") == data


def _big_value(nbytes: int) -> object:
    return {"a": np.arange(nbytes // 8, dtype=np.float64), "b": list(range(10))}


# Past the sizes where files stop being written in one call (1 MB), get their
# blocks reserved first (1 MB) and have their checksums patched in (16 MB).
@pytest.mark.parametrize(("nbytes", "compress"), [(2**21, 0), (2**21, 3), (2**25, 0)])
def test_file_store_entries_are_the_files_dump_writes(
    tmp_path: Path, nbytes: int, compress: int
) -> None:
    memory = Memory(tmp_path / "cache", verbose=0, compress=compress)
    f = memory.cache(_big_value)
    assert_same(f(nbytes), _big_value(nbytes))
    (entry,) = (tmp_path / "cache").glob("**/*.out")
    dump(_big_value(nbytes), tmp_path / "dumped.jl", compress=compress)
    assert entry.read_bytes() == (tmp_path / "dumped.jl").read_bytes()
    assert_same(f(nbytes), _big_value(nbytes))


def test_a_lock_whose_file_was_deleted_meanwhile_writes_elsewhere(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    lock = store.lock("f/v/e.out")
    lock.acquire()
    store.delete("f")  # e.g. Memory.clear() in another process, while computing
    other = store.lock("f/v/e.out")  # a caller since then: a new lock file, same name
    other.acquire()
    with store.open_write("f/v/e.out", lock=lock) as f:
        f.write(b"mine")
    assert store.read_bytes("f/v/e.out") == b"mine"
    # The other caller's lock file is neither renamed nor written into.
    assert other.held_file_size(other.path) == 0
    assert os.path.getsize(other.path) == 0
    other.release()
    lock.release()
    assert store.children("f/v") == ["e.out"]


def test_a_failed_write_through_the_key_lock_leaves_no_entry(store: Store) -> None:
    class Abort(Exception):
        pass

    def failing_write(lock: object) -> None:
        with store.open_write("f/v/e.out", lock=lock) as f:
            f.write(b"partial")
            raise Abort

    with store.lock("f/v/e.out") as lock:
        with pytest.raises(Abort):
            failing_write(lock)
        if isinstance(store, FileStore):  # the locked file is emptied at once
            assert os.path.getsize(lock.path) == 0
    with pytest.raises(KeyError):
        store.read_bytes("f/v/e.out")
    assert store.children("f/v") == []
    if isinstance(store, FileStore):
        assert os.listdir(store.local_path("f/v")) == []  # nor a hidden lock file
