"""A hit on the local store: the common call's shortcut serves what the general path would.

The shortcut (positional arguments, a local store, no verbose line, no
callback) keys the call inline and serves this process's copy of a small
entry while its file is unchanged. These tests pin what it could break.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from joblite.memory import MemorizedFunc, Memory, _access
from joblite.memory._keys import ArgumentBinder


@pytest.fixture
def settle_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep copies of files however recently written (a test need not wait 50 ms)."""
    # raising=False: the names are new; the tests that use this run on older code too.
    monkeypatch.setattr(_access, "_SETTLED_FINE_NS", -1, raising=False)
    monkeypatch.setattr(_access, "_SETTLED_COARSE_NS", -1, raising=False)


def wait_until_settled(path: str) -> None:
    """Wait until a copy of the file at ``path`` may be kept (its ctime is old enough)."""
    st = os.lstat(path)
    while not _access.settled(st, time.time_ns()):
        time.sleep(0.01)


def wait_for_a_later_ctime(path: str) -> None:
    """Wait until a file written now gets a later ctime than ``path``'s (a clock tick)."""
    ctime = os.lstat(path).st_ctime_ns
    while time.time_ns() < ctime + 20_000_000:
        time.sleep(0.005)


def entry_path(memory: Memory, func: MemorizedFunc, *args: Any) -> str:
    path = memory.store_backend.local_path(func.__cache_key__(*args) + ".out")
    assert path is not None
    return path


def test_an_entry_rewritten_in_place_with_its_mtime_kept_is_reloaded(
    tmp_path: Path, settle_at_once: None
) -> None:
    # `cp -p` of a backup over an entry rewrites the file in place (same
    # inode) and restores its mtime; with the same size, only its ctime tells.
    memory = Memory(tmp_path, verbose=0)

    @memory.cache
    def f(x: int) -> list[str]:
        return [f"value{x}"]

    assert f(1) == ["value1"]
    assert f(1) == ["value1"]  # now served from this process's copy
    f(2)
    first, second = entry_path(memory, f, 1), entry_path(memory, f, 2)
    before = os.stat(first)
    with open(second, "rb") as source:
        replacement = source.read()
    # On a kernel stamping files from a coarse clock, a rewrite within the
    # same tick would keep the ctime too (copies are kept only of files old
    # enough for that not to happen; this test keeps one at once).
    wait_for_a_later_ctime(first)
    assert len(replacement) == before.st_size
    with open(first, "r+b") as target:  # in place: the same inode
        target.write(replacement)
    os.utime(first, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(first)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert f(1) == ["value2"]  # what the file now holds, not the stale copy


def test_a_copy_is_kept_only_once_its_file_is_settled(tmp_path: Path) -> None:
    # A file replaced within the file system's timestamp granularity of its
    # ctime could have the same identity (ext4 reuses a freed inode number
    # at once): no copy is kept of a file that recent.
    memory = Memory(tmp_path, verbose=0)

    @memory.cache
    def f(x: int) -> list[int]:
        return [x]

    f(1)
    st = os.lstat(entry_path(memory, f, 1))
    assert not _access.settled(st, st.st_ctime_ns)
    assert _access.settled(st, st.st_ctime_ns + 3_000_000_000)
    hot = f._settings.hot
    hot.put("fresh", st, [1])
    assert "fresh" not in hot.items


class TaggableInt(int):
    """An int subclass: instances have a ``__dict__``, so they can be changed."""


@pytest.mark.parametrize(
    "result",
    [[1, 2], {"a": [1]}, bytearray(b"ab"), TaggableInt(3)],
    ids=["list", "dict", "bytearray", "int-subclass"],
)
def test_a_mutable_result_is_fresh_on_every_hit(
    tmp_path: Path, settle_at_once: None, result: Any
) -> None:
    memory = Memory(tmp_path, verbose=0)

    @memory.cache
    def f(x: int) -> Any:
        return result

    f(1)
    for _ in range(3):  # the first hit loads the file, the others the copy
        value = f(1)
        assert value == result
        assert value is not result
        assert value is not f(1)
        if isinstance(value, TaggableInt):
            value.tag = "changed"
            assert not hasattr(f(1), "tag")
    assert f(1) == result


def test_immutable_results_hit_as_they_were_stored(tmp_path: Path, settle_at_once: None) -> None:
    results = [7, 2.5, "text", b"bytes", None, True, 1 + 2j]
    memory = Memory(tmp_path, verbose=0)

    @memory.cache
    def f(i: int) -> Any:
        return results[i]

    for _ in range(3):
        assert [f(i) for i in range(len(results))] == results
    assert [type(f(i)) for i in range(len(results))] == [type(r) for r in results]


def test_hits_through_the_shortcut_are_counted(tmp_path: Path, settle_at_once: None) -> None:
    memory = Memory(tmp_path, verbose=0)

    @memory.cache
    def f(x: int) -> list[int]:
        return [x]

    f(1)
    for _ in range(5):
        f(1)
        f(x=1)  # keyed by the general path, served as the shortcut serves
    info = f.lookup(1)
    assert info is not None
    assert info.hits == 10


def test_another_memory_clearing_or_rewriting_is_seen(tmp_path: Path, settle_at_once: None) -> None:
    # Another Memory object on the same directory holds no copies of this
    # one's: it stands for another process.
    memory, other = Memory(tmp_path, verbose=0), Memory(tmp_path, verbose=0)
    calls = []

    def g(x: int) -> list[int]:
        calls.append(x)
        return [x]

    f, f_elsewhere = memory.cache(g), other.cache(g)
    f(1)
    f(1)
    assert calls == [1]
    f_elsewhere.put(["rewritten"], 1)
    assert f(1) == ["rewritten"]
    other.clear(warn=False)
    assert f(1) == [1]
    assert calls == [1, 1]


def test_settings_changed_after_decoration_apply_to_hits(
    tmp_path: Path, settle_at_once: None, capsys: pytest.CaptureFixture[str]
) -> None:
    memory = Memory(tmp_path, verbose=0)
    calls = []

    @memory.cache
    def f(x: int) -> list[int]:
        calls.append(x)
        return [x]

    f(1)
    f(1)
    capsys.readouterr()
    f.verbose = 2
    f(1)
    assert "Loading f" in capsys.readouterr().out
    f.verbose = 0
    f.cache_validation_callback = lambda metadata: False
    f(1)
    assert calls == [1, 1]


def _signatures() -> list[Callable[..., Any]]:
    def plain(a: Any, b: Any, c: Any = 3) -> None:
        pass

    def star(a: Any, *args: Any, b: Any = 2, **kwargs: Any) -> None:
        pass

    def keyword_only(a: Any, *, b: Any, c: Any = 3) -> None:
        pass

    def positional_only(a: Any, b: Any = 2, /, c: Any = 3) -> None:
        pass

    def no_parameters() -> None:
        pass

    return [plain, star, keyword_only, positional_only, no_parameters]


_CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),
    ((1,), {}),
    ((1, 2), {}),
    ((1, 2, 3), {}),
    ((1, 2, 3, 4), {}),
    ((1,), {"b": 2}),
    ((), {"a": 1, "b": 2}),
    ((1,), {"c": 4, "b": 2}),
    ((1, 2), {"c": 5}),
    ((1, 2), {"b": 5}),
    ((1,), {"z": 9}),
    ((1,), {"b": 2, "z": 9, "y": 8}),
]


