"""The multiprocessing backend: the standard library's ``ProcessPoolExecutor``.

Workers start with the platform's default start method, as in joblib (fork on
Linux before Python 3.14, so scripts without a ``__main__`` guard work);
``start_method=`` picks another, or ``context=`` a ``multiprocessing`` context
(what ``Parallel(backend=multiprocessing.get_context("spawn"))`` gives). They
live as long as the backend: one call, or a ``with Parallel`` block.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, ClassVar

from ._worker import init_process_worker
from .base import ExecutorBackend

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

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
        context: BaseContext | None = None,
        **backend_kwargs: Any,
    ) -> None:
        super().__init__(nesting_level, inner_max_num_threads, **backend_kwargs)
        if context is not None and start_method is not None:
            raise ValueError(
                f"give start_method or context, not both (got {start_method!r} and {context!r})"
            )
        self.start_method = start_method
        self.context = context
        self._lock = threading.Lock()
        self._pool: Any = None
        self._pool_key: tuple[object, ...] | None = None

    def effective_n_jobs(self, n_jobs: int) -> int:
        from ._nesting import limit_nested_n_jobs

        return limit_nested_n_jobs("Multiprocessing", super().effective_n_jobs(n_jobs))

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
                    mp_context=self.context or multiprocessing.get_context(self.start_method),
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
        if not kill:
            pool.shutdown(wait=False, cancel_futures=True)
            return
        # No public way to stop a busy worker before Python 3.14, and 3.14's
        # terminate_workers signals them from here just the same.
        processes = list((pool._processes or {}).values())
        results = getattr(pool, "_result_queue", None)
        manager = getattr(pool, "_executor_manager_thread", None)
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.kill()  # SIGKILL: a task cannot catch or ignore it
        for process in processes:
            process.join()
        if results is not None:
            # A worker killed half-way through sending a result leaves the
            # manager thread reading the rest of it, forever: this process holds
            # the pipe's write end, so no EOF comes. Closing it (the workers, the
            # other holders, are dead) ends that read; the pool is then broken.
            results._writer.close()
        if manager is not None:
            manager.join()
        if results is not None:
            results.close()

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
