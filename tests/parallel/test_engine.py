"""The dispatch loop's rare paths: per-task deadlines, replaced workers, lost batches."""

from __future__ import annotations

import time

from joblite.parallel import Parallel, delayed

from ._tasks import square


def _slow_initializer() -> None:
    time.sleep(1.0)  # twice the timeout below: a clock started at submission runs out


def test_thread_task_clock_starts_when_the_task_starts() -> None:
    # Both tasks wait in the queue while their threads run the initializer.
    out = Parallel(n_jobs=2, backend="threading", timeout=0.5, initializer=_slow_initializer)(
        delayed(square)(i) for i in range(4)
    )
    assert out == [0, 1, 4, 9]
