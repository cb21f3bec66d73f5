"""What only the dask backend does: finding the client, sizing from the cluster, real workers.

The contract tests (test_contract.py) run the shared behaviour on an
in-process cluster; here a cluster of worker processes proves that batches
travel by pickle and that a dying dask worker is reported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from joblite.exceptions import MissingDependencyError, NoDaskClientError, WorkerCrashedError
from joblite.parallel import DaskBackend, Parallel, delayed, effective_n_jobs, parallel_config
from joblite.parallel._worker_state import WORKER_STATE

from ._tasks import (
    crash_if,
    dask_test_client,
    identity,
    init_count,
    init_worker,
    nested_pids,
    square,
)


@pytest.fixture(scope="module")
def process_client() -> Iterator[Any]:
    """Two single-thread worker processes; a task that kills one fails at once."""
    import dask

    # The scheduler reads allowed-failures when created: 0 means no re-run
    # elsewhere, so a crashing task fails on its first death.
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        dask_test_client(processes=True) as client,
    ):
        yield client


@pytest.fixture
def current_client(dask_client: Any) -> Iterator[Any]:
    with dask_client.as_current():
        yield dask_client


def test_no_client_raises_a_clear_value_error() -> None:
    with pytest.raises(NoDaskClientError, match=r"distributed\.Client") as info:
        Parallel(backend="dask")(delayed(square)(i) for i in range(3))
    assert isinstance(info.value, ValueError)
    with parallel_config(backend="dask"), pytest.raises(NoDaskClientError):
        effective_n_jobs(-1)


def test_missing_distributed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(MissingDependencyError, match=r'pip install "joblite\[dask\]"') as info:
        Parallel(backend="dask")(delayed(square)(i) for i in range(3))
    assert isinstance(info.value, ImportError)


def test_n_jobs_counts_the_cluster_threads(current_client: Any) -> None:
    with parallel_config(backend="dask"):
        assert effective_n_jobs(-1) == 2  # 2 workers x 1 thread
        assert effective_n_jobs(-2) == 1
        assert effective_n_jobs(1) == 1
        assert effective_n_jobs(8) == 2  # more would only queue


def test_a_client_passed_in_needs_no_current_client(dask_client: Any) -> None:
    backend = DaskBackend(client=dask_client)
    assert Parallel(backend=backend)(delayed(square)(i) for i in range(5)) == [0, 1, 4, 9, 16]


def test_n_jobs_1_still_runs_on_the_cluster(current_client: Any) -> None:
    out = Parallel(n_jobs=1, backend="dask")([delayed(identity)()])
    assert out != [identity()]  # a dask worker thread, not the caller


def test_in_process_workers_do_not_mark_the_caller_as_a_worker(current_client: Any) -> None:
    Parallel(backend="dask")(delayed(nested_pids)(2) for _ in range(4))
    assert not WORKER_STATE.in_worker()  # so the caller's next Parallel still goes parallel


def test_closures_and_lambdas_travel_to_worker_processes(process_client: Any) -> None:
    offset = 10

    def shifted(x: int) -> int:
        return x + offset

    with process_client.as_current(), parallel_config(backend="dask"):
        assert Parallel()(delayed(shifted)(i) for i in range(4)) == [10, 11, 12, 13]
        assert Parallel()(delayed(lambda x: x * 3)(i) for i in range(3)) == [0, 3, 6]
        pids = Parallel()(delayed(os.getpid)() for _ in range(20))
    assert os.getpid() not in pids


def test_initializer_and_nesting_in_worker_processes(process_client: Any) -> None:
    backend = DaskBackend(client=process_client)
    counts = Parallel(backend=backend, initializer=init_worker, initargs=("dask",))(
        delayed(init_count)("dask") for _ in range(20)
    )
    assert counts == [1] * 20  # once in each worker, before its first task
    for pids in Parallel(backend=backend)(delayed(nested_pids)(3) for _ in range(2)):
        assert len(set(pids)) == 1  # the nested call ran sequentially inside its worker


def test_dying_worker_raises_worker_crashed_error(process_client: Any) -> None:
    # One batch in flight: the batch that kills its worker is alone on it, so
    # dask (allowed-failures=0 here) blames no innocent task.
    backend = DaskBackend(client=process_client)
    one_at_a_time = {"n_jobs": 1, "pre_dispatch": 1, "batch_size": 1}
    with pytest.raises(WorkerCrashedError, match="dask workers died"):
        Parallel(backend=backend, **one_at_a_time)(delayed(crash_if)(i, 3) for i in range(6))
    out = Parallel(backend=backend, on_error="collect", **one_at_a_time)(
        delayed(crash_if)(i, 2) for i in range(5)
    )
    assert isinstance(out[2], WorkerCrashedError)
    assert out[:2] + out[3:] == [0, 1, 3, 4]


def test_a_failing_initializer_fails_the_tasks_of_its_worker(current_client: Any) -> None:
    with pytest.raises(ZeroDivisionError):
        Parallel(backend="dask", initializer=divmod, initargs=(1, 0))(
            delayed(square)(i) for i in range(4)
        )
    out = Parallel(backend="dask", initializer=divmod, initargs=(1, 0), on_error="collect")(
        delayed(square)(i) for i in range(4)
    )
    assert [type(error) for error in out] == [ZeroDivisionError] * 4
