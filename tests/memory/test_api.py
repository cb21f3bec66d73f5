"""Memory's joblib-compatible API, run over every store."""

from __future__ import annotations

import functools
import logging
import os
import pickle
import stat
from pathlib import Path
from typing import Any, ClassVar

import pytest

from joblite.memory import (
    MemorizedFunc,
    MemorizedResult,
    Memory,
    NotMemorizedFunc,
    NotMemorizedResult,
    expires_after,
    register_store_backend,
)


def test_repr_matches_joblib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mem = Memory(str(tmp_path), verbose=0)
    assert repr(mem) == f"Memory(location={tmp_path}/joblib)"
    assert repr(Memory(None)) == "Memory(location=None)"
    # joblib 1.6 shows a str location joined with "joblib" as given, a Path as is.
    monkeypatch.chdir(tmp_path)
    assert repr(Memory("./d//e", verbose=0)) == "Memory(location=./d//e/joblib)"
    # joblib 1.6 omits /joblib for a Path (its issue #1684) though joblite stores there.
    assert repr(Memory(Path("d"), verbose=0)) == "Memory(location=d/joblib)"
    assert repr(Memory(tmp_path / "p", verbose=0)) == f"Memory(location={tmp_path}/p/joblib)"


@pytest.mark.parametrize("verbose", ["x", None, [1]])
def test_bad_verbose_raises_naming_it(tmp_path: Path, verbose: Any) -> None:
    with pytest.raises(TypeError, match="verbose"):
        Memory(tmp_path, verbose=verbose)
    if verbose is not None:  # cache(verbose=None) means "the Memory's"
        with pytest.raises(TypeError, match="verbose"):
            Memory(tmp_path, verbose=0).cache(abs, verbose=verbose)


def test_pathlib_location_and_private_directories(tmp_path: Path) -> None:
    location = tmp_path / "new" / "cache"
    Memory(location, verbose=0)
    for directory in (location, location / "joblib"):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700


def test_location_none_disables_caching() -> None:
    calls = []
    mem = Memory(None, verbose=0)

    @mem.cache
    def f(x: int) -> int:
        calls.append(x)
        return x * 2

    assert isinstance(f, NotMemorizedFunc)
    assert f(2) == f(2) == 4
    assert calls == [2, 2]
    assert f.call(3) == (6, {})
    shelved = f.call_and_shelve(4)
    assert isinstance(shelved, NotMemorizedResult)
    assert shelved.get() == 8
    assert not f.check_call_in_cache(2)
    f.clear()
    assert mem.eval(abs, -1) == 1


def test_bad_location_type_raises() -> None:
    with pytest.raises(TypeError, match="location"):
        Memory(42)  # type: ignore[arg-type]


def test_unknown_backend_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        Memory(tmp_path, backend="nope")


def test_hit_skips_the_computation(memory: Memory) -> None:
    calls = []

    @memory.cache
    def add(a: int, b: int = 10) -> int:
        calls.append((a, b))
        return a + b

    assert add(1) == 11
    assert add(1) == 11
    assert add(1, 10) == add(a=1, b=10) == add(b=10, a=1) == 11
    assert calls == [(1, 10)]
    assert add(2) == 12
    assert calls == [(1, 10), (2, 10)]
    assert add.__wrapped__(1) == 11
    assert len(calls) == 3


def test_decorator_with_arguments_and_ignore(memory: Memory) -> None:
    calls = []

    @memory.cache(ignore=["verbose"])
    def f(x: int, verbose: bool = False) -> int:
        calls.append(x)
        return x

    assert f(1, verbose=True) == f(1, verbose=False) == 1
    assert calls == [1]


