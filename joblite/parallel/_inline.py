"""The inline path: ``n_jobs`` resolving to 1 runs the tasks as a loop in the caller.

No batches, no workers. Without progress, timeout or retries it is a plain
loop (:func:`~._batching.run_plain`, the hot path); otherwise each task goes
through :func:`~._batching.run_tasks`, the function workers run batches with,
so retries and collected errors behave the same inline and on workers.
Example::

    >>> run_inline(iter([(abs, (-1,), {})]), None, CallOptions(None, 1, None, False, 0, True),
    ...            None, as_list=True)
    [1]
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from ..exceptions import TaskTimeoutError
from ._batching import iterate_plain, run_plain, run_tasks
from ._options import CallOptions
from ._progress import Progress

__all__ = ["run_inline"]


def run_inline(
    tasks: Iterator[Any],
    total: int | None,
    options: CallOptions,
    progress: Progress | None,
    *,
    as_list: bool,
) -> list[Any] | Iterator[Any]:
    """The results as a list (``as_list``) or a generator of them, in order."""
    plain = progress is None and options.timeout is None and options.retries == 0
    if plain and not options.collect:
        return run_plain(tasks) if as_list else iterate_plain(tasks)
    results = _run_one_by_one(tasks, total, options, progress)
    return list(results) if as_list else results


def _run_one_by_one(
    tasks: Iterator[Any], total: int | None, options: CallOptions, progress: Progress | None
) -> Iterator[Any]:
    timeout = options.timeout
    done = 0
    try:
        for index, task in enumerate(tasks):
            start = time.monotonic()
            results, failures, _ = run_tasks([task], options.retries, False, remote=False)
            result = results[0]
            if failures:
                result = failures[0].exception
                if not options.collect:
                    raise result
            # A plain loop cannot interrupt a task: the timeout is checked after it.
            if timeout is not None and time.monotonic() - start > timeout:
                error = TaskTimeoutError(
                    f"task {index} ({_name(task)}) did not finish within timeout={timeout}s"
                )
                if not options.collect:
                    raise error
                result = error
            done += 1
            if progress is not None:
                progress.update(done, total)
            yield result
        if progress is not None:
            progress.update(done, done)
    finally:
        if progress is not None:
            progress.close()


def _name(task: Any) -> str:
    try:
        function = task[0]
    except Exception:  # not a triple: it failed before the clock mattered
        function = None
    return str(getattr(function, "__qualname__", None) or repr(function))
