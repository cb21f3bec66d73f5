"""The thread pipeline behind compressed dump and load: how much it keeps in flight."""

from __future__ import annotations

import threading

from joblite._core._sections import Pipeline


def _wait(event: threading.Event) -> bool:
    return event.wait(timeout=10)  # only reached on failure: the test does not hang


def test_many_small_tasks_run_ahead_of_the_oldest() -> None:
    # A RandomForest is hundreds of small arrays: the caller must not stall on
    # the oldest chunk after 2 * threads of them while the other threads idle.
    event = threading.Event()
    pipeline = Pipeline(2, max_bytes=1024)
    try:
        collected = []
        for _ in range(20):
            collected += pipeline.submit(_wait, event, nbytes=10)
        assert collected == []  # nothing had to be waited for: all 20 were queued
        event.set()
        assert list(pipeline.drain()) == [True] * 20
    finally:
        pipeline.close()


def test_big_tasks_stay_bounded_to_two_per_thread() -> None:
    # Chunks of 8 MiB: memory in flight stays bounded whatever the budget.
    pipeline = Pipeline(2, max_bytes=100)
    try:
        results = []
        for index in range(10):
            results += pipeline.submit(int, index, nbytes=60)
        assert results == list(range(7))  # each submit past the fourth waited for one
        assert list(pipeline.drain()) == [7, 8, 9]
    finally:
        pipeline.close()
