"""Calls that end early while workers send large results, run as a script.

``python -m tests.parallel._exit_scenarios CASE BACKEND`` runs one case, prints
the pids of the worker processes it saw and the names of the threads still
running, then ``end of script``; the test
checks that the interpreter then exits (within a deadline) and leaves no
worker behind. Not collected by pytest (leading underscore).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import psutil

from joblite.exceptions import TaskTimeoutError, WorkerCrashedError
from joblite.parallel import Parallel, delayed

BIG = 20_000_000  # bytes per result: larger than a pipe buffer, so writes take a while


def big(i: int) -> bytes:
    return bytes(BIG)


def big_or_stuck(i: int) -> bytes:
    if i == 3:
        time.sleep(120)  # far past the timeout: the worker must be killed
    return bytes(BIG)


def big_or_crash(i: int) -> bytes:
    if i == 3:
        os._exit(1)
    return bytes(BIG)


def big_or_fail(i: int) -> bytes:
    if i == 3:
        raise ValueError("task 3 fails")
    return bytes(BIG)


def _interrupt(done: int, total: int | None) -> None:
    raise KeyboardInterrupt


def _workers() -> list[int]:
    return [child.pid for child in psutil.Process().children(recursive=True)]


def _settled_threads() -> list[str]:
    """Names of the threads still running once a pool that was shut down has wound up.

    A killed loky pool's queue feeder may still be closing its pipe when the call
    returns: wait for that (bounded: a thread that can block would still be listed
    after 10 s and fail the test), but not for a warm reusable pool, which stays.
    """
    warm = ["ExecutorManagerThread", "QueueFeederThread"]
    deadline = time.monotonic() + 10
    while True:
        names = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
        if names in ([], warm) or time.monotonic() > deadline:
            return names
        time.sleep(0.05)


def run(case: str, backend: str) -> None:
    seen: list[int] = []
    parallel: Any = Parallel(n_jobs=2, backend=backend, return_as="generator_unordered")
    tasks = range(20)
    if case == "abandoned":
        results = parallel(delayed(big)(i) for i in tasks)
        next(results)
        seen = _workers()
        del results
    elif case == "timeout":
        try:
            list(
                Parallel(n_jobs=2, backend=backend, timeout=3)(
                    delayed(big_or_stuck)(i) for i in tasks
                )
            )
        except TaskTimeoutError:
            seen = _workers()
        else:
            raise AssertionError("no TaskTimeoutError")
    elif case == "crash":
        try:
            Parallel(n_jobs=2, backend=backend)(delayed(big_or_crash)(i) for i in tasks)
        except WorkerCrashedError:
            seen = _workers()
        else:
            raise AssertionError("no WorkerCrashedError")
    elif case == "error":
        try:
            Parallel(n_jobs=2, backend=backend)(delayed(big_or_fail)(i) for i in tasks)
        except ValueError:
            seen = _workers()
    elif case == "interrupted":
        try:
            Parallel(n_jobs=2, backend=backend, progress=_interrupt)(delayed(big)(i) for i in tasks)
        except KeyboardInterrupt:
            seen = _workers()
        else:
            raise AssertionError("no KeyboardInterrupt")
    else:
        raise SystemExit(f"unknown case {case!r}")
    print("workers", *seen, flush=True)
    print("threads", *_settled_threads(), flush=True)
    print("end of script", flush=True)


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2])
