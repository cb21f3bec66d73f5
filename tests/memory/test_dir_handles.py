"""FileStore acts through directory handles: a link swapped in mid-operation leads nowhere.

The links planted before an operation are in test_links.py. Here a co-user
swaps a directory for a link *after* the store has looked at it (the gap a
check-then-use design leaves), and the cache directory is removed or moved
away while a process keeps its handle on it.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from joblite.exceptions import CacheError
from joblite.memory import FileStore, Memory
from joblite.memory.stores import local

from .test_links import snapshot


def square(x: int) -> int:
    return x * x


def test_a_directory_swapped_for_a_link_after_the_walk_leads_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = Memory(tmp_path / "cache", verbose=0).cache(square)
    assert f(1) == 1
    version_dir = (tmp_path / "cache" / "joblib" / f.__cache_key__(1)).parent
    victim = tmp_path / "victim"  # a directory of the user's, outside the cache
    victim.mkdir()
    (victim / "journal").write_bytes(b"precious")
    before = snapshot(victim)
    real_open = local.open_no_follow

    def swap_then_open(*args: Any, **kwargs: Any) -> int:
        # The journal append of the next miss: its directory was checked (or
        # opened) already. The co-user moves it away and links the victim there.
        if not version_dir.is_symlink():
            version_dir.rename(tmp_path / "moved")
            version_dir.symlink_to(victim, target_is_directory=True)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(local, "open_no_follow", swap_then_open)
    assert f(2) == 4
    assert snapshot(victim) == before
    # The line went to the journal of the directory the store had opened.
    assert b'"x": "2"' in (tmp_path / "moved" / "journal").read_bytes()


@pytest.mark.parametrize("how", ["removed", "moved away"])
def test_a_cache_directory_removed_or_moved_under_a_process_is_made_afresh(
    tmp_path: Path, how: str
) -> None:
    mem = Memory(tmp_path / "cache", verbose=0)
    f = mem.cache(square)
    assert f(1) == 1  # the store now keeps the cache directory open
    root = tmp_path / "cache" / "joblib"
    if how == "removed":
        shutil.rmtree(root)
    else:
        root.rename(tmp_path / "old")
    assert f(2) == 4
    # Stored where the cache is now, not in the directory the store had open.
    assert (root / f.__cache_key__(2)).with_suffix(".out").is_file()
    assert f.check_call_in_cache(2)
    assert not f.check_call_in_cache(1)
    if how == "moved away":
        assert sorted(p.name for p in (tmp_path / "old").rglob("*.out")) == [
            f.__cache_key__(1).rpartition("/")[2] + ".out"
        ]


def test_a_store_keeps_no_descriptor_beyond_its_cache_directory(tmp_path: Path) -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc")

    def open_here() -> list[str]:
        """What this process has open below ``tmp_path`` (other tests' files aside)."""
        found = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # the listing's own descriptor, gone
                target = os.readlink(f"/proc/self/fd/{fd}")
                if target.startswith(str(tmp_path)):
                    found.append(target)
        return found

    store = FileStore(tmp_path / "joblib")
    with store.lock("f/v/e.out") as lock, store.open_write("f/v/e.out", lock=lock) as out:
        out.write(b"x")
    store.append("f/v/journal", b"line\n")
    store.delete("f")
    assert open_here() == [str(tmp_path / "joblib")]  # the cache directory, kept open
    del store, lock, out
    gc.collect()
    assert open_here() == []


@pytest.mark.parametrize("prefix", ["..", "f/..", ".", "f//g"])
def test_a_listing_never_steps_out_of_the_store(tmp_path: Path, prefix: str) -> None:
    (tmp_path / "outside.txt").write_bytes(b"x")
    store = FileStore(tmp_path / "joblib")
    store.write_bytes("f/g/e.out", b"x")
    with pytest.raises(ValueError, match=re.escape("none '', '.' or '..'")):
        store.children(prefix)


def test_a_platform_without_directory_handles_gets_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Windows has no dir_fd support: the cache must say so, not fail mid-call.
    monkeypatch.setattr(os, "supports_dir_fd", os.supports_dir_fd - {os.open, os.unlink})
    with pytest.raises(CacheError, match=r"directory handle.*\(open, unlink\).*location=None"):
        Memory(tmp_path / "cache", verbose=0)
    assert not (tmp_path / "cache").exists()
    assert Memory(None, verbose=0).cache(square)(3) == 9  # no location: no files, works
