"""The one adapter: a joblib-style backend seen as an :class:`ExecutorBackend`.

Third-party backends (yours, scikit-learn's) speak joblib's protocol:
``submit(func, callback)`` or the older ``apply_async``, results through
``retrieve_result_callback`` or a blocking ``.get()``, ``abort_everything``.
The dispatch loop speaks only :class:`ExecutorBackend`, so ``Parallel`` wraps
a foreign backend here when a call starts. Users keep seeing their own object
(``get_active_backend``, ``parallel_backend``'s ``with`` value). Example::

    executor = as_executor_backend(MyJoblibBackend())
    future = executor.submit_batch(batch)   # a concurrent.futures.Future
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .backends.base import ExecutorBackend, ParallelBackendBase

__all__ = ["JoblibBackendAdapter", "as_executor_backend"]


def as_executor_backend(backend: ParallelBackendBase) -> ExecutorBackend:
    """``backend`` itself if it is a joblite backend, else the adapter around it."""
    if isinstance(backend, ExecutorBackend):
        return backend
    return JoblibBackendAdapter(backend)


class JoblibBackendAdapter(ExecutorBackend):
    """Runs batches on a joblib-protocol backend; its futures become standard ones."""

    clock_starts_at_run = False  # its workers are out of sight
    stops_running_tasks = True  # through abort_everything, if the backend can
    inline_single_job = False  # the backend the user chose runs the tasks, n_jobs=1 too

    def __init__(self, backend: ParallelBackendBase) -> None:
        super().__init__()
        self.backend = backend
        # A backend without threads pickles our batches: give it payloads, with
        # large arrays as shared files, as joblite's process backends get.
        in_processes = not getattr(backend, "uses_threads", False)
        self.ships_payloads = self.shares_arrays = in_processes

    def effective_n_jobs(self, n_jobs: int) -> int:
        return int(self.backend.effective_n_jobs(n_jobs))

    def set_initializer(
        self, initializer: Callable[..., object] | None, initargs: tuple[Any, ...]
    ) -> None:
        if initializer is not None:
            raise ValueError(
                "initializer is not supported by the third-party backend "
                f"{type(self.backend).__name__}; run the set-up inside the task instead"
            )

    def prepare_call(self, n_jobs: int, **options: Any) -> int:
        # The foreign backend sizes itself (its configure may start its pool).
        return int(self.backend.configure(n_jobs=n_jobs, parallel=self.parallel, **options))

    def start_call(self) -> None:
        self.backend.start_call()

    def stop_call(self) -> None:
        self.backend.stop_call()

    def terminate(self) -> None:
        self.backend.terminate()

    def batch_completed(self, batch_size: int, duration: float) -> None:
        self.backend.batch_completed(batch_size, duration)

    def replace_workers(self) -> None:
        self.backend.abort_everything(ensure_ready=True)

    def submit_batch(self, func: Callable[[], Any]) -> Future[Any]:
        backend = self.backend
        future: Future[Any] = Future()

        def settle(compute: Callable[[], Any]) -> None:
            try:
                result = compute()
            except BaseException as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

        if backend.supports_retrieve_callback:
            backend.submit(
                func, callback=lambda out: settle(lambda: backend.retrieve_result_callback(out))
            )
        else:
            out = backend.submit(func, callback=None)
            # Old-style backends only offer a blocking get(): wait for it aside.
            threading.Thread(
                target=settle, args=(lambda: backend.retrieve_result(out),), daemon=True
            ).start()
        return future
