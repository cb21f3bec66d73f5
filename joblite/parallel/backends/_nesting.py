"""Where a process pool must not start: joblib's nesting rules and warnings.

A pool started inside a worker either cannot work or outlives its caller. In a
``multiprocessing`` worker loky's idle workers are that worker's non-daemon
children, so the worker's exit joins them for their 300 s idle timeout (and
the semaphores they need are gone): the outer call hangs. joblib runs such
inner calls with ``n_jobs=1`` and warns; joblite does the same, word for word.
"""

from __future__ import annotations

import sys

from ..._core.messages import warn_at_caller
from .._worker_state import WORKER_STATE

__all__ = ["in_ray_task", "limit_nested_n_jobs", "nested_process_pool_warning"]


def _in_loky_worker() -> bool:
    executor = sys.modules.get("loky.process_executor")
    return executor is not None and getattr(executor, "_CURRENT_DEPTH", 0) > 0


def in_ray_task() -> bool:
    """True while this thread runs a batch of the Ray backend (set by its worker side)."""
    return getattr(WORKER_STATE.thread, "in_ray_task", False)


def _in_process_worker() -> bool:
    """A daemon process (cannot have children) or a joblite multiprocessing worker."""
    import multiprocessing

    if multiprocessing.current_process().daemon:
        return True
    return WORKER_STATE.in_process_worker and not _in_loky_worker()


def nested_process_pool_warning(name: str) -> str | None:
    """joblib's warning when a ``name`` ("Loky" or "Multiprocessing") pool cannot start here.

    Example::

        >>> nested_process_pool_warning("Loky") is None   # in the main process
        True
    """
    if in_ray_task():
        # A Ray task holds one of the cluster's CPUs: a pool of its own would
        # oversubscribe the node, and waiting on more Ray tasks can deadlock.
        return f"{name}-backed parallel loops cannot be nested below Ray tasks, setting n_jobs=1"
    if _in_process_worker():
        if name == "Loky":
            return (
                "Loky-backed parallel loops cannot be called in a multiprocessing, setting n_jobs=1"
            )
        return "Multiprocessing-backed parallel loops cannot be nested, setting n_jobs=1"
    if name == "Multiprocessing" and _in_loky_worker():
        return (
            "Multiprocessing-backed parallel loops cannot be nested, below loky, setting n_jobs=1"
        )
    if getattr(WORKER_STATE.thread, "is_worker", False):
        return f"{name}-backed parallel loops cannot be nested below threads, setting n_jobs=1"
    return None


def limit_nested_n_jobs(name: str, n_jobs: int) -> int:
    """``n_jobs``, or 1 with joblib's warning where a ``name`` pool cannot start.

    Example::

        >>> limit_nested_n_jobs("Loky", 4)   # in the main process
        4
    """
    message = nested_process_pool_warning(name)
    if message is None:
        return n_jobs
    if n_jobs != 1:
        warn_at_caller(message)
    return 1
