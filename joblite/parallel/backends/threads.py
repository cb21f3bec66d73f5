"""The threading backend: a ``ThreadPoolExecutor`` kept for as long as its Parallel.

Threads share memory (``require="sharedmem"``); tasks are not pickled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ClassVar

from .base import ExecutorBackend

__all__ = ["ThreadingBackend"]


def _init_thread_worker(
    initializer: Callable[..., object] | None, initargs: tuple[Any, ...]
) -> None:
    from .._config import WORKER_STATE

    WORKER_STATE.thread.is_worker = True  # nested Parallel calls here run sequentially
    if initializer is not None:
        initializer(*initargs)


class ThreadingBackend(ExecutorBackend):
    """Runs batches on ``n_jobs`` threads.

    A thread stuck past ``timeout`` cannot be killed: it is abandoned (its
    result ignored) and fresh threads take over.

    Example::

        >>> Parallel(n_jobs=2, backend=ThreadingBackend())(delayed(abs)(-i) for i in range(3))
        [0, 1, 2]
    """

    kind: ClassVar[str] = "threads"
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
        self._pool: ThreadPoolExecutor | None = None
        self._pool_key: tuple[object, ...] | None = None

    def _get_pool(self) -> ThreadPoolExecutor:
        key = (self.n_jobs, self.initializer, self.initargs)
        with self._lock:
            if self._pool is not None and self._pool_key != key:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.n_jobs,
                    thread_name_prefix="joblite-worker",
                    initializer=_init_thread_worker,
                    initargs=(self.initializer, self.initargs),
                )
                self._pool_key = key
            return self._pool

    def submit_batch(self, func: Callable[[], Any]) -> Future[Any]:
        return self._get_pool().submit(func)

    def replace_workers(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def terminate(self) -> None:
        self.replace_workers()
