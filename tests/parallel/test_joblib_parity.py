"""Behaviours a joblib user relies on: None means "use the config", early errors, clean exit."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from joblite.memory import Memory
from joblite.parallel import (
    Parallel,
    delayed,
    effective_n_jobs,
    parallel_backend,
    parallel_config,
)
from joblite.parallel._njobs import cpu_count

from ._tasks import square


def _thread_name() -> str:
    return threading.current_thread().name


def _run_script(
    source: str, tmp_path: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )


# ------------------------------------------------------------ None is the default


def test_n_jobs_none_uses_the_configured_n_jobs() -> None:
    with parallel_config(backend="threading", n_jobs=2):
        names = Parallel(n_jobs=None)(delayed(_thread_name)() for _ in range(4))
    assert all(name.startswith("joblite-worker") for name in names)
    with parallel_backend("threading", n_jobs=2):
        assert Parallel(n_jobs=None).n_jobs == 2
    with parallel_config(n_jobs=-1):
        assert Parallel(n_jobs=None).n_jobs == -1


def test_n_jobs_none_uses_process_workers_under_loky_config() -> None:
    with parallel_config(backend="loky", n_jobs=2):
        pids = Parallel(n_jobs=None)(delayed(os.getpid)() for _ in range(6))
    assert os.getpid() not in pids


def test_none_arguments_fall_through_to_the_config(tmp_path: Path) -> None:
    with parallel_config(backend="threading", n_jobs=2, prefer="threads", require="sharedmem"):
        names = Parallel(backend=None, prefer=None, require=None, temp_folder=None)(
            delayed(_thread_name)() for _ in range(4)
        )
        assert all(name.startswith("joblite-worker") for name in names)
        # a nested parallel_config given None keeps the outer values (n_jobs aside:
        # joblib resets it to the backend's default, see test_parallel_config_n_jobs_none)
        with parallel_config(backend=None, prefer=None, require=None) as inner:
            assert type(inner["backend"]).__name__ == "ThreadingBackend"
            assert (inner["n_jobs"], inner["prefer"], inner["require"]) == (
                2,
                "threads",
                "sharedmem",
            )
    with parallel_config(temp_folder=tmp_path), parallel_config(temp_folder=None) as inner:
        assert inner["temp_folder"] == tmp_path


# ------------------------------------------------------------ bad input fails at once


@pytest.mark.parametrize("backend", [3, object(), 1.5])
def test_config_rejects_a_backend_of_the_wrong_type(backend: Any) -> None:
    with pytest.raises(TypeError, match="backend"):
        parallel_config(backend=backend)


def test_unknown_keywords_for_builtin_backends_are_rejected() -> None:
    with pytest.raises(TypeError, match="n_job"):
        parallel_config(n_job=2)
    with pytest.raises(TypeError, match="njobs"):
        Parallel(backend="threading", njobs=2)
    with pytest.raises(TypeError, match="njobs"):
        parallel_backend("threading", njobs=2)
    with pytest.raises(TypeError, match="njobs"):
        parallel_config(backend="loky", njobs=2)
    with parallel_config(backend="threading"), pytest.raises(TypeError, match="njobs"):
        Parallel(njobs=2)([delayed(square)(2)])
    # the built-in backends' own keywords still pass
    assert Parallel(n_jobs=2, backend="multiprocessing", start_method="spawn").n_jobs == 2
    with parallel_config(backend="loky", idle_worker_timeout=10):
        pass


def test_custom_backends_still_receive_their_own_keywords() -> None:
    from joblite.parallel import register_parallel_backend
    from joblite.parallel._registry import REGISTRY

    from ._tasks import ThreadPoolBackend

    received: dict[str, Any] = {}

    def factory(**kwargs: Any) -> ThreadPoolBackend:
        received.update(kwargs)
        return ThreadPoolBackend()

    register_parallel_backend("parity-custom", factory)
    try:
        with parallel_config(backend="parity-custom", flavour="x"):
            assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(3)) == [0, 1, 4]
        assert received["flavour"] == "x"
    finally:
        REGISTRY.factories.pop("parity-custom")


def test_temp_folder_that_is_a_file_is_named(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="temp_folder"):
        Parallel(temp_folder=a_file)
    with pytest.raises(ValueError, match="temp_folder"):
        parallel_config(temp_folder=str(a_file))
    with pytest.raises(TypeError, match="temp_folder"):
        Parallel(temp_folder=3)


@pytest.mark.parametrize("verbose", ["high", None])
def test_verbose_must_be_a_number(verbose: Any) -> None:
    with pytest.raises(TypeError, match="verbose"):
        Parallel(verbose=verbose)
    with pytest.raises(TypeError, match="verbose"):
        parallel_config(verbose=verbose)


@pytest.mark.parametrize("pre_dispatch", [0, -2, True, 2.5, "3 *", "n_jobs ** 2"])
def test_bad_pre_dispatch_is_named(pre_dispatch: Any) -> None:
    with pytest.raises(ValueError, match="pre_dispatch"):
        Parallel(pre_dispatch=pre_dispatch)


@pytest.mark.parametrize("pre_dispatch", [1, 5, "all", "n_jobs", "2 * n_jobs", "1.5*n_jobs"])
def test_joblib_pre_dispatch_forms_work(pre_dispatch: Any) -> None:
    out = Parallel(n_jobs=2, backend="threading", pre_dispatch=pre_dispatch)(
        delayed(square)(i) for i in range(7)
    )
    assert out == [i * i for i in range(7)]


# ------------------------------------------------------------ processes and exit


@pytest.mark.skipif(
    multiprocessing.get_start_method() != "fork", reason="the platform's default must be fork"
)
def test_multiprocessing_works_in_a_script_without_main_guard(tmp_path: Path) -> None:
    result = _run_script(
        """
        from joblite.parallel import Parallel, delayed

        def square(x):
            return x * x

        print(Parallel(n_jobs=2, backend="multiprocessing")(delayed(square)(i) for i in range(5)))
        """,
        tmp_path,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "[0, 1, 4, 9, 16]"), result.stderr
    assert "RuntimeError" not in result.stderr


def test_multiprocessing_start_method_follows_the_platform_default() -> None:
    from joblite.parallel.backends.multiprocessing_pool import MultiprocessingBackend

    backend = MultiprocessingBackend()
    backend.configure(n_jobs=1)
    try:
        pool = backend._get_pool()
        assert pool._mp_context.get_start_method() == multiprocessing.get_start_method()
    finally:
        backend.terminate()
    backend = MultiprocessingBackend(start_method="spawn")
    backend.configure(n_jobs=1)
    try:
        assert backend._get_pool()._mp_context.get_start_method() == "spawn"
    finally:
        backend.terminate()


def test_stuck_thread_after_timeout_does_not_block_exit(tmp_path: Path) -> None:
    # Failure bound only: the task sleeps 60 s, the process must be gone long before.
    result = _run_script(
        """
        import time
        from joblite.exceptions import TaskTimeoutError
        from joblite.parallel import Parallel, delayed

        try:
            Parallel(n_jobs=2, backend="threading", timeout=0.5)(
                delayed(time.sleep)(t) for t in (60, 0.1)
            )
        except TaskTimeoutError:
            print("timed out")
        """,
        tmp_path,
        timeout=30,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "timed out"), result.stderr


def test_parallel_mp_is_the_multiprocessing_module() -> None:
    # scikit-learn's test utilities read joblib.parallel.mp (None meaning
    # "no multiprocessing") to decide whether to run process-based tests.
    import joblite.parallel

    assert joblite.parallel.mp is multiprocessing
    assert "mp" in dir(joblite.parallel)


def test_importing_parallel_does_not_import_multiprocessing() -> None:
    script = "import sys, joblite.parallel; print('multiprocessing' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    ("n_jobs", "expected"),
    [
        (np.int64(2), 2),
        (np.int32(1), 1),
        (np.uint8(3), 3),
        (np.float32(2.7), 2),
        (np.float64(2.0), 2),
        (np.int64(-1), "all"),
    ],
)
def test_numpy_numbers_are_accepted_for_n_jobs(n_jobs: Any, expected: int | str) -> None:
    # scikit-learn passes numpy scalars through (e.g. n_jobs from a parameter grid).
    want = cpu_count() if expected == "all" else expected
    assert effective_n_jobs(n_jobs) == want
    with parallel_config(n_jobs=n_jobs):
        assert effective_n_jobs(None) == want
    with parallel_backend("threading", n_jobs=n_jobs):
        assert effective_n_jobs(None) == want
    parallel = Parallel(n_jobs=n_jobs, backend="threading", verbose=np.int64(0))
    assert parallel(delayed(square)(i) for i in range(4)) == [0, 1, 4, 9]


@pytest.mark.parametrize("verbose", [np.int64(0), np.int32(5), np.uint8(11), True, 2])
def test_numpy_integers_are_accepted_for_verbose(verbose: Any) -> None:
    assert Parallel(verbose=verbose).verbose == int(verbose)
    with parallel_config(verbose=verbose):
        assert Parallel().verbose == int(verbose)


@pytest.mark.parametrize(
    ("n_jobs", "error"),
    [
        (np.int64(0), ValueError),
        (np.float32(0.5), ValueError),
        (np.float64("nan"), ValueError),
        (np.float32("inf"), ValueError),
        (True, TypeError),
        (np.bool_(True), TypeError),
        (np.array([2]), TypeError),
        ("two", ValueError),
        ("2.5", ValueError),
        ("0", ValueError),
        (b"2", TypeError),
    ],
)
def test_bad_n_jobs_is_named(n_jobs: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="n_jobs"):
        effective_n_jobs(n_jobs)
    with pytest.raises(error, match="n_jobs"):
        Parallel(n_jobs=n_jobs)
    with pytest.raises(error, match="n_jobs"):
        parallel_config(n_jobs=n_jobs)
    with pytest.raises(error, match="n_jobs"):
        parallel_backend("threading", n_jobs=n_jobs)


@pytest.mark.parametrize("verbose", [np.bool_(True), np.array([1])])
def test_non_number_numpy_verbose_is_named(verbose: Any) -> None:
    with pytest.raises(TypeError, match="verbose"):
        Parallel(verbose=verbose)
    with pytest.raises(TypeError, match="verbose"):
        parallel_config(verbose=verbose)


@pytest.mark.parametrize("verbose", [1.5, np.float64(2.0), np.int32(5)])
def test_verbose_is_any_number_in_parallel_and_memory_alike(verbose: Any, tmp_path: Path) -> None:
    # joblib only compares verbose by size, so floats work there in both places.
    assert Parallel(verbose=verbose).verbose == verbose
    with parallel_config(verbose=verbose):
        assert Parallel().verbose == verbose
    assert Parallel(n_jobs=1, verbose=verbose)(delayed(square)(i) for i in range(3)) == [0, 1, 4]
    memory = Memory(tmp_path, verbose=verbose)
    assert memory.cache(square, verbose=verbose)(3) == 9


def test_joblib_parallel_mp_resolves_right_after_import() -> None:
    # `import joblib; joblib.parallel.mp` (scikit-learn's _testing) with joblite
    # standing in for joblib, before anything else has imported joblite.parallel.
    script = (
        "import sys, joblite\n"
        "sys.modules['joblib'] = joblite\n"
        "import joblib, multiprocessing\n"
        "print(joblib.parallel.mp is multiprocessing)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "True"


# ------------------------------------------------------------ parallel_backend's instance


@pytest.mark.parametrize("lib", ["joblib", "joblite"])
def test_parallel_backend_gives_the_instance_every_call_uses(lib: str) -> None:
    # scikit-learn's pattern: `with parallel_backend(name) as (backend, n_jobs)`, then
    # check on that very backend what the calls inside the block did.
    import importlib

    module = importlib.import_module("joblib.parallel" if lib == "joblib" else "joblite.parallel")
    base = module.ThreadingBackend

    class Counting(base):  # type: ignore[misc,valid-type]
        configured = 0

        def configure(self, *args: Any, **kwargs: Any) -> Any:
            type(self).configured += 1
            return super().configure(*args, **kwargs)

    name = f"counting-{lib}"
    module.register_parallel_backend(name, Counting)
    try:
        with module.parallel_backend(name, n_jobs=2) as (backend, n_jobs):
            assert isinstance(backend, Counting)
            assert n_jobs == 2
            assert module.get_active_backend() == (backend, 2)
            for _ in range(2):
                out = module.Parallel()(module.delayed(square)(i) for i in range(4))
                assert out == [0, 1, 4, 9]
        assert Counting.configured == 2
    finally:
        from joblite.parallel._registry import REGISTRY

        (module.BACKENDS if lib == "joblib" else REGISTRY.factories).pop(name)


@pytest.mark.parametrize("lib", ["joblib", "joblite"])
def test_get_active_backend_follows_the_configuration(lib: str) -> None:
    import importlib

    module = importlib.import_module("joblib.parallel" if lib == "joblib" else "joblite.parallel")
    backend, n_jobs = module.get_active_backend()
    assert type(backend).__name__ == "LokyBackend"
    assert n_jobs is None
    with module.parallel_config(backend="threading", n_jobs=3):
        backend, n_jobs = module.get_active_backend()
        assert type(backend).__name__ == "ThreadingBackend"
        assert n_jobs == 3
    with module.parallel_config(require="sharedmem"):
        assert type(module.get_active_backend()[0]).__name__ == "ThreadingBackend"


def test_loky_workers_start_through_loky_when_joblib_is_loaded_too(tmp_path: Path) -> None:
    # joblib's vendored loky registers itself as the "loky" start method on import;
    # joblite's workers must not start (and import joblib) through it.
    result = _run_script(
        """
        import loky, joblib, psutil
        from joblite.parallel import Parallel, delayed, shutdown_workers
        Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(4))
        print([" ".join(c.cmdline()) for c in psutil.Process().children(recursive=True)])
        shutdown_workers()
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "loky.backend.popen_loky_posix" in result.stdout
    assert "joblib.externals" not in result.stdout


@pytest.mark.parametrize("free_threaded", [False, True])
@pytest.mark.parametrize("in_worker", [False, True])
@pytest.mark.parametrize(
    "hints", [{}, {"prefer": "threads"}, {"prefer": "processes"}, {"require": "sharedmem"}]
)
def test_get_active_backend_names_the_backend_parallel_uses(
    monkeypatch: pytest.MonkeyPatch, free_threaded: bool, in_worker: bool, hints: dict[str, str]
) -> None:
    import joblite.parallel._choice as choice
    from joblite.parallel import get_active_backend
    from joblite.parallel._worker_state import WORKER_STATE

    monkeypatch.setattr(choice, "gil_disabled", lambda: free_threaded)
    monkeypatch.setattr(WORKER_STATE.thread, "is_worker", in_worker, raising=False)
    with parallel_config(**hints):  # type: ignore[arg-type]
        active, _ = get_active_backend()
        used, _ = Parallel(n_jobs=2)._make_backend()
    assert type(active) is type(used)
