"""Parallel's configuration as joblib documents it: each test runs on joblib 1.6 too.

A test parametrized over ``lib`` checks the same behaviour on both libraries;
where joblite differs on purpose (docs/joblib.md lists it) the test says so.
"""

from __future__ import annotations

import importlib
import multiprocessing
import threading
import uuid
from typing import Any

import pytest

from joblite.parallel import (
    Parallel,
    delayed,
    effective_n_jobs,
    get_active_backend,
    parallel_backend,
    parallel_config,
)
from joblite.parallel._njobs import cpu_count

from . import _tasks
from ._tasks import init_count, init_worker

LIBS = ["joblib", "joblite"]


def _module(lib: str) -> Any:
    return importlib.import_module("joblib.parallel" if lib == "joblib" else "joblite.parallel")


def _thread_name() -> str:
    return threading.current_thread().name


def _nesting_level(lib: str) -> int:
    return int(_module(lib).get_active_backend()[0].nesting_level)


def _marker() -> str:
    return _tasks.MARKER


# ------------------------------------------------------------ backend=<multiprocessing context>


@pytest.mark.parametrize("lib", LIBS)
def test_a_multiprocessing_context_is_the_multiprocessing_backend_on_it(
    lib: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _module(lib)
    # A forked worker inherits what the caller set at run time; a spawned one does not.
    monkeypatch.setattr(_tasks, "MARKER", "set by the caller")
    spawn = multiprocessing.get_context("spawn")
    out = module.Parallel(n_jobs=2, backend=spawn)(module.delayed(_marker)() for _ in range(4))
    assert out == ["module default"] * 4
    fork = multiprocessing.get_context("fork")
    out = module.Parallel(n_jobs=2, backend=fork)(module.delayed(_marker)() for _ in range(4))
    assert out == ["set by the caller"] * 4


def test_a_multiprocessing_context_in_parallel_config(monkeypatch: pytest.MonkeyPatch) -> None:
    # joblib 1.6 fails here (AttributeError: no nesting_level): joblite accepts it.
    monkeypatch.setattr(_tasks, "MARKER", "set by the caller")
    with parallel_config(backend=multiprocessing.get_context("spawn"), n_jobs=2):
        assert type(get_active_backend()[0]).__name__ == "MultiprocessingBackend"
        assert effective_n_jobs(None) == 2
        assert Parallel()(delayed(_marker)() for _ in range(2)) == ["module default"] * 2
    with pytest.raises(TypeError, match="start_methd"):
        parallel_config(backend=multiprocessing.get_context("spawn"), start_methd="fork")
    with pytest.raises(ValueError, match="start_method or context"):
        Parallel(backend=multiprocessing.get_context("spawn"), start_method="fork")([])


# ------------------------------------------------------------ n_jobs as a string or a float


@pytest.mark.parametrize("lib", LIBS)
def test_n_jobs_may_be_a_string_of_an_int_or_a_float(lib: str) -> None:
    module = _module(lib)
    for n_jobs in ("2", " 2 ", 2.3):
        parallel = module.Parallel(n_jobs=n_jobs, backend="threading")
        assert parallel.n_jobs == 2
        names = parallel(module.delayed(_thread_name)() for _ in range(4))
        assert threading.current_thread().name not in names  # on workers, not inline
    assert module.Parallel(n_jobs="-1").n_jobs == -1
    for nonsense in ("two", "2.5", ""):
        with pytest.raises(ValueError, match="n_jobs"):
            module.Parallel(n_jobs=nonsense)


def test_string_n_jobs_counts_everywhere_n_jobs_does() -> None:
    assert effective_n_jobs("-1") == cpu_count()  # type: ignore[arg-type]
    with parallel_config(n_jobs="3"):
        assert effective_n_jobs(None) == 3
        assert Parallel().n_jobs == 3
    with parallel_backend("threading", n_jobs="2"):
        names = Parallel()(delayed(_thread_name)() for _ in range(4))
    assert threading.current_thread().name not in names


# ------------------------------------------------------------ with parallel_config(...) as config


@pytest.mark.parametrize("lib", LIBS)
def test_parallel_config_gives_a_mapping_with_joblibs_keys(lib: str) -> None:
    import joblib

    with joblib.parallel_config() as reference:
        keys = set(reference)
    module = _module(lib)
    with module.parallel_config(backend="threading", n_jobs=2, mmap_mode="r+") as config:
        assert set(config) == keys
        assert type(config["backend"]).__name__ == "ThreadingBackend"
        assert config["n_jobs"] == 2
        assert config["mmap_mode"] == "r+"
        assert config["backend"].nesting_level == 0


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("backend", ["threading", "loky"])
def test_nesting_level_is_0_in_the_caller_and_1_in_a_worker(lib: str, backend: str) -> None:
    module = _module(lib)
    assert _nesting_level(lib) == 0
    try:
        out = module.Parallel(n_jobs=2, backend=backend)(
            module.delayed(_nesting_level)(lib) for _ in range(2)
        )
    finally:
        if lib == "joblib" and backend == "loky":  # its workers would outlive the test
            from joblib.externals.loky import get_reusable_executor

            get_reusable_executor(reuse=True).shutdown(wait=True, kill_workers=True)
    assert out == [1, 1]


@pytest.mark.parametrize("lib", LIBS)
def test_parallel_config_n_jobs_none_resets_but_parallel_n_jobs_none_inherits(lib: str) -> None:
    # joblib #1473: an explicit None in parallel_config is the backend's default.
    module = _module(lib)
    with module.parallel_config(backend="threading", n_jobs=2):
        assert module.Parallel(n_jobs=None).n_jobs == 2
        with module.parallel_config(n_jobs=None) as inner:
            assert inner["n_jobs"] is None
            assert module.get_active_backend()[1] is None
            names = module.Parallel()(module.delayed(_thread_name)() for _ in range(3))
            assert names == [threading.current_thread().name] * 3  # the default: 1 job


# ------------------------------------------------------------ hints that contradict each other


@pytest.mark.parametrize("lib", LIBS)
def test_prefer_processes_with_require_sharedmem_is_a_value_error(lib: str) -> None:
    # (unknown values and a process backend with require="sharedmem": test_api.py)
    with pytest.raises(ValueError, match="inconsistent"):
        _module(lib).Parallel(prefer="processes", require="sharedmem")([])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prefer": "processes", "require": "sharedmem"},
        {"backend": "loky", "require": "sharedmem"},
        {"backend": "multiprocessing", "require": "sharedmem"},
    ],
)
def test_inconsistent_hints_fail_in_parallel_config_at_once(kwargs: dict[str, str]) -> None:
    # joblib 1.6 accepts these here and fails (or silently uses threads) later.
    with pytest.raises(ValueError, match="sharedmem"):
        parallel_config(**kwargs).unregister()  # type: ignore[arg-type]


