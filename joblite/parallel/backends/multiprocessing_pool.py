"""The multiprocessing backend: the standard library's ``ProcessPoolExecutor``.

Workers start with the platform's default start method, as in joblib (fork on
Linux before Python 3.14, so scripts without a ``__main__`` guard work);
``start_method=`` picks another. They live as long as the backend: one call, or
a ``with Parallel`` block.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ClassVar

from ._worker import init_process_worker
from .base import ExecutorBackend

__all__ = ["MultiprocessingBackend"]


class MultiprocessingBackend(ExecutorBackend):
    """Process workers from ``concurrent.futures.ProcessPoolExecutor``.

    Example::

        >>> Parallel(n_jobs=2, backend="multiprocessing")(delayed(abs)(-i) for i in range(3))
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
        start_method: str | None = None,
        **backend_kwargs: Any,
    ) -> None:
        super().__init__(nesting_level, inner_max_num_threads, **backend_kwargs)
        self.start_method = start_method
        self._lock = threading.Lock()
        self._pool: Any = None
        self._pool_key: tuple[object, ...] | None = None

    def _get_pool(self) -> Any:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        payload = self.initializer_payload()  # same object each time: a cheap compare
        key = (self.n_jobs, payload, self.inner_max_num_threads)
        with self._lock:
            pool = self._pool
            if pool is not None and (pool._broken or self._pool_key != key):
                self._stop(pool)
                pool = self._pool = None
            if pool is None:
                pool = self._pool = ProcessPoolExecutor(
                    max_workers=self.n_jobs,
                    # None: multiprocessing's default context (set_start_method counts)
                    mp_context=multiprocessing.get_context(self.start_method),
                    initializer=init_process_worker,
                    initargs=(payload, self.worker_environment(self.n_jobs)),
                )
                self._pool_key = key
            return pool

    def submit_batch(self, func: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = self._get_pool().submit(func)
        return future

    @staticmethod
    def _stop(pool: Any, kill: bool = False) -> None:
        if kill:
            terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
            if terminate is not None:
                terminate()
                return
            # Older Pythons have no public way to stop a busy worker.
            for process in list((pool._processes or {}).values()):
                process.terminate()
        pool.shutdown(wait=kill, cancel_futures=True)

    def replace_workers(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            self._stop(pool, kill=True)

    def terminate(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
