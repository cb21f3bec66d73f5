"""Links planted in a shared cache never make it write or delete outside itself.

Each test plants a link a co-user with write access to the cache could make
(a symlinked version or function directory, a ``.<key>.out.part``,
``function.json``, ``journal`` or entry file pointing outside, a hard-linked
journal, orphan-looking links), runs what users run on a cache, and checks
that nothing outside changed and the call still returns the right value.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from joblite.cli import main
from joblite.exceptions import UnsafeCachePathError
from joblite.memory import Memory
from joblite.memory._locks import FileLock


def square(x: int) -> int:
    return x * x


@dataclass
class Layout:
    cache: Path  # the directory given to Memory
    version_dir: Path
    hashes: list[str]  # args hashes of square(1), square(2)
    outside: Path  # a directory a co-user wants the cache to damage

    @property
    def func_dir(self) -> Path:
        return self.version_dir.parent


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every path below ``root`` with its mode, mtime and content (links not followed)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            content = Path(path).read_bytes() if stat.S_ISREG(st.st_mode) else None
            found[os.path.relpath(path, root)] = (st.st_mode, st.st_mtime_ns, content)
    return found


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    cache = tmp_path / "cache"
    f = Memory(cache, verbose=0).cache(square)
    keys = [f.__cache_key__(1), f.__cache_key__(2)]
    f(1), f(2)
    func_id, version, _ = keys[0].split("/")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_bytes(b"precious")
    (outside / "victim.out").write_bytes(b"precious output")
    return Layout(
        cache, cache / "joblib" / func_id / version, [k.split("/")[2] for k in keys], outside
    )


def _move_outside(directory: Path, outside: Path) -> None:
    """Move ``directory`` (real entries) outside and leave a link to it in its place."""
    target = outside / directory.name
    shutil.move(str(directory), str(target))
    directory.symlink_to(target, target_is_directory=True)


def _replace_with_link(path: Path, target: Path) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to(target)


def _old_link(path: Path, target: Path) -> None:
    path.symlink_to(target)
    old = time.time() - 7200
    os.utime(path, (old, old), follow_symlinks=False)


PLANTS: dict[str, Callable[[Layout], None]] = {
    "version_dir": lambda lay: _move_outside(lay.version_dir, lay.outside),
    "function_dir": lambda lay: _move_outside(lay.func_dir, lay.outside),
    "part_file": lambda lay: (lay.version_dir / ".3f.out.part").symlink_to(
        lay.outside / "victim.txt"
    ),
    "function_json": lambda lay: _replace_with_link(
        lay.version_dir / "function.json", lay.outside / "victim.txt"
    ),
    "journal": lambda lay: _replace_with_link(
        lay.version_dir / "journal", lay.outside / "victim.txt"
    ),
    "journal_hard_link": lambda lay: (
        (lay.version_dir / "journal").unlink(),
        os.link(lay.outside / "victim.txt", lay.version_dir / "journal"),
    ),
}


def _memoized(lay: Layout, **limits: int) -> Callable[[int], int]:
    return Memory(lay.cache, verbose=0, **limits).cache(square)  # type: ignore[return-value]


def _miss(lay: Layout) -> None:
    assert _memoized(lay)(3) == 9  # square(3) is the entry "3f" (see _part_name)


def _hit(lay: Layout) -> None:
    f = _memoized(lay)
    assert [f(1), f(2), f(1)] == [1, 4, 1]


def _auto_evict(lay: Layout) -> None:
    f = _memoized(lay, items_limit=1)
    assert [f(3), f(4), f(5)] == [9, 16, 25]


def _cli(*argv: str) -> Callable[[Layout], None]:
    def run(lay: Layout) -> None:
        assert main(["cache", argv[0], str(lay.cache), *argv[1:]]) == 0

    return run


OPERATIONS: dict[str, Callable[[Layout], object]] = {
    "miss": _miss,
    "hit": _hit,
    "invalidate": lambda lay: Memory(lay.cache, verbose=0).cache(square).invalidate(1),
    "reduce_size": lambda lay: Memory(lay.cache, verbose=0).reduce_size(items_limit=0),
    "auto_evict": _auto_evict,
    "cli_gc": _cli("gc", "--max-items", "0"),
}


@pytest.fixture(autouse=True)
def _part_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make square(3) an entry named ``3f`` so a ``.3f.out.part`` can be planted for it."""
    from joblite.memory import _memorized

    real = _memorized.core_hash

    def fake_hash(obj: object, **kwargs: object) -> str:
        digest = real(obj, **kwargs)  # type: ignore[arg-type]
        return "3f" if obj == (3,) else digest

    monkeypatch.setattr(_memorized, "core_hash", fake_hash)


