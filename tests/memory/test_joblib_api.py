"""joblib's documented Memory surface: attributes, pickling, .gitignore, errors, store methods.

Each test is written from joblib 1.6's documentation and behaviour, for code
that runs with ``import joblite as joblib``.
"""

from __future__ import annotations

import datetime
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import joblite
from joblite.memory import FileStore, MemorizedFunc, MemorizedResult, Memory, register_store_backend


def double(x: int) -> int:
    return 2 * x


def test_memorized_result_has_joblibs_attributes(tmp_path: Path) -> None:
    mem = Memory(tmp_path, verbose=3)
    f = mem.cache(double)
    result = f.call_and_shelve(4)
    assert isinstance(result, MemorizedResult)
    assert result.store_backend is mem.store_backend
    assert result.func_id == f.func_id
    assert result.args_id == f.__cache_key__(4).rpartition("/")[2]
    assert result.mmap_mode is None
    assert result.metadata["input_args"] == {"x": "4"}
    assert isinstance(result.duration, float)
    assert result.verbose == 2  # joblib: the function's verbose minus one
    assert result.timestamp == mem.timestamp
    assert result.get() == 8


def _public(obj: Any, names: list[str]) -> dict[str, Any]:
    values = {name: getattr(obj, name) for name in names}
    if "store_backend" in values:
        values["store_backend"] = (type(obj.store_backend), obj.store_backend.location)
    return values


MEMORY_ATTRS = ["location", "backend", "mmap_mode", "compress", "verbose", "backend_options"]
FUNC_ATTRS = ["func", "func_id", "ignore", "mmap_mode", "verbose", "cache_validation_callback"]
RESULT_ATTRS = ["func_id", "args_id", "mmap_mode", "metadata", "duration", "verbose"]


@pytest.mark.parametrize(
    "kwargs",
    [{"compress": 3, "verbose": 2}, {"mmap_mode": "r", "verbose": 5, "backend_options": {}}],
)
def test_pickled_copies_compare_and_behave_the_same(
    tmp_path: Path, kwargs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    mem = Memory(tmp_path, **kwargs)
    f = mem.cache(double)
    result = f.call_and_shelve(3)
    for obj, names in [
        (mem, [*MEMORY_ATTRS, "store_backend"]),
        (f, [*FUNC_ATTRS, "store_backend"]),
        (result, [*RESULT_ATTRS, "store_backend"]),
    ]:
        copy = pickle.loads(pickle.dumps(obj))
        assert _public(copy, names) == _public(obj, names)
        assert joblite.hash(copy) == joblite.hash(obj)
        assert repr(copy) == repr(obj)
    copy_f = pickle.loads(pickle.dumps(f))
    assert isinstance(copy_f, MemorizedFunc)
    assert copy_f.check_call_in_cache(3)
    assert pickle.loads(pickle.dumps(result)).get() == 6
    capsys.readouterr()


HASH_SCRIPT = """
import sys, joblite
print(joblite.hash(joblite.Memory(sys.argv[1], verbose=0)))
"""


def test_a_memory_hashes_alike_in_every_process(tmp_path: Path) -> None:
    # An estimator holding memory=Memory(...) passed to a cached function must
    # hit in the next run: the Memory's creation time is not part of its state.
    mem = Memory(str(tmp_path), verbose=0)
    assert isinstance(mem.timestamp, float)
    other = subprocess.run(
        [sys.executable, "-c", HASH_SCRIPT, str(tmp_path)], capture_output=True, text=True
    )
    assert other.stdout.strip() == joblite.hash(mem)


def test_a_cache_directory_gets_a_gitignore_unless_it_has_one(tmp_path: Path) -> None:
    Memory(tmp_path / "new", verbose=0)
    assert (tmp_path / "new" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert sorted(os.listdir(tmp_path / "new")) == [".gitignore", "joblib"]
    Memory(Path("~").expanduser() / "never", verbose=0, backend="memory")  # not a directory store
    assert not (Path("~").expanduser() / "never").exists()

    # An existing one is never replaced, a planted symlink never followed.
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / ".gitignore").write_text("!important\n")
    Memory(kept, verbose=0)
    assert (kept / ".gitignore").read_text() == "!important\n"

    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / ".gitignore").symlink_to(tmp_path / "elsewhere")
    Memory(planted, verbose=0)
    assert not (tmp_path / "elsewhere").exists()
    assert sorted(os.listdir(planted)) == [".gitignore", "joblib"]


def test_unknown_backend_raises_joblibs_type_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="unknown backend 'nope'"):
        Memory(tmp_path, backend="nope")


@pytest.mark.parametrize(("name", "backend"), [(3, FileStore), ("", FileStore), ("x", object)])
def test_bad_register_store_backend_arguments_raise_joblibs_value_error(
    name: Any, backend: Any
) -> None:
    from joblite.exceptions import StoreBackendError

    with pytest.raises(ValueError, match="backend") as caught:
        register_store_backend(name, backend)
    assert isinstance(caught.value, StoreBackendError)


@pytest.mark.parametrize("location", [None, "dir"])
def test_a_callback_that_is_not_callable_raises_value_error_at_once(
    tmp_path: Path, location: str | None
) -> None:
    mem = Memory(None if location is None else tmp_path / location, verbose=0)
    with pytest.raises(ValueError, match="cache_validation_callback"):
        mem.cache(cache_validation_callback=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cache_validation_callback"):
        mem.cache(double, cache_validation_callback=1)  # type: ignore[arg-type]


def test_joblibs_store_methods_work_on_memory_store_backend(memory: Memory) -> None:
    f = memory.cache(double)
    f(1)
    result = f.call_and_shelve(2)
    store = memory.store_backend
    assert store is not None
    call_id = [result.func_id, result.args_id]

    items = store.get_items()
    assert len(items) == 2
    assert all(item.size > 0 for item in items)
    assert all(isinstance(item.last_access, datetime.datetime) for item in items)
    assert sorted(os.path.basename(item.path) for item in items) == sorted(
        [result.args_id, f.__cache_key__(1).rpartition("/")[2]]
    )
    assert store.contains_item(call_id)
    assert store.get_metadata(call_id)["input_args"] == {"x": "2"}
    assert store.load_item(call_id) == 4
    assert store.get_cached_func_info([f.func_id]) == {
        "location": os.path.join(store.location, f.func_id)
    }
    assert "def double" in store.get_cached_func_code([f.func_id])
    assert store.contains_path([f.func_id])

    store.clear_item(call_id)
    assert not store.contains_item(call_id)
    assert store.get_metadata(call_id) == {}
    with pytest.raises(KeyError):
        store.load_item(call_id)
    assert f.check_call_in_cache(1)
    store.enforce_store_limits(None, items_limit=0)
    assert store.get_items() == []
    f(1)
    store.clear_path([f.func_id])
    assert not f.check_call_in_cache(1)
    with pytest.raises(FileNotFoundError):
        store.get_cached_func_code([f.func_id])
    f(1)
    store.clear()
    assert store.get_items() == []


@pytest.mark.parametrize("call_id", [[".."], ["..", "x"], ["a/b"], [], ["a", "b", "c", "d"], [3]])
def test_store_methods_refuse_call_ids_that_are_not_names(
    local_memory: Memory, call_id: list[Any]
) -> None:
    f = local_memory.cache(double)
    f(1)
    store = local_memory.store_backend
    assert store is not None
    with pytest.raises(ValueError, match="call_id"):
        store.clear_path(call_id)
    with pytest.raises(ValueError, match="call_id"):
        store.clear_item(call_id)
    assert f.check_call_in_cache(1)