def test_varargs_and_kwargs_are_part_of_the_key(memory: Memory) -> None:
    calls = []

    @memory.cache
    def f(*args: int, **kwargs: int) -> int:
        calls.append(1)
        return sum(args) + sum(kwargs.values())

    assert f(1, 2, a=3, b=4) == f(1, 2, b=4, a=3) == 10
    assert f(1, 2, a=3) == 6
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ignore": ["nope"]}, ValueError, "nope"),
        ({"ignore": "x"}, TypeError, "ignore"),
        ({"cache_validation_callback": 3}, ValueError, "callable"),
        ({"mmap_mode": "rw"}, ValueError, "mmap_mode"),
    ],
)
def test_bad_decoration_raises_at_decoration_time(
    memory: Memory, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    def f(x: int) -> int:
        return x

    with pytest.raises(error, match=match):
        memory.cache(f, **kwargs)


def test_decorating_a_non_callable_raises(memory: Memory) -> None:
    with pytest.raises(TypeError, match="callable"):
        memory.cache(3)


def test_wrong_call_arguments_raise_type_error(memory: Memory) -> None:
    @memory.cache
    def f(x: int) -> int:
        return x

    with pytest.raises(TypeError, match="f"):
        f()
    with pytest.raises(TypeError, match=r"f\(\) takes 1 positional argument but 2 were given"):
        f(1, 2)
    with pytest.raises(TypeError, match=r"f\(\).*'y'"):
        f(1, y=2)


def test_errors_propagate_and_store_nothing(memory: Memory) -> None:
    class Boom(Exception):
        pass

    @memory.cache
    def f(x: int) -> int:
        raise Boom(x)

    with pytest.raises(Boom) as info:
        f(1)
    assert info.value.args == (1,)
    assert not f.check_call_in_cache(1)
    assert f.lookup(1) is None


def test_unpicklable_result_is_returned_uncached(
    memory: Memory, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    calls = []

    @memory.cache
    def f() -> Any:
        calls.append(1)
        return threading.Lock()

    with caplog.at_level(logging.WARNING, logger="joblite.memory"):
        assert f() is not None
    assert "could not be cached" in caplog.text
    assert not f.check_call_in_cache()
    f()
    assert len(calls) == 2


class _Unreducible:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def __reduce__(self) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [RuntimeError("no"), ValueError("no"), AttributeError("no"), RecursionError("no")],
    ids=lambda e: type(e).__name__,
)
def test_result_failing_to_pickle_is_returned_uncached(
    memory: Memory, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    @memory.cache
    def f(x: int) -> Any:
        return [x, _Unreducible(error)]

    with caplog.at_level(logging.WARNING, logger="joblite.memory"):
        value = f(1)
        called, _ = f.call(1)
    assert value[0] == called[0] == 1
    assert "could not be cached" in caplog.text
    assert f.__qualname__ in caplog.text
    assert f"{type(error).__name__}: no" in caplog.text
    assert not f.check_call_in_cache(1)
    # Nothing half-written: at most the function's description was stored.
    assert [key for key in memory.store.walk() if not key.endswith("/function.json")] == []


def _leftovers(root: Path) -> list[str]:
    return [
        name
        for _, dirnames, filenames in os.walk(root)
        for name in dirnames + filenames
        if name.startswith(".") and name != ".gitignore"  # the cache root's, on purpose
    ]


def test_failed_calls_leave_no_hidden_file(local_memory: Memory, tmp_path: Path) -> None:
    import threading

    @local_memory.cache
    def fails(x: int) -> int:
        raise ValueError(f"failed {x}")

    @local_memory.cache
    def unstorable(x: int) -> Any:
        return threading.Lock()

    with pytest.raises(ValueError, match="failed 1"):
        fails(1)
    unstorable(1)
    assert _leftovers(tmp_path / "cache") == []
    # The lock was released: the next call computes (and fails) again.
    with pytest.raises(ValueError, match="failed 1"):
        fails(1)
    assert _leftovers(tmp_path / "cache") == []


def test_call_always_runs_and_returns_metadata(memory: Memory) -> None:
    calls = []

    @memory.cache
    def f(x: int) -> int:
        calls.append(x)
        return x + 1

    output, metadata = f.call(1)
    assert output == 2
    assert metadata["input_args"] == {"x": "1"}
    assert metadata["duration"] >= 0
    f.call(1)
    assert len(calls) == 2
    assert f(1) == 2
    assert len(calls) == 2


def test_call_and_shelve(memory: Memory) -> None:
    calls = []

    @memory.cache
    def f(x: int) -> list[int]:
        calls.append(x)
        return [x] * 3

    result = f.call_and_shelve(2)
    assert isinstance(result, MemorizedResult)
    assert result.get() == [2, 2, 2]
    again = f.call_and_shelve(2)
    assert len(calls) == 1
    assert again.args_id == result.args_id
    assert "MemorizedResult(location=" in repr(result)
    clone = pickle.loads(pickle.dumps(result))
    assert clone.get() == [2, 2, 2]
    result.clear()
    assert not f.check_call_in_cache(2)
    with pytest.raises(KeyError):
        result.get()


def test_check_call_in_cache_and_clear(memory: Memory, caplog: pytest.LogCaptureFixture) -> None:
    @memory.cache(verbose=1)
    def f(x: int) -> int:
        return x

    assert not f.check_call_in_cache(1)
    f(1)
    assert f.check_call_in_cache(1)
    assert f.check_call_in_cache(x=1)
    with caplog.at_level(logging.WARNING, logger="joblite.memory"):
        f.clear()
    assert "Clearing function cache" in caplog.text
    assert not f.check_call_in_cache(1)
    f(1)
    assert f.check_call_in_cache(1)
    memory.clear(warn=False)
    assert not f.check_call_in_cache(1)
    f(1)
    assert f.check_call_in_cache(1)


def test_memory_eval(memory: Memory) -> None:
    calls = []

    def f(x: int) -> int:
        calls.append(x)
        return -x

    assert memory.eval(f, 3) == memory.eval(f, 3) == -3
    assert calls == [3]


def test_invalidate_put_lookup_and_cache_key(memory: Memory) -> None:
    calls = []

    @memory.cache
    def f(x: int, y: int = 0) -> int:
        calls.append(x)
        return x + y

    assert f.lookup(1) is None
    f(1)
    info = f.lookup(1)
    assert info is not None
    assert info.hits == 0
    f(1)
    f(x=1, y=0)
    info = f.lookup(1)
    assert info is not None
    assert info.hits == 2
    assert info.last_access >= info.created
    assert info.metadata()["input_args"] == {"x": "1", "y": "0"}
    assert f.__cache_key__(1) == f.__cache_key__(x=1, y=0) != f.__cache_key__(2)
    assert f.__cache_key__(1).startswith(f.func_id + "/")
    assert f.invalidate(1)
    assert not f.invalidate(1)
    f.put(100, 5)
    assert f(5) == 100
    assert calls == [1]


def test_cache_validation_callback(memory: Memory) -> None:
    calls = []
    seen: list[dict[str, Any]] = []

    def only_once(metadata: dict[str, Any]) -> bool:
        seen.append(metadata)
        return len(seen) % 2 == 0

    @memory.cache(cache_validation_callback=only_once)
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    f(1)  # callback says stale: recompute
    f(1)  # callback says fresh: hit
    assert len(calls) == 2
    assert "duration" in seen[0]


def test_expires_after(memory: Memory) -> None:
    calls = []

    @memory.cache(cache_validation_callback=expires_after(seconds=-1))
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    f(1)
    assert len(calls) == 2

    @memory.cache(cache_validation_callback=expires_after(days=1))
    def g(x: int) -> int:
        calls.append(x)
        return x

    g(1)
    g(1)
    assert len(calls) == 3


class Model:
    def __init__(self, scale: int) -> None:
        self.scale = scale
        self.calls = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"scale": self.scale}  # calls is bookkeeping, not part of the key

    def predict(self, x: int) -> int:
        self.calls += 1
        return x * self.scale

    @staticmethod
    def double(x: int) -> int:
        Model.static_calls.append(x)
        return 2 * x

    static_calls: ClassVar[list[int]] = []


def test_methods_static_and_class_methods(memory: Memory) -> None:
    Model.static_calls.clear()

    class Cached(Model):
        predict = memory.cache(Model.predict)
        double = memory.cache(Model.__dict__["double"])
        created: ClassVar[list[int]] = []

        @memory.cache
        @classmethod
        def make(cls, scale: int) -> int:
            cls.created.append(scale)
            return scale

    a, b = Cached(2), Cached(3)
    assert a.predict(5) == a.predict(5) == 10
    assert b.predict(5) == 15
    assert a.calls == 1
    assert b.calls == 1
    assert a.predict.check_call_in_cache(5)
    assert Cached.double(4) == Cached.double(4) == 8
    assert Model.static_calls == [4]
    assert Cached.make(7) == Cached.make(7) == 7
    assert Cached.created == [7]


def test_bound_method_given_to_cache(memory: Memory) -> None:
    model = Model(3)
    predict = memory.cache(model.predict)
    assert predict(2) == predict(2) == 6
    assert model.calls == 1
    assert memory.cache(Model(4).predict)(2) == 8


def test_functools_partial_arguments_are_part_of_the_key(memory: Memory) -> None:
    calls = []

    def power(base: int, exponent: int) -> int:
        calls.append((base, exponent))
        return base**exponent

    square = memory.cache(functools.partial(power, exponent=2))
    cube = memory.cache(functools.partial(power, exponent=3))
    assert square(3) == square(3) == 9
    assert cube(3) == 27
    assert calls == [(3, 2), (3, 3)]


def test_lambdas(memory: Memory) -> None:
    double = memory.cache(lambda x: 2 * x)
    triple = memory.cache(lambda x: 3 * x)
    assert double(2) == 4
    assert triple(2) == 6
    assert double(2) == 4
    assert double.func_id != triple.func_id


# Names that made the id ".", ".." (the cache root's parent: entries landed
# beside joblib/) or a hidden name (never listed, so never evicted).
@pytest.mark.parametrize(("module", "qualname"), [(".", ""), ("..", ""), ("." * 300, "")])
def test_no_function_name_leaves_its_directory(tmp_path: Path, module: str, qualname: str) -> None:
    def f(x: int) -> int:
        return x + 1

    f.__module__ = module
    f.__qualname__ = f.__name__ = qualname
    mem = Memory(tmp_path / "cache", verbose=0)
    cached = mem.cache(f)
    assert cached(1) == 2
    assert cached(1) == 2
    # The entry is in a function directory of its own, below <location>/joblib.
    (entry,) = (tmp_path / "cache").rglob("*.out")
    assert entry.relative_to(tmp_path / "cache" / "joblib" / cached.func_id).parent.parent == Path()
    assert cached.func_id not in (".", "..")
    assert not cached.func_id.startswith(".")
    cached.clear(warn=False)
    assert not list((tmp_path / "cache").rglob("*.out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_numpy_arguments(memory: Memory) -> None:
    np = pytest.importorskip("numpy")
    calls = []

    @memory.cache
    def total(a: Any) -> float:
        calls.append(1)
        return float(a.sum())

    x = np.arange(100.0)
    assert total(x) == total(x.copy()) == 4950.0
    assert total(x + 1) == 5050.0
    assert len(calls) == 2


def test_mmap_mode_loads_arrays_as_memmaps(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    mem = Memory(tmp_path, mmap_mode="r", verbose=0)

    @mem.cache
    def make(n: int) -> Any:
        return np.arange(n, dtype=np.float64)

    first = make(1000)
    loaded = make(1000)
    np.testing.assert_array_equal(first, loaded)
    for value in (first, loaded, make.call(2000)[0]):
        assert isinstance(value, np.memmap)
        assert not value.flags.writeable
    plain = mem.cache(make.__wrapped__, mmap_mode=None)(1000)
    assert not isinstance(plain, np.memmap)


def test_mmap_pipeline_hits_on_a_second_run(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    calls: list[str] = []

    def run(x: Any) -> Any:
        mem = Memory(tmp_path, mmap_mode="r", verbose=0)

        @mem.cache
        def stage1(x: Any) -> Any:
            calls.append("stage1")
            return x * 2

        @mem.cache
        def stage2(y: Any) -> Any:
            calls.append("stage2")
            return y + 1

        return stage2(stage1(x)), stage2

    first, _ = run(np.arange(100.0))
    assert calls == ["stage1", "stage2"]
    second, stage2 = run(np.arange(100.0))  # stage1 now loads a memmap: stage2 still hits
    assert calls == ["stage1", "stage2"]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(second, np.arange(100.0) * 2 + 1)
    # Keyed by content: the equal in-memory array hits the memmap argument's entry.
    stage2(np.arange(100.0) * 2)
    assert calls == ["stage1", "stage2"]


def test_compressed_results(tmp_path: Path) -> None:
    mem = Memory(tmp_path, compress=3, verbose=0)
    f = mem.cache(lambda n: "x" * n)
    assert f(100_000) == f(100_000) == "x" * 100_000
    info = f.lookup(100_000)
    assert info is not None
    assert info.size < 50_000


def test_verbose_logs_computations(memory: Memory, caplog: pytest.LogCaptureFixture) -> None:
    f = memory.cache(lambda x: x, verbose=1)
    with caplog.at_level(logging.INFO, logger="joblite.memory"):
        f(1)
    assert "[Memory] Calling" in caplog.text
    silent = memory.cache(lambda x: x + 1, verbose=0)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="joblite.memory"):
        silent(1)
    assert caplog.text == ""


def test_memorized_func_pickles(tmp_path: Path) -> None:
    mem = Memory(tmp_path, verbose=0)
    f = mem.cache(abs)
    assert f(-2) == 2
    clone = pickle.loads(pickle.dumps(f))
    assert isinstance(clone, MemorizedFunc)
    assert clone.check_call_in_cache(-2)
    assert pickle.loads(pickle.dumps(mem)).cache(abs).check_call_in_cache(-2)


def test_redecorating_reuses_the_function(memory: Memory) -> None:
    calls = []

    def f(x: int) -> int:
        calls.append(x)
        return x

    memory.cache(f)(1)
    memory.cache(memory.cache(f))(1)
    assert calls == [1]


def test_temporary_memory_is_removed() -> None:
    from joblite.memory._access import _flush_all

    with Memory.temporary(verbose=0) as mem:
        location = mem.store.location if mem.store else ""
        f = mem.cache(abs)
        assert f(-1) == f(-1) == f(-1) == 1  # hits leave counts pending
        assert os.path.isdir(location)
    _flush_all()  # what interpreter exit does: it must not recreate the directory
    assert not os.path.exists(os.path.dirname(location))


def test_register_store_backend_validates() -> None:
    with pytest.raises(TypeError, match="subclass"):
        register_store_backend("dict", dict)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backend_name"):
        register_store_backend("", dict)  # type: ignore[arg-type]


def test_registered_backend_is_used(tmp_path: Path) -> None:
    from joblite.memory import InMemoryStore

    class LabelledStore(InMemoryStore):
        pass

    register_store_backend("labelled-test", LabelledStore)
    mem = Memory(tmp_path, backend="labelled-test", verbose=0)
    assert isinstance(mem.store, LabelledStore)
    assert mem.cache(abs)(-5) == 5
    assert not (tmp_path / "joblib").exists()


class Scaler:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, x: int) -> int:
        return x * self.factor


def test_callable_instances_key_on_their_state(memory: Memory) -> None:
    double, triple = memory.cache(Scaler(2)), memory.cache(Scaler(3))
    assert double(5) == 10
    assert triple(5) == 15
    assert double.check_call_in_cache(5)
    assert double.__cache_key__(5) != triple.__cache_key__(5)


def test_backend_by_name(tmp_path: Path) -> None:
    from joblite.memory import InMemoryStore

    mem = Memory(tmp_path, backend="memory", verbose=0)
    assert isinstance(mem.store, InMemoryStore)
    assert mem.store_backend is mem.store
    f = mem.cache(abs)
    assert f(-3) == f(-3) == 3
    assert f.store_backend is mem.store


def test_metadata_names_the_bound_arguments(local_memory: Memory) -> None:
    @local_memory.cache(ignore=["debug"])
    def f(a: int, b: int = 2, *, debug: bool = False) -> int:
        return a + b

    @local_memory.cache
    def g(x: int, *rest: int, **options: int) -> int:
        return x

    _, metadata = f.call(1, debug=True)
    assert metadata["input_args"] == {"a": "1", "b": "2"}
    _, metadata = g.call(1, 2, z=3)
    assert metadata["input_args"] == {"x": "1", "rest": "(2,)", "options": "{'z': 3}"}


def count_key_hashes(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """One item per hash of a call's arguments from now on."""
    from joblite.memory import _memorized

    hashed: list[object] = []
    real = _memorized.core_hash

    def counting(obj: object, *args: Any, **kwargs: Any) -> str:
        hashed.append(obj)
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(_memorized, "core_hash", counting)
    return hashed


def test_call_and_shelve_hashes_once_and_asks_the_callback_once(
    memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    computed: list[int] = []
    answers: list[bool] = []
    verdict = [True]  # what the callback answers

    def callback(metadata: dict[str, Any]) -> bool:
        answers.append(verdict[0])
        return verdict[0]

    def double(x: int) -> int:
        computed.append(x)
        return 2 * x

    f = memory.cache(double, cache_validation_callback=callback)
    hashed = count_key_hashes(monkeypatch)
    results = []
    for fresh in (True, True, False):  # a miss, a valid hit, a rejected (stale) entry
        verdict[0] = fresh
        hashed.clear()
        answers.clear()
        results.append(f.call_and_shelve(4))
        assert len(hashed) == 1
        assert len(answers) == (0 if len(results) == 1 else 1)
    assert computed == [4, 4]
    assert [r.get() for r in results] == [8, 8, 8]
    assert results[1].metadata["input_args"] == {"x": "4"}