# What a planted link made an unprotected cache do outside itself: delete the
# entries found through a linked directory (eviction, gc, invalidate), write
# entries, journals and function.json into it (miss, hit: a hit appends to the
# journal), truncate and overwrite a file through .part, replace one through
# function.json, append to one through journal.
CASES = [
    *[(p, op) for p in ("version_dir", "function_dir") for op in ("miss", "hit", "invalidate")],
    *[(p, op) for p in ("version_dir", "function_dir") for op in ("reduce_size", "cli_gc")],
    *[(p, "auto_evict") for p in PLANTS],
    *[(p, "miss") for p in ("part_file", "function_json", "journal", "journal_hard_link")],
    *[(p, "hit") for p in ("journal", "journal_hard_link")],
]


@pytest.mark.parametrize(("plant", "operation"), CASES)
def test_a_planted_link_changes_nothing_outside(
    layout: Layout, plant: str, operation: str, caplog: pytest.LogCaptureFixture
) -> None:
    PLANTS[plant](layout)
    before = snapshot(layout.outside)
    with caplog.at_level(logging.CRITICAL), contextlib.suppress(UnsafeCachePathError):
        # A clear error (invalidate through a linked directory) is a fine answer;
        # a wrong value, a traceback of another kind or an outside change is not.
        OPERATIONS[operation](layout)
    assert snapshot(layout.outside) == before
    # And the cache still works: a new call computes or loads the right value.
    assert Memory(layout.cache, verbose=0).cache(square)(6) == 36


def test_a_replaced_cache_root_is_not_followed(layout: Layout) -> None:
    mem = Memory(layout.cache, verbose=0)
    f = mem.cache(square)
    assert f(1) == 1
    _move_outside(layout.cache / "joblib", layout.outside)
    before = snapshot(layout.outside)
    assert f(7) == 49  # computed, returned uncached: the root is now a link
    with pytest.raises(UnsafeCachePathError):
        f.invalidate(1)
    assert snapshot(layout.outside) == before


def test_a_stale_exclusive_lock_link_is_broken_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    before = snapshot(tmp_path)
    _old_link(tmp_path / "entry.part.lock", victim)
    # Unprotected, the link's target (fresh) made the lock look held forever.
    with FileLock(str(tmp_path / "entry.part"), use_flock=False, timeout=2):
        pass
    assert not (tmp_path / "entry.part.lock").exists()
    assert snapshot(tmp_path) == before


def _call_unless_it_hangs(call: Callable[[], int], fifo: Path) -> int:
    results: list[int] = []
    thread = threading.Thread(target=lambda: results.append(call()))
    thread.start()
    thread.join(60)  # a guard against a hang, not a timing: the fixed call never waits
    if thread.is_alive():
        # Open the other end once, so that the blocked open returns and no thread is left.
        os.close(
            os.open(fifo, (os.O_RDONLY if fifo.name == "journal" else os.O_WRONLY) | os.O_NONBLOCK)
        )
        thread.join()
        pytest.fail(f"a FIFO planted at {fifo.name} hung the call")
    return results[0]


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_a_planted_fifo_entry_is_recomputed_not_waited_on(
    layout: Layout, mmap_mode: str | None
) -> None:
    output = layout.version_dir / f"{layout.hashes[0]}.out"
    output.unlink()
    os.mkfifo(output)
    f = Memory(layout.cache, verbose=0, mmap_mode=mmap_mode).cache(square)
    assert _call_unless_it_hangs(lambda: f(1), output) == 1
    assert output.is_file()


def test_a_planted_fifo_journal_is_replaced_not_waited_on(layout: Layout) -> None:
    journal = layout.version_dir / "journal"
    journal.unlink()
    os.mkfifo(journal)
    f = Memory(layout.cache, verbose=0).cache(square)
    assert _call_unless_it_hangs(lambda: f(3), journal) == 9
    assert journal.is_file()
    assert f.check_call_in_cache(3)


def ones(n: int) -> Any:
    import numpy as np

    return np.ones(n)


@pytest.mark.parametrize("kind", ["symlink", "hard link"])
def test_an_entry_mapped_writable_is_never_a_file_outside(tmp_path: Path, kind: str) -> None:
    pytest.importorskip("numpy")
    mem = Memory(tmp_path / "cache", verbose=0, mmap_mode="r+")
    f = mem.cache(ones)
    f(4)
    (entry,) = (tmp_path / "cache").glob("joblib/*/*/*.out")
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.out"  # a joblite file of the co-user's, to be mapped
    shutil.copy(entry, victim)
    entry.unlink()
    if kind == "symlink":
        entry.symlink_to(victim)
    else:
        os.link(victim, entry)
    before = snapshot(outside)
    array = Memory(tmp_path / "cache", verbose=0, mmap_mode="r+").cache(ones)(4)
    assert array.tolist() == [1.0] * 4
    array[:] = 7.0  # the caller owns the mapped entry: this writes to the cache file
    array.flush()
    del array
    assert snapshot(outside) == before
