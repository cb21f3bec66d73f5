"""What only the Ray backend does: the runtime, the object store, killing and naming tasks.

The contract tests (test_contract.py) run the shared behaviour over Ray too;
both use the one local 2-CPU runtime of the ``ray_runtime`` fixture.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import pytest

from joblite.exceptions import (
    MissingDependencyError,
    NoRayRuntimeError,
    TaskTimeoutError,
    WorkerCrashedError,
)
from joblite.parallel import Parallel, RayBackend, delayed, effective_n_jobs, parallel_config

from ._tasks import (
    array_view_info,
    block,
    crash_if,
    crash_unless_marked,
    fail_on,
    nested_with_backend,
    pid_then_block,
    square,
)


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(MissingDependencyError, match=r'pip install "joblite\[ray\]"') as info:
        Parallel(backend="ray")(delayed(square)(i) for i in range(3))
    assert isinstance(info.value, ImportError)


def test_no_runtime_raises_naming_ray_init(monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray", reason='the ray extra is not installed: "joblite[ray]"')
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(NoRayRuntimeError, match=r"ray\.init\(\)") as info:
        Parallel(backend="ray")(delayed(square)(i) for i in range(3))
    assert isinstance(info.value, RuntimeError)
    with parallel_config(backend="ray"), pytest.raises(NoRayRuntimeError):
        effective_n_jobs(-1)


def test_n_jobs_counts_the_cluster_cpus(ray_runtime: Any) -> None:
    with parallel_config(backend="ray"):
        assert effective_n_jobs(-1) == 2  # ray.init(num_cpus=2)
        assert effective_n_jobs(-2) == 1
        assert effective_n_jobs(1) == 1
        assert effective_n_jobs(8) == 2  # more would only queue


def test_large_arrays_go_to_the_object_store_once_per_call(
    ray_runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    puts: list[Any] = []
    real_put = ray_runtime.put

    def counting_put(value: Any, **kwargs: Any) -> Any:
        puts.append(value)
        return real_put(value, **kwargs)

    monkeypatch.setattr(ray_runtime, "put", counting_put)
    big, small = np.ones(300_000), np.ones(10)  # 2.4 MB and 80 bytes
    out = Parallel(n_jobs=2, backend="ray", batch_size=1)(
        delayed(array_view_info)(array) for array in [big, small] * 5
    )
    assert len(puts) == 1  # ten tasks, one put, and only of the big one
    assert puts[0] is big
    # Read in place from the object store: read-only and not owning its memory.
    assert out[0] == ("ndarray", False, False)
    assert out[1][:2] == ("ndarray", True)  # a small one travels in the batch: a copy
    assert out == [out[0], out[1]] * 5
    puts.clear()
    Parallel(n_jobs=2, backend="ray")(delayed(array_view_info)(big) for _ in range(3))
    assert len(puts) == 1  # a new call puts it again, once
    puts.clear()
    out = Parallel(n_jobs=2, backend="ray", max_nbytes=None)([delayed(array_view_info)(big)])
    assert puts == []
    assert out[0][:2] == ("ndarray", True)


def test_a_dying_worker_is_named_and_the_rest_completes(ray_runtime: Any) -> None:
    one_per_task = {"n_jobs": 2, "batch_size": 1}
    with pytest.raises(WorkerCrashedError, match=r"died while running task 3 \(crash_if\)"):
        Parallel(backend="ray", **one_per_task)(delayed(crash_if)(i, 3) for i in range(6))
    out = Parallel(backend="ray", on_error="collect", **one_per_task)(
        delayed(crash_if)(i, 2) for i in range(5)
    )
    assert isinstance(out[2], WorkerCrashedError)
    assert out[:2] + out[3:] == [0, 1, 3, 4]


def test_ray_does_not_retry_a_crashed_task_itself(ray_runtime: Any, tmp_path: Any) -> None:
    # With Ray's default max_retries=3 the second run would succeed quietly.
    marker = str(tmp_path / "crashed-once")
    with pytest.raises(WorkerCrashedError):
        Parallel(backend="ray")([delayed(crash_unless_marked)(marker)])
    assert os.path.exists(marker)


def test_timeout_kills_the_worker_running_the_task(ray_runtime: Any, tmp_path: Any) -> None:
    import psutil

    pid_file = tmp_path / "pid"
    # An idle worker ready for the task (an earlier test may have killed one):
    # the clock starts at submission, and a worker start would count.
    Parallel(n_jobs=2, backend="ray")(delayed(square)(i) for i in range(2))
    with pytest.raises(TaskTimeoutError, match="task 0"):
        Parallel(backend="ray", timeout=3)([delayed(pid_then_block)(str(pid_file))])
    # The call waits for the killed worker's task to settle, so it is usually
    # gone already; either way it must not live on.
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(int(pid_file.read_text())).wait(timeout=30)  # TimeoutExpired if alive
    assert Parallel(backend="ray")(delayed(square)(i) for i in range(3)) == [0, 1, 4]


@pytest.mark.parametrize("inner", ["loky", "ray"])
def test_nested_explicit_backend_runs_inside_the_ray_task(ray_runtime: Any, inner: str) -> None:
    [(messages, pids, worker)] = Parallel(backend="ray")([delayed(nested_with_backend)(inner)])
    name = inner.capitalize()
    assert messages == [
        f"{name}-backed parallel loops cannot be nested below Ray tasks, setting n_jobs=1"
    ]
    assert pids == [worker] * 3  # no pool of its own, no wait on the busy cluster


def test_a_failing_initializer_fails_its_tasks_with_its_error(ray_runtime: Any) -> None:
    backend = RayBackend()
    with pytest.raises(ZeroDivisionError):
        Parallel(backend=backend, initializer=divmod, initargs=(1, 0))(
            delayed(square)(i) for i in range(4)
        )
    out = Parallel(backend=backend, initializer=divmod, initargs=(1, 0), on_error="collect")(
        delayed(square)(i) for i in range(4)
    )
    assert [type(error) for error in out] == [ZeroDivisionError] * 4


@pytest.mark.slow  # three worker deaths and restarts: ~7 s, more under load
def test_the_call_after_an_early_end_runs_a_task_that_lost_its_worker_once_more(
    ray_runtime: Any, tmp_path: Any
) -> None:
    # An early end force-cancels its unfinished tasks; a task that finished just
    # as the cancel went out still has its worker killed, maybe while that worker
    # runs the next call's task. crash_unless_marked stands in for that kill.
    backend = RayBackend()
    with pytest.raises(ValueError, match="task 0 is bad"):
        Parallel(backend=backend, n_jobs=2, batch_size=1)(
            [delayed(fail_on)(0, 0), delayed(block)()]
        )
    once = str(tmp_path / "once")
    out = Parallel(backend=backend, n_jobs=2, batch_size=1, on_error="collect")(
        [delayed(crash_unless_marked)(once), delayed(crash_if)(1, 1)]
    )
    assert out[0] == "ran again"
    assert isinstance(out[1], WorkerCrashedError)  # a real crash, twice, is still one
    with pytest.raises(WorkerCrashedError):  # the call after that is no longer shadowed
        Parallel(backend=backend)([delayed(crash_unless_marked)(str(tmp_path / "later"))])
