"""The threading backend: a pool of daemon threads kept for as long as its Parallel.

Threads share memory (``require="sharedmem"``); tasks are not pickled.
"""

from __future__ import annotations

import logging
import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ClassVar

from .._worker_state import WORKER_STATE
from .base import ExecutorBackend

__all__ = ["ThreadingBackend"]


def _init_thread_worker(
    initializer: Callable[..., object] | None, initargs: tuple[Any, ...], nesting_level: int
) -> None:
    WORKER_STATE.thread.is_worker = True  # nested Parallel calls here run sequentially
    WORKER_STATE.thread.nesting_level = nesting_level
    if initializer is not None:
        initializer(*initargs)


logger = logging.getLogger(__name__)

_WorkItem = tuple["Future[Any]", Callable[[], Any]]


class DaemonThreadPool:
    """A minimal ``ThreadPoolExecutor`` whose threads never delay interpreter exit.

    ``ThreadPoolExecutor`` joins its threads at exit, so one task stuck past
    ``timeout`` (abandoned, it cannot be killed) would keep the program alive
    until it returns; joblib's pool threads are daemons and do not.
    Threads start on demand, up to ``max_workers``; each runs ``initializer``
    once. If that raises, the pool is broken: every task not yet started fails
    with that error.

    Example::

        >>> pool = DaemonThreadPool(2)
        >>> pool.submit(lambda: 1 + 1).result()
        2
        >>> pool.shutdown()
    """

    def __init__(
        self,
        max_workers: int,
        initializer: Callable[[], object] | None = None,
        thread_name_prefix: str = "joblite-worker",
    ) -> None:
        self._max_workers = max_workers
        self._initializer = initializer
        self._prefix = thread_name_prefix
        self._queue: queue.SimpleQueue[_WorkItem | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._n_threads = 0
        self._idle = threading.Semaphore(0)
        self._shutdown = False
        self._failures: list[BaseException] = []  # the initializer's, shared by all threads
        # Threads hold the queue, not the pool: a forgotten pool still stops its threads.
        weakref.finalize(self, _stop_threads, self._queue, max_workers)

    def submit(self, func: Callable[[], Any]) -> Future[Any]:
        """Run ``func()`` on a pool thread; raises ``RuntimeError`` after ``shutdown``."""
        future: Future[Any] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit to a DaemonThreadPool after shutdown")
            self._queue.put((future, func))
            if not self._idle.acquire(blocking=False) and self._n_threads < self._max_workers:
                self._n_threads += 1
                thread = threading.Thread(
                    target=_work,
                    args=(self._queue, self._idle, self._initializer, self._failures),
                    name=f"{self._prefix}_{self._n_threads - 1}",
                    daemon=True,
                )
                thread.start()
        return future

    def shutdown(self, cancel_futures: bool = True) -> None:
        """Stop the threads once their current task ends (never waits for them)."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item[0].cancel()
        _stop_threads(self._queue, self._max_workers)


def _stop_threads(work: queue.SimpleQueue[_WorkItem | None], n_threads: int) -> None:
    for _ in range(n_threads):
        work.put(None)


def _work(
    work: queue.SimpleQueue[_WorkItem | None],
    idle: threading.Semaphore,
    initializer: Callable[[], object] | None,
    failures: list[BaseException],
) -> None:
    if initializer is not None:
        try:
            initializer()
        except BaseException as exc:
            logger.exception("thread worker initializer failed")
            failures.append(exc)
    while True:
        item = work.get()
        if item is None:
            return
        future, func = item
        del item
        if future.set_running_or_notify_cancel():
            if failures:
                future.set_exception(failures[0])
            else:
                try:
                    result = func()
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                    del result
        del future, func
        idle.release()


class ThreadingBackend(ExecutorBackend):
    """Runs batches on ``n_jobs`` threads.

    A thread stuck past ``timeout`` cannot be killed: it is abandoned (its
    result ignored) and fresh threads take over.

    Example::

        >>> Parallel(n_jobs=2, backend=ThreadingBackend())(delayed(abs)(-i) for i in range(3))
        [0, 1, 2]
    """

    uses_threads: ClassVar[bool] = True
    supports_sharedmem: ClassVar[bool] = True

    def __init__(
        self,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        **backend_kwargs: Any,
    ) -> None:
        super().__init__(nesting_level, inner_max_num_threads, **backend_kwargs)
        self._lock = threading.Lock()
        self._pool: DaemonThreadPool | None = None
        self._pool_key: tuple[object, ...] | None = None

    def _get_pool(self) -> DaemonThreadPool:
        key = (self.n_jobs, self.initializer, self.initargs)
        with self._lock:
            if self._pool is not None and self._pool_key != key:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None
            if self._pool is None:
                initializer, initargs = self.initializer, self.initargs
                level = WORKER_STATE.nesting_level() + 1  # read in the caller's thread
                self._pool = DaemonThreadPool(
                    max_workers=self.n_jobs,
                    initializer=lambda: _init_thread_worker(initializer, initargs, level),
                )
                self._pool_key = key
            return self._pool

    def submit_batch(self, func: Callable[[], Any]) -> Future[Any]:
        return self._get_pool().submit(func)

    def replace_workers(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    def terminate(self) -> None:
        self.replace_workers()
