"""The dispatch loop's rare paths: per-task deadlines, replaced workers, lost batches."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from joblite.exceptions import TaskTimeoutError
from joblite.parallel import Parallel, delayed
from joblite.parallel._dispatch import DispatchLoop

from ._tasks import RELEASE, block, square


def _slow_initializer() -> None:
    time.sleep(1.0)  # twice the timeout below: a clock started at submission runs out


def test_thread_task_clock_starts_when_the_task_starts() -> None:
    # Both tasks wait in the queue while their threads run the initializer.
    out = Parallel(n_jobs=2, backend="threading", timeout=0.5, initializer=_slow_initializer)(
        delayed(square)(i) for i in range(4)
    )
    assert out == [0, 1, 4, 9]


_INIT_CALLS = [0]
_INIT_LOCK = threading.Lock()


def _second_initializer_blocks() -> None:
    with _INIT_LOCK:
        _INIT_CALLS[0] += 1
        call = _INIT_CALLS[0]
    if call == 2:  # one of the first pool's two threads never becomes free
        RELEASE.wait(60)


def test_timeout_in_threads_loses_no_queued_task() -> None:
    # Task 0 runs on the free thread and gets stuck; task 1 waits in the queue
    # for the other thread. The timeout replaces the pool, which cancels task 1:
    # it must run on the new pool, not vanish from the output.
    _INIT_CALLS[0] = 0
    tasks = [delayed(block)()] + [delayed(square)(i) for i in range(1, 6)]
    out = Parallel(
        n_jobs=2,
        backend="threading",
        timeout=0.5,
        on_error="collect",
        initializer=_second_initializer_blocks,
    )(tasks)
    assert len(out) == 6
    assert isinstance(out[0], TaskTimeoutError)
    assert out[1:] == [1, 4, 9, 16, 25]


def test_a_lost_batch_raises_instead_of_shortening_the_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results_of = DispatchLoop._results_of

    def lose_task_3(self: DispatchLoop, future: Any, batch: Any) -> Any:
        results = results_of(self, future, batch)
        return None if batch.start == 3 else results

    monkeypatch.setattr(DispatchLoop, "_results_of", lose_task_3)
    for return_as in ["list", "generator_unordered"]:
        with pytest.raises(
            RuntimeError, match=r"internal error: \d results delivered for 10 tasks"
        ):
            list(
                Parallel(n_jobs=2, backend="threading", batch_size=1, return_as=return_as)(
                    delayed(square)(i) for i in range(10)
                )
            )


def test_generator_reads_no_further_than_pre_dispatch_past_a_slow_first_task() -> None:
    # joblib documents pre_dispatch in batches: with task 0 stuck, the tasks
    # after it finish, but the input is not read past pre_dispatch batches
    # until task 0 is done. Task 0 is released from the progress callback once
    # two later batches have finished, so the order of events is fixed.
    consumed: list[int] = []

    def tasks() -> Any:
        yield delayed(block)()
        for i in range(1, 100):
            consumed.append(i)
            yield delayed(square)(i)

    def release_after_two(done: int, total: int | None) -> None:
        if done >= 2:
            RELEASE.set()

    gen = Parallel(
        n_jobs=2,
        backend="threading",
        return_as="generator",
        pre_dispatch=3,
        batch_size=1,
        progress=release_after_two,
    )(tasks())
    assert next(gen) == "released"
    assert consumed == [1, 2]  # three batches: task 0, then 1 and 2 waiting behind it
    assert list(gen) == [i * i for i in range(1, 100)]
