"""The API edge: arguments, configuration scoping, registry, third-party backends."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
from typing import Any

import pytest

import joblite.parallel._choice as choice_module
from joblite.exceptions import MissingDependencyError
from joblite.parallel import (
    Parallel,
    cpu_count,
    delayed,
    effective_n_jobs,
    parallel_backend,
    parallel_config,
    register_parallel_backend,
)
from joblite.parallel._config import active_settings
from joblite.parallel._registry import REGISTRY

from ._tasks import OldStyleBackend, ThreadPoolBackend, add, identity, square


def _thread_name() -> str:
    return threading.current_thread().name


def test_delayed_captures_the_call() -> None:
    function, args, kwargs = delayed(add)(1, y=2)
    assert (function, args, kwargs) == (add, (1,), {"y": 2})
    assert delayed(add).__wrapped__ is add  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="callable"):
        delayed(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"return_as": "dict"}, "return_as"),
        ({"on_error": "ignore"}, "on_error"),
        ({"retries": -1}, "retries"),
        ({"timeout": 0}, "timeout"),
        ({"batch_size": 0}, "batch_size"),
        ({"prefer": "gpu"}, "prefer"),
        ({"require": "magic"}, "require"),
        ({"mmap_mode": "x"}, "mmap_mode"),
        ({"backend": "nope"}, "backend"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"max_nbytes": "lots"}, "max_nbytes"),
        ({"max_nbytes": -1}, "max_nbytes"),
    ],
)
def test_bad_arguments_name_themselves(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Parallel(**kwargs)


@pytest.mark.parametrize("value", [True, 1.5, b"1M"])
def test_max_nbytes_of_a_wrong_type_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="max_nbytes"):
        Parallel(max_nbytes=value)
    with pytest.raises(TypeError, match="max_nbytes"):
        parallel_config(max_nbytes=value)  # type: ignore[arg-type]


def test_bad_max_nbytes_in_parallel_config_fails_at_once() -> None:
    with pytest.raises(ValueError, match="max_nbytes"):
        parallel_config(max_nbytes="1 lot")


def test_bad_pre_dispatch_is_reported_at_call_time() -> None:
    with pytest.raises(ValueError, match="pre_dispatch"):
        Parallel(n_jobs=2, backend="threading", pre_dispatch="__import__('os')")([])


def test_non_triples_are_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match=r"\(callable, args, kwargs\) triples"):
        Parallel(n_jobs=2, backend="threading")([square])


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize(
    "options",
    [{}, {"return_as": "generator"}, {"retries": 1}, {"timeout": 30}],
    ids=["list", "generator", "retries", "timeout"],
)
def test_non_triples_give_the_same_error_whatever_n_jobs(
    n_jobs: int, options: dict[str, Any]
) -> None:
    parallel = Parallel(n_jobs=n_jobs, backend="threading", **options)
    for item in [1, (square, (2,))]:
        with pytest.raises(TypeError, match=r"triples such as delayed\(f\)\(x\); got "):
            list(parallel([delayed(square)(1), item]))
    collected = list(
        Parallel(n_jobs=n_jobs, backend="threading", on_error="collect", **options)(
            [delayed(square)(1), 1, delayed(square)(3)]
        )
    )
    assert collected[::2] == [1, 9]
    assert "triples such as delayed(f)(x); got 1" in str(collected[1])


@pytest.mark.parametrize("pre_dispatch", ["all", 1, "3 * n_jobs", "n_jobs + 1"])
@pytest.mark.parametrize("batch_size", ["auto", 1, 7])
def test_pre_dispatch_and_batch_size_forms(pre_dispatch: Any, batch_size: Any) -> None:
    out = Parallel(n_jobs=2, backend="threading", pre_dispatch=pre_dispatch, batch_size=batch_size)(
        delayed(square)(i) for i in range(50)
    )
    assert out == [i * i for i in range(50)]


def test_effective_n_jobs_follows_the_configured_backend() -> None:
    with parallel_config(backend="sequential"):
        assert effective_n_jobs(-1) == 1
    with parallel_config(backend="threading"):
        assert effective_n_jobs(3) == 3


def test_cpu_count_and_effective_n_jobs() -> None:
    total = cpu_count()
    assert 1 <= total <= (os.cpu_count() or 1)
    assert 1 <= cpu_count(only_physical_cores=True) <= total
    assert effective_n_jobs(-1) == total
    assert effective_n_jobs(1) == 1
    assert effective_n_jobs(2.9) == 2
    assert effective_n_jobs(-total - 5) == 1
    with parallel_config(n_jobs=3):
        assert effective_n_jobs(None) == 3
    with pytest.raises(ValueError, match="n_jobs"):
        effective_n_jobs(0)
    with pytest.raises(TypeError, match="n_jobs"):
        effective_n_jobs([2])  # type: ignore[arg-type]


def test_parallel_config_nests_and_restores() -> None:
    assert active_settings().get("n_jobs", None) is None
    with parallel_config(backend="threading", n_jobs=2, verbose=0):
        with parallel_config(n_jobs=3):
            inner = active_settings()
            assert (inner.backend, inner.n_jobs) == ("threading", 3)
        assert active_settings().n_jobs == 2
    assert active_settings().get("backend", None) is None


def test_parallel_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="backend"):
        parallel_config(backend="nope")
    with pytest.raises(ValueError, match="inner_max_num_threads"):
        parallel_config(inner_max_num_threads=0)
    with pytest.raises(ValueError, match="prefer"):
        parallel_config(prefer="fast")


def test_parallel_config_is_per_asyncio_task() -> None:
    async def under_config() -> list[Any]:
        with parallel_config(backend="threading", n_jobs=2):
            await asyncio.sleep(0)
            return Parallel()(delayed(_thread_name)() for _ in range(20))

    async def without_config() -> list[Any]:
        await asyncio.sleep(0)
        return Parallel()(delayed(_thread_name)() for _ in range(3))

    async def main() -> tuple[list[Any], list[Any]]:
        return await asyncio.gather(under_config(), without_config())  # type: ignore[return-value]

    configured, plain = asyncio.run(main())
    assert all(name.startswith("joblite-worker") for name in configured)
    assert plain == [threading.current_thread().name] * 3


def test_parallel_backend_is_the_older_form() -> None:
    with parallel_backend("threading", n_jobs=2):
        names = Parallel()(delayed(_thread_name)() for _ in range(20))
    assert all(name.startswith("joblite-worker") for name in names)


def test_explicit_arguments_beat_the_config() -> None:
    with parallel_config(backend="threading", n_jobs=2):
        assert Parallel(n_jobs=1)(delayed(identity)() for _ in range(3)) == [identity()] * 3


def test_prefer_and_require_pick_threads() -> None:
    for kwargs in ({"prefer": "threads"}, {"require": "sharedmem"}):
        names = Parallel(n_jobs=2, **kwargs)(delayed(_thread_name)() for _ in range(20))
        assert all(name.startswith("joblite-worker") for name in names)
    with pytest.raises(ValueError, match="sharedmem"):
        Parallel(n_jobs=2, backend="loky", require="sharedmem")([])


def test_free_threaded_python_prefers_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(choice_module, "gil_disabled", lambda: True)
    names = Parallel(n_jobs=2)(delayed(_thread_name)() for _ in range(20))
    assert all(name.startswith("joblite-worker") for name in names)


def test_registered_backend_by_name_and_as_default() -> None:
    register_parallel_backend("test-threads", ThreadPoolBackend)
    previous = REGISTRY.default
    try:
        assert Parallel(n_jobs=2, backend="test-threads")(delayed(square)(i) for i in range(5)) == [
            0,
            1,
            4,
            9,
            16,
        ]
        register_parallel_backend("test-threads", ThreadPoolBackend, make_default=True)
        with parallel_config(n_jobs=2):
            idents = Parallel()(delayed(identity)() for _ in range(20))
        assert all(ident != identity()[1] for _, ident in idents)
    finally:
        REGISTRY.default = previous
        REGISTRY.factories.pop("test-threads", None)
    with pytest.raises(TypeError, match="factory"):
        register_parallel_backend("x", 3)  # type: ignore[arg-type]


def test_joblib_pre_submit_backend_still_works() -> None:
    out = Parallel(n_jobs=2, backend=OldStyleBackend())(delayed(square)(i) for i in range(7))
    assert out == [i * i for i in range(7)]


def test_backend_instance_is_used_as_given() -> None:
    from joblite.parallel import ThreadingBackend

    names = Parallel(n_jobs=2, backend=ThreadingBackend())(
        delayed(_thread_name)() for _ in range(9)
    )
    assert all(name.startswith("joblite-worker") for name in names)


def test_sequential_initializer_runs_once() -> None:
    calls: list[int] = []
    out = Parallel(n_jobs=1, initializer=calls.append, initargs=(7,))(
        delayed(square)(i) for i in range(5)
    )
    assert out == [0, 1, 4, 9, 16]
    assert calls == [7]


def test_progress_true_draws_a_tqdm_bar(capsys: pytest.CaptureFixture[str]) -> None:
    Parallel(n_jobs=2, backend="threading", progress=True)(delayed(square)(i) for i in range(10))
    assert "10/10" in capsys.readouterr().err


def test_progress_true_without_tqdm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(MissingDependencyError, match=r"joblite\[progress\]"):
        Parallel(n_jobs=2, backend="threading", progress=True)([delayed(square)(1)])


def test_bad_progress_value() -> None:
    with pytest.raises(TypeError, match="progress"):
        Parallel(n_jobs=2, backend="threading", progress="yes")([])  # type: ignore[arg-type]


def test_verbose_logs_through_logging(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="joblite.parallel"):
        Parallel(n_jobs=2, backend="threading", verbose=11)(delayed(square)(i) for i in range(10))
    messages = [record.getMessage() for record in caplog.records]
    assert any("ThreadingBackend" in message for message in messages)
    assert any("Done" in message and "10" in message for message in messages)


def test_importing_joblite_parallel_stays_light() -> None:
    code = (
        "import sys, joblite.parallel\n"
        "heavy = ['numpy', 'loky', 'multiprocessing', 'concurrent.futures', 'tqdm',"
        " 'cloudpickle']\n"
        "print([name for name in heavy if name in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("backend", ["sequential", None])
def test_n_jobs_1_reads_the_input_one_task_at_a_time(backend: str | None) -> None:
    # joblib's pre_dispatch promise at its smallest: with one worker in the caller,
    # each task is produced, then run, before the next is produced.
    events: list[str] = []

    def work(i: int) -> int:
        events.append(f"run {i}")
        return i

    def tasks() -> Any:
        for i in range(4):
            events.append(f"produce {i}")
            yield delayed(work)(i)

    assert Parallel(n_jobs=1, backend=backend)(tasks()) == [0, 1, 2, 3]
    assert events == [f"{step} {i}" for i in range(4) for step in ("produce", "run")]


def test_a_nested_pool_warning_points_at_the_users_call() -> None:
    # joblib's warning for an inner process pool forced to n_jobs=1 must name
    # the line of the user's inner Parallel call, not a line inside joblite.
    def inner() -> list[int]:
        return Parallel(n_jobs=2, backend="loky")(delayed(abs)(-i) for i in range(2))

    with pytest.warns(UserWarning, match="cannot be nested below threads") as record:
        Parallel(n_jobs=2, backend="threading")(delayed(inner)() for _ in range(2))
    assert {w.filename for w in record} == {__file__}