@pytest.mark.parametrize("func", _signatures(), ids=lambda f: f.__name__)
@pytest.mark.parametrize("ignore", [None, ["a"], ["c"]], ids=["all", "ignore-a", "ignore-c"])
def test_binding_equals_signature_bind(func: Callable[..., Any], ignore: list[str] | None) -> None:
    signature = inspect.signature(func)
    ignore = [name for name in ignore or [] if name in signature.parameters]
    binder = ArgumentBinder(func, ignore)
    for args, kwargs in _CALLS:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            with pytest.raises(TypeError):
                binder.bind(args, dict(kwargs))
            continue
        bound.apply_defaults()
        expected = []
        for name, param in signature.parameters.items():
            if name in ignore:
                continue
            value = bound.arguments[name]
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                value = dict(sorted(value.items()))
            expected.append(value)
        assert binder.bind(args, dict(kwargs)) == tuple(expected), (args, kwargs)


def test_the_shortcut_key_is_the_general_key(tmp_path: Path) -> None:
    memory = Memory(tmp_path, verbose=0)
    calls = []

    @memory.cache
    def f(a: int, b: int = 2) -> int:
        calls.append((a, b))
        return a + b

    assert f(1, 2) == 3  # positional, as the signature has them: the shortcut
    assert f(1) == f(a=1) == f(1, b=2) == f(b=2, a=1) == 3  # bound: the general path
    assert calls == [(1, 2)]
    assert f.check_call_in_cache(1, 2)
    lookup = f.lookup(a=1, b=2)
    assert lookup is not None
    assert lookup.key == f.__cache_key__(1, 2)


def test_hits_in_threads_while_the_entry_is_rewritten(tmp_path: Path) -> None:
    # Copies are read without a lock while other threads replace them: every
    # hit returns one of the values written, whole, never an error.
    import threading

    memory = Memory(tmp_path, verbose=0)

    @memory.cache
    def f(x: int) -> list[int]:
        return [0] * 100

    f(1)
    wait_until_settled(entry_path(memory, f, 1))
    f(1)
    assert f._settings.hot.items  # the readers start on a copy
    written = {tuple([0] * 100)} | {tuple([v] * 100) for v in range(1, 51)}
    seen: list[tuple[int, ...]] = []
    errors: list[BaseException] = []

    def hit() -> None:
        try:
            for _ in range(200):
                seen.append(tuple(f(1)))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    readers = [threading.Thread(target=hit) for _ in range(3)]
    for reader in readers:
        reader.start()
    for v in range(1, 51):
        f.put([v] * 100, 1)
    for reader in readers:
        reader.join()
    assert errors == []
    assert set(seen) <= written
    assert f(1) == [50] * 100