def test_hints_from_two_layers_must_agree_too() -> None:
    with parallel_config(prefer="processes"), pytest.raises(ValueError, match="inconsistent"):
        Parallel(require="sharedmem")([])
    # a configured process backend meets a library's require="sharedmem": threads
    with parallel_config(backend="loky", n_jobs=2):
        names = Parallel(require="sharedmem")(delayed(_thread_name)() for _ in range(4))
    assert all(name.startswith("joblite-worker") for name in names)


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("backend", ["threading", "sequential"])
def test_thread_backends_refuse_inner_max_num_threads(lib: str, backend: str) -> None:
    module = _module(lib)
    # joblib asserts (AssertionError); joblite raises ValueError naming the argument.
    error = AssertionError if lib == "joblib" else ValueError
    with pytest.raises(error, match="inner_max_num_threads"):
        module.parallel_config(backend=backend, inner_max_num_threads=2).unregister()
    with pytest.raises(error, match="inner_max_num_threads"):
        module.parallel_backend(backend, inner_max_num_threads=2).unregister()


def test_an_outer_thread_backend_refuses_inner_max_num_threads_too() -> None:
    with parallel_config(backend="threading"), pytest.raises(ValueError, match="inner_max"):
        parallel_config(inner_max_num_threads=2).unregister()
    # joblite's multiprocessing backend honours it (joblib's refuses it):
    # test_processes.py::test_inner_max_num_threads_caps_blas_threads


# ------------------------------------------------------------ initializer through the config


def test_initializer_through_parallel_config_runs_in_every_worker(
    backend: Any, backend_name: str
) -> None:
    token = uuid.uuid4().hex
    with parallel_config(backend=backend, n_jobs=2, initializer=init_worker, initargs=(token,)):
        if backend_name == "custom":  # joblite cannot reach a third-party backend's workers
            with pytest.raises(ValueError, match="initializer"):
                Parallel()([])
            return
        counts = Parallel()(delayed(init_count)(token) for _ in range(20))
    assert counts == [1] * 20


@pytest.mark.parametrize("backend", ["threading", "loky", "multiprocessing"])
def test_initializer_through_parallel_backend(backend: str) -> None:
    token = uuid.uuid4().hex
    with parallel_backend(backend, n_jobs=2, initializer=init_worker, initargs=(token,)):
        counts = Parallel()(delayed(init_count)(token) for _ in range(10))
        # Parallel's own initializer wins over the configured one.
        own = uuid.uuid4().hex
        mine = Parallel(initializer=init_worker, initargs=(own,))(
            delayed(init_count)(own) for _ in range(4)
        )
    assert counts == [1] * 10
    assert mine == [1] * 4


def test_a_bad_initializer_in_parallel_config_is_named() -> None:
    with pytest.raises(TypeError, match="initializer must be callable"):
        parallel_config(backend="threading", initializer=3).unregister()
    with pytest.raises(TypeError, match="initargs must be a tuple"):
        parallel_config(backend="threading", initializer=print, initargs=3).unregister()
