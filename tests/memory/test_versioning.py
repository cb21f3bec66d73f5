"""Function identity and code versioning: edits invalidate, restarts do not."""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from joblite.memory import Memory

MODULE = """
CALLS = []

def transform(x):
    CALLS.append(x)
    return x {op} 1
"""


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    package = tmp_path / "src"
    package.mkdir()
    monkeypatch.syspath_prepend(str(package))
    path = package / "jl_user_module.py"
    path.write_text(MODULE.format(op="+"))
    yield path
    sys.modules.pop("jl_user_module", None)


def test_editing_the_function_invalidates_its_entries(
    user_module: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mem = Memory(tmp_path / "cache", verbose=0)
    module = importlib.import_module("jl_user_module")
    f = mem.cache(module.transform)
    assert f(1) == f(1) == 2
    assert module.CALLS == [1]
    assert f.func_id == "jl_user_module.transform"

    user_module.write_text(MODULE.format(op="-"))
    module = importlib.reload(module)
    g = mem.cache(module.transform)
    with caplog.at_level(logging.WARNING, logger="joblite.memory"):
        assert g(1) == 0
    assert "has changed" in caplog.text
    assert module.CALLS == [1]
    assert g(1) == 0
    # Only the new version's entries are left.
    assert mem.store is not None
    assert len(mem.store.children(g.func_id)) == 1


def test_same_code_in_a_new_process_is_a_hit(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            from joblite.memory import Memory
            mem = Memory({str(tmp_path / "cache")!r}, verbose=0)

            @mem.cache
            def slow(x):
                print("computing", x)
                return x * 10

            print("result", slow(4))
            double = mem.cache(lambda y: 2 * y)
            print("lambda", double(21))
            """
        )
    )
    first = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=60
    )
    second = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=60
    )
    assert first.stdout.splitlines() == ["computing 4", "result 40", "lambda 42"]
    assert second.stdout.splitlines() == ["result 40", "lambda 42"]

    script.write_text(script.read_text().replace("x * 10", "x * 100"))
    third = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=60
    )
    assert third.stdout.splitlines() == ["computing 4", "result 400", "lambda 42"]
    assert "script.slow has changed" in third.stderr


def test_function_without_source_is_cached(tmp_path: Path) -> None:
    namespace: dict[str, object] = {}
    exec("def made(x):\n    return x + 1\n", namespace)  # no source file to read
    mem = Memory(tmp_path, verbose=0)
    made = mem.cache(namespace["made"])
    assert made(1) == made(1) == 2
    assert made.check_call_in_cache(1)


SCRIPT = """
import sys
from joblite.memory import Memory

K = {k}
mem = Memory({cache!r}, verbose=0)

@mem.cache
def f(x):
    print("computing", x)
    return x * K{extra}

print("result", f(2))
"""


def _run(script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=60
    )


@pytest.mark.parametrize("extra", ["", " + 0"], ids=["same-source", "different-source"])
def test_two_scripts_sharing_a_cache_keep_their_own_entries(tmp_path: Path, extra: str) -> None:
    cache = str(tmp_path / "cache")
    one, hundred = tmp_path / "one" / "run.py", tmp_path / "hundred" / "run.py"
    for script, k, more in ((one, 1, ""), (hundred, 100, extra)):
        script.parent.mkdir()
        script.write_text(SCRIPT.format(k=k, cache=cache, extra=more))
    outputs = [_run(script) for script in (one, hundred, one, hundred)]
    assert [o.stdout.splitlines() for o in outputs] == [
        ["computing 2", "result 2"],
        ["computing 2", "result 200"],
        ["result 2"],
        ["result 200"],
    ]
    assert not any("has changed" in o.stderr for o in outputs)


def test_main_function_without_a_script_file_is_cached(tmp_path: Path) -> None:
    code = SCRIPT.format(k=3, cache=str(tmp_path / "cache"), extra="")
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        for _ in range(2)
    ]
    assert [r.stdout.splitlines() for r in runs] == [["computing 2", "result 6"], ["result 6"]]


PARALLEL_SCRIPT = """
import os
import sys

from joblite import Memory, Parallel, delayed

cache, log = sys.argv[1], sys.argv[2]
mem = Memory(cache, verbose=0)


@mem.cache
def square(x):
    with open(log, "a") as f:
        f.write(f"{os.getpid()} {x}\\n")
    return x * x


if __name__ == "__main__":
    assert [square(i) for i in range(4)] == [0, 1, 4, 9]
    assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(6)) == [0, 1, 4, 9, 16, 25]
    assert [square(i) for i in range(6)] == [0, 1, 4, 9, 16, 25]
"""


def test_main_function_fanned_out_to_workers_computes_each_call_once(tmp_path: Path) -> None:
    # The workers get the __main__ function by value (cloudpickle), without
    # readable source: they must use the parent's code version, not drop its
    # entries for one of their own.
    script, cache, log = tmp_path / "script.py", tmp_path / "cache", tmp_path / "calls.log"
    script.write_text(PARALLEL_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(cache), str(log)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    computed = sorted(int(line.split()[1]) for line in log.read_text().splitlines())
    assert computed == [0, 1, 2, 3, 4, 5]
    assert "has changed" not in result.stderr
    (func_dir,) = (cache / "joblib").iterdir()
    assert len(list(func_dir.iterdir())) == 1  # one code version


def test_a_version_without_source_never_drops_other_versions(tmp_path: Path) -> None:
    namespace: dict[str, object] = {}
    exec("def made(x):\n    return x + 1\n", namespace)  # no source file to read
    made = Memory(tmp_path, verbose=0).cache(namespace["made"])
    assert made(1) == 2
    # The same function's entries under another version, as written by a
    # process whose compiled code differs (another co_filename, say).
    store = made.store
    (version,) = store.children(made.func_id)
    other = "0123456789abcdef"
    for name in store.children(f"{made.func_id}/{version}"):
        data = store.read_bytes(f"{made.func_id}/{version}/{name}")
        store.write_bytes(f"{made.func_id}/{other}/{name}", data)
    again = Memory(tmp_path, verbose=0).cache(namespace["made"])
    assert again(1) == 2
    assert sorted(store.children(made.func_id)) == sorted([version, other])


def test_unpickled_copy_uses_the_senders_version_without_rereading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cloudpickle

    from joblite.memory import _keys
    from joblite.memory.stores.local import FileStore

    def local(x: int) -> int:  # a local function: cloudpickled by value
        return x * 3

    mem = Memory(tmp_path, verbose=0)
    f = mem.cache(local)
    assert f(2) == 6
    payload = cloudpickle.dumps(f)

    reads: list[str] = []
    real_source_of, real_children = _keys._source_of, FileStore.children
    monkeypatch.setattr(_keys, "_source_of", lambda func: reads.append("source") or None)

    def counting_children(self: FileStore, prefix: str) -> list[str]:
        reads.append(f"listdir {prefix}")
        return real_children(self, prefix)

    monkeypatch.setattr(FileStore, "children", counting_children)
    copies = [cloudpickle.loads(payload) for _ in range(5)]
    assert all(copy.func is not local for copy in copies)  # really by value
    assert [copy(2) for copy in copies] == [6] * 5
    assert [copy.__cache_key__(2) for copy in copies] == [f.__cache_key__(2)] * 5
    assert reads == []
    assert real_source_of(local) is not None


def test_a_memoized_function_hashes_the_same_before_and_after_its_first_call(
    tmp_path: Path,
) -> None:
    import joblite

    mem = Memory(tmp_path, verbose=0)
    inner = mem.cache(abs)
    calls: list[int] = []

    @mem.cache
    def apply(fn: Callable[[int], int], x: int) -> int:
        calls.append(x)
        return fn(x)

    before = joblite.hash(inner)
    assert apply(inner, -1) == 1  # inner's first call in this process happens in here
    assert joblite.hash(inner) == before
    assert apply(inner, -1) == 1  # an argument holding inner: the same key, a hit
    assert calls == [-1]
