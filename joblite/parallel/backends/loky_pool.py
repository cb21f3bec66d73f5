"""The loky backend (the default): loky's reusable process pool.

Workers outlive a call, so the next call starts warm; tasks travel in the
wire format of ``_wire`` (lambdas and closures by value), so they work here. A stuck or dead worker
is replaced by killing the pool: loky builds a fresh one on the next submit.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ClassVar

from ._worker import init_process_worker
from .base import ExecutorBackend

__all__ = ["LokyBackend", "shutdown_loky_workers"]

logger = logging.getLogger(__name__)

# Idle workers exit after this many seconds (joblib uses the same value).
IDLE_WORKER_TIMEOUT = 300

_EXECUTORS: list[Any] = []
_EXECUTORS_LOCK = threading.Lock()


class LokyBackend(ExecutorBackend):
    """Process workers from loky's reusable executor.

    Example::

        >>> Parallel(n_jobs=2, backend=LokyBackend())(delayed(abs)(-i) for i in range(3))
        [0, 1, 2]
    """

    ships_payloads = True
    shares_arrays = True
    clock_starts_at_run = False
    process_pool = True
    stops_running_tasks = True
    supports_inner_max_num_threads: ClassVar[bool] = True

    def __init__(
        self,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        idle_worker_timeout: float = IDLE_WORKER_TIMEOUT,
        **backend_kwargs: Any,
    ) -> None:
        super().__init__(nesting_level, inner_max_num_threads, **backend_kwargs)
        self.idle_worker_timeout = idle_worker_timeout
        self._executor: Any = None

    def _get_executor(self) -> Any:
        executor = self._executor
        if executor is None or executor._flags.broken or executor._flags.shutdown:
            from loky import get_reusable_executor
            from loky.backend.context import ctx_loky

            _start_trackers_at_low_priority()
            executor = get_reusable_executor(
                max_workers=self.n_jobs,
                # loky's own context object, not the start-method name: joblib's
                # vendored loky re-registers "loky" on import, and workers would
                # then start through joblib (importing it) when both are loaded.
                context=ctx_loky,
                timeout=self.idle_worker_timeout,
                initializer=None if self.initializer is None else init_process_worker,
                initargs=(self.initializer_payload(),),
                env=self.worker_environment(self.n_jobs),
            )
            with _EXECUTORS_LOCK:
                # loky keeps one reusable executor per thread: remember them all.
                if not any(known is executor for known in _EXECUTORS):
                    _EXECUTORS[:] = [e for e in _EXECUTORS if not e._flags.shutdown]
                    _EXECUTORS.append(executor)
            self._executor = executor
        return executor

    def effective_n_jobs(self, n_jobs: int) -> int:
        from ._nesting import limit_nested_n_jobs

        return limit_nested_n_jobs("Loky", super().effective_n_jobs(n_jobs))

    def prepare_call(self, n_jobs: int, **options: Any) -> int:
        self._executor = None  # size or initializer may have changed: ask loky again
        return super().prepare_call(n_jobs, **options)

    def start_call(self) -> None:
        # A cold pool's workers take a few hundred ms to boot: start them now,
        # while the caller prepares the first batches, not at the first submit.
        executor = self._get_executor()
        ensure_running = getattr(executor, "_ensure_executor_running", None)
        if ensure_running is not None:  # loky's (private) hook; submit does it anyway
            with executor._flags.shutdown_lock:
                if not (executor._flags.broken or executor._flags.shutdown):
                    ensure_running()

    def submit_batch(self, func: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = self._get_executor().submit(func)
        return future

    def replace_workers(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            _kill(executor)

    def terminate(self) -> None:
        # Keep the reusable pool warm for the next call, as joblib does.
        self._executor = None


# The nice value of the resource trackers this module starts (the lowest priority).
TRACKER_NICENESS = 19


def _start_trackers_at_low_priority() -> None:
    """Start loky's two resource trackers (if not running) at the lowest CPU priority.

    loky starts both (its own and multiprocessing's) before its first worker:
    two fresh interpreters that import loky or multiprocessing (~80 and ~45 ms
    of CPU) only to wait for clean-up messages. At the same priority they took
    half of a 2-core machine from the workers booting beside them; niced, a
    cold 10-task call took 141 ms instead of 347 (best of 16 alternating
    fresh interpreters, load average 2.5 from other jobs).
    They read their pipe as before: only their share of a busy CPU changes.
    Trackers that were already running (the user's multiprocessing's, a
    parent's inherited by a worker) are left alone.
    """
    if not hasattr(os, "setpriority"):  # Windows: no trackers to speak of
        return
    from multiprocessing import resource_tracker as stdlib_tracker

    from loky.backend import resource_tracker as loky_tracker

    for module in (stdlib_tracker, loky_tracker):
        tracker = module._resource_tracker
        before = getattr(tracker, "_pid", None)
        tracker.ensure_running()
        pid = getattr(tracker, "_pid", None)
        if pid is not None and pid != before:
            try:
                os.setpriority(os.PRIO_PROCESS, pid, TRACKER_NICENESS)
            except OSError:  # it exited already, or a sandbox forbids it: only speed is lost
                logger.debug("could not lower the priority of resource tracker %d", pid)


def shutdown_loky_workers() -> None:
    """Stop the reusable pool's workers now (they would exit after being idle)."""
    with _EXECUTORS_LOCK:
        executors, _EXECUTORS[:] = list(_EXECUTORS), []
    for executor in executors:
        _kill(executor)


def _kill(executor: Any) -> None:
    # loky's manager thread kills every worker, busy ones too (SIGKILL to each
    # process tree), between two reads of the result pipe. Signalling workers
    # from here instead could kill one mid-way through writing a result while
    # the manager is blocked reading it: that read never ends (we hold the
    # pipe's write end), and loky's exit hook joins the thread forever.
    # Waiting also keeps a later get_reusable_executor from shutting it down
    # again without kill_workers before the manager has acted.
    executor.shutdown(wait=True, kill_workers=True)
