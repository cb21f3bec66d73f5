"""The backend contract: every backend gives the same answers to the same calls."""

from __future__ import annotations

import multiprocessing
import os
import threading
import traceback
import types
import uuid
from typing import Any

import pytest

from joblite.exceptions import TaskTimeoutError
from joblite.parallel import Parallel, delayed, parallel_backend, parallel_config

from ._tasks import (
    add,
    block,
    fail_on,
    flaky,
    identity,
    init_count,
    init_worker,
    nested_pids,
    sleep_for,
    square,
)


def test_results_in_submission_order(backend: Any) -> None:
    out = Parallel(n_jobs=2, backend=backend)(delayed(square)(i) for i in range(200))
    assert out == [i * i for i in range(200)]


def test_keyword_arguments_and_empty_input(backend: Any) -> None:
    assert Parallel(n_jobs=2, backend=backend)(delayed(add)(i, y=10) for i in range(5)) == [
        10,
        11,
        12,
        13,
        14,
    ]
    assert Parallel(n_jobs=2, backend=backend)([]) == []


def test_handmade_triples_are_accepted(backend: Any) -> None:
    tasks = [(add, (i,), {"y": 1}) for i in range(6)]
    assert Parallel(n_jobs=2, backend=backend)(iter(tasks)) == [1, 2, 3, 4, 5, 6]


def test_generator_yields_in_order(backend: Any) -> None:
    gen = Parallel(n_jobs=2, backend=backend, return_as="generator")(
        delayed(square)(i) for i in range(30)
    )
    assert isinstance(gen, types.GeneratorType)
    assert list(gen) == [i * i for i in range(30)]


def test_generator_unordered_yields_every_result(backend: Any) -> None:
    gen = Parallel(n_jobs=2, backend=backend, return_as="generator_unordered")(
        delayed(square)(i) for i in range(30)
    )
    assert sorted(gen) == [i * i for i in range(30)]


def test_error_reraised_with_its_type_and_the_failing_line(backend: Any) -> None:
    with pytest.raises(ValueError, match="task 7 is bad") as info:
        Parallel(n_jobs=2, backend=backend)(delayed(fail_on)(i, 7) for i in range(40))
    text = "".join(traceback.format_exception(info.value))
    assert 'raise ValueError(f"task {i} is bad")' in text  # the user's own line


def test_collect_keeps_going_and_fills_the_slot(backend: Any) -> None:
    out = Parallel(n_jobs=2, backend=backend, on_error="collect")(
        delayed(fail_on)(i, 3) for i in range(10)
    )
    assert isinstance(out[3], ValueError)
    assert str(out[3]) == "task 3 is bad"
    assert out[:3] + out[4:] == [0, 1, 2, 4, 5, 6, 7, 8, 9]


def test_retries_rerun_a_failing_task(backend: Any) -> None:
    key = uuid.uuid4().hex
    assert Parallel(n_jobs=2, backend=backend, retries=2)([delayed(flaky)(key, 2)]) == [key]
    key = uuid.uuid4().hex
    with pytest.raises(RuntimeError, match="attempt 2 failed"):
        Parallel(n_jobs=2, backend=backend, retries=1)([delayed(flaky)(key, 2)])


def _stuck_task(backend_name: str) -> Any:
    # A plain loop cannot interrupt a task, nor can dask: it sleeps past the
    # timeout instead (a dask worker thread blocked until teardown would stall
    # the tasks the scheduler queues behind it).
    if backend_name in ("sequential", "dask"):
        return delayed(sleep_for)(1.5)
    return delayed(block)()


def _timeout(backend_name: str) -> float:
    # Ray's clock starts at submission and a force-cancelled task takes its
    # worker with it: the next task may wait for Ray to start a worker
    # process (about a second on a busy 2-core machine), and that counts.
    return 5.0 if backend_name == "ray" else 0.5


def _warm_up(backend: Any) -> None:
    # Process deadlines count from submission, worker start-up included: on a
    # loaded machine a cold loky pool alone can take longer than the timeout.
    # loky keeps its workers between calls, so start them before the clock.
    assert Parallel(n_jobs=2, backend=backend)(delayed(square)(i) for i in range(4)) == [0, 1, 4, 9]


@pytest.mark.parametrize("return_as", ["list", "generator"])
def test_timeout_raises_timeout_error(backend: Any, backend_name: str, return_as: str) -> None:
    _warm_up(backend)
    tasks = [delayed(square)(1), _stuck_task(backend_name), delayed(square)(3)]
    # joblib raises multiprocessing's TimeoutError: code written for it catches that.
    with pytest.raises(multiprocessing.TimeoutError) as info:
        list(
            Parallel(
                n_jobs=2, backend=backend, timeout=_timeout(backend_name), return_as=return_as
            )(tasks)
        )
    assert isinstance(info.value, TaskTimeoutError)
    assert isinstance(info.value, TimeoutError)
    assert "task 1" in str(info.value)
    # The pool is usable afterwards (a stuck process worker was replaced).
    assert Parallel(n_jobs=2, backend=backend)(delayed(square)(i) for i in range(4)) == [0, 1, 4, 9]


def test_timeout_collect_completes_the_rest(backend: Any, backend_name: str) -> None:
    _warm_up(backend)
    tasks = [delayed(square)(i) for i in range(3)] + [_stuck_task(backend_name)]
    tasks += [delayed(square)(i) for i in range(4, 8)]
    timeout = _timeout(backend_name)
    out = Parallel(n_jobs=2, backend=backend, timeout=timeout, on_error="collect")(tasks)
    assert isinstance(out[3], TaskTimeoutError)
    assert out[:3] + out[4:] == [0, 1, 4, 16, 25, 36, 49]


