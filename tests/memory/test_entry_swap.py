"""An entry swapped for a link or a FIFO between the cache's check and its read.

The cache ``lstat``s an entry before it reads it; whatever a co-user swaps
in between must neither hang the call nor be read in place of the entry:
the call recomputes, as for an entry planted before the check.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import joblite
from joblite.memory import Memory, _calls, _results


def square(x: int) -> int:
    return x * x


def _cached(tmp_path: Path, mmap_mode: str | None) -> tuple[Any, Path]:
    f = Memory(tmp_path / "cache", verbose=0, mmap_mode=mmap_mode).cache(square)
    f(4)
    (output,) = (tmp_path / "cache").rglob("*.out")
    return f, output


def _swap_after_check(
    monkeypatch: pytest.MonkeyPatch, output: Path, swap: Callable[[Path], None]
) -> list[Path]:
    """Swap ``output`` right after the cache's lstat check passed, once."""
    swapped: list[Path] = []
    checks = [_calls.check_entry_file, _results.check_entry_file]

    def check_then_swap(path: str, st: os.stat_result, **kwargs: Any) -> None:
        checks[0](path, st, **kwargs)
        if Path(path) == output and not swapped:
            output.unlink()
            swap(output)
            swapped.append(output)

    monkeypatch.setattr(_calls, "check_entry_file", check_then_swap)
    monkeypatch.setattr(_results, "check_entry_file", check_then_swap)
    return swapped


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_a_fifo_swapped_in_after_the_check_is_not_waited_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mmap_mode: str | None
) -> None:
    _, output = _cached(tmp_path, mmap_mode)
    g = Memory(tmp_path / "cache", verbose=0, mmap_mode=mmap_mode).cache(square)
    swapped = _swap_after_check(monkeypatch, output, lambda p: os.mkfifo(p))
    results: list[int] = []
    thread = threading.Thread(target=lambda: results.append(g(4)))
    thread.start()
    thread.join(60)  # a guard against a hang, not a timing: the fixed call never waits
    if thread.is_alive():
        os.close(os.open(output, os.O_WRONLY | os.O_NONBLOCK))  # let the blocked open return
        thread.join()
        pytest.fail("a FIFO swapped in after the check hung the call")
    assert swapped
    assert results == [16]
    assert output.is_file()  # recomputed and written again


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_a_link_swapped_in_after_the_check_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mmap_mode: str | None
) -> None:
    _, output = _cached(tmp_path, mmap_mode)
    planted = tmp_path / "outside.out"
    joblite.dump(-1, planted)  # a valid file with another value
    g = Memory(tmp_path / "cache", verbose=0, mmap_mode=mmap_mode).cache(square)
    swapped = _swap_after_check(monkeypatch, output, lambda p: p.symlink_to(planted))
    assert g(4) == 16
    assert swapped
    assert not output.is_symlink()
    assert joblite.load(planted) == -1


def test_a_newer_entry_renamed_in_after_the_check_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process storing the same call: its atomic rename is not damage.
    _, output = _cached(tmp_path, None)
    newer = tmp_path / "newer.out"
    joblite.dump(16, newer)
    g = Memory(tmp_path / "cache", verbose=0).cache(square)
    swapped = _swap_after_check(monkeypatch, output, lambda p: os.replace(newer, p))
    assert g(4) == 16
    assert swapped
    assert output.is_file()