def test_initializer_runs_once_per_worker(backend: Any, backend_name: str) -> None:
    if backend_name == "custom":
        with pytest.raises(ValueError, match="initializer"):
            Parallel(n_jobs=2, backend=backend, initializer=init_worker, initargs=("x",))([])
        return
    token = uuid.uuid4().hex
    counts = Parallel(n_jobs=2, backend=backend, initializer=init_worker, initargs=(token,))(
        delayed(init_count)(token) for _ in range(20)
    )
    assert counts == [1] * 20


def test_progress_callback_counts_from_callers_thread(backend: Any) -> None:
    calls: list[tuple[int, int | None, int]] = []

    def progress(done: int, total: int | None) -> None:
        calls.append((done, total, threading.get_ident()))

    Parallel(n_jobs=2, backend=backend, progress=progress)(delayed(square)(i) for i in range(25))
    assert calls[-1][:2] == (25, 25)
    dones = [done for done, _, _ in calls]
    assert dones == sorted(dones)
    assert {thread for _, _, thread in calls} == {threading.get_ident()}


def test_progress_callback_knows_total_of_a_list(backend: Any) -> None:
    calls: list[tuple[int, int | None]] = []
    tasks = [delayed(square)(i) for i in range(12)]
    Parallel(n_jobs=2, backend=backend, progress=lambda d, t: calls.append((d, t)))(tasks)
    assert all(total == 12 for _, total in calls)
    assert calls[-1] == (12, 12)


@pytest.mark.parametrize("n_jobs", [None, 1, 2, 2.7, -1, -2])
def test_n_jobs_forms(backend: Any, n_jobs: Any) -> None:
    assert Parallel(n_jobs=n_jobs, backend=backend)(delayed(square)(i) for i in range(9)) == [
        i * i for i in range(9)
    ]


def test_n_jobs_zero_is_rejected(backend: Any) -> None:
    with pytest.raises(ValueError, match="n_jobs"):
        Parallel(n_jobs=0, backend=backend)


def test_context_manager_reuses_workers(backend: Any, backend_name: str) -> None:
    with Parallel(n_jobs=2, backend=backend) as parallel:
        first = set(parallel(delayed(identity)() for _ in range(40)))
        second = set(parallel(delayed(identity)() for _ in range(40)))
        third = parallel(delayed(square)(i) for i in range(5))
    assert third == [0, 1, 4, 9, 16]
    assert len(first | second) <= 2  # the same (at most 2) workers served both calls
    if backend_name in ("loky", "multiprocessing", "ray"):
        assert os.getpid() not in {pid for pid, _ in first}


def test_nested_parallel_runs_inside_the_worker(backend: Any, backend_name: str) -> None:
    out = Parallel(n_jobs=2, backend=backend)(delayed(nested_pids)(3) for _ in range(2))
    for pids in out:
        assert len(pids) == 3
        if backend_name in ("custom", "sequential"):
            # A third-party backend's workers are not marked; a sequential
            # "worker" is the caller itself, free to go parallel.
            continue
        assert len(set(pids)) == 1  # sequential inside: one process did all inner tasks
        if backend_name in ("loky", "multiprocessing", "ray"):
            assert pids[0] != os.getpid()


def test_parallel_config_applies_only_in_its_thread(backend: Any, backend_name: str) -> None:
    seen: dict[str, Any] = {}

    def other_thread() -> None:
        seen["other"] = Parallel()(delayed(identity)() for _ in range(4))

    with parallel_config(backend=backend, n_jobs=2):
        inside = Parallel()(delayed(identity)() for _ in range(40))
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    after = Parallel()(delayed(identity)() for _ in range(4))
    here = identity()
    thread_ident = thread.ident
    assert seen["other"] == [(os.getpid(), thread_ident)] * 4  # default: sequential
    assert after == [here] * 4
    if backend_name in ("loky", "multiprocessing", "ray"):
        assert all(pid != os.getpid() for pid, _ in inside)
    elif backend_name in ("threading", "custom", "dask"):  # dask: in-process workers
        assert all(ident != here[1] for _, ident in inside)
    else:
        assert inside == [here] * 40


def test_generator_results_arrive_before_the_input_ends(backend: Any) -> None:
    consumed: list[int] = []

    def tasks() -> Any:
        for i in range(1000):
            consumed.append(i)
            yield delayed(square)(i)

    gen = Parallel(n_jobs=2, backend=backend, return_as="generator", pre_dispatch=3)(tasks())
    assert next(gen) == 0
    # The first batches hold one task each (nothing measured yet), and the input
    # is read at most pre_dispatch batches past the oldest unfinished one,
    # however fast or slow each worker is.
    assert len(consumed) <= 3
    assert list(gen) == [i * i for i in range(1, 1000)]


def test_two_calls_sharing_one_backend_instance(backend: Any, backend_name: str) -> None:
    # parallel_backend builds one backend that every call in its block uses: a
    # call that ends must leave another one, still running on it, alone.
    if backend_name == "custom":
        pytest.skip("the joblib-protocol test double makes one pool per configure()")
    with parallel_backend(backend, n_jobs=2):
        first = Parallel(return_as="generator")(delayed(square)(i) for i in range(4))
        second = Parallel(return_as="generator")(delayed(square)(i) for i in range(20))
        assert next(second) == 0
        assert list(first) == [0, 1, 4, 9]
        assert list(second) == [i * i for i in range(1, 20)]
