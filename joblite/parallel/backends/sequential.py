"""The sequential backend: runs each batch at once in the caller's thread.

``Parallel`` bypasses it for a plain loop when ``n_jobs`` resolves to 1; it
exists so ``backend="sequential"`` and nested calls have something to name.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ClassVar

from .base import ExecutorBackend

__all__ = ["SequentialBackend"]


class SequentialBackend(ExecutorBackend):
    """Runs everything in the calling thread, in order.

    Example::

        >>> Parallel(backend=SequentialBackend())(delayed(abs)(-1) for _ in range(2))
        [1, 1]
    """

    kind: ClassVar[str] = "sequential"
    uses_threads: ClassVar[bool] = True
    supports_sharedmem: ClassVar[bool] = True

    def effective_n_jobs(self, n_jobs: int) -> int:
        from .._config import normalize_n_jobs

        normalize_n_jobs(n_jobs)  # still reject 0 and junk
        return 1

    def submit_batch(self, func: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(func())
        except BaseException as exc:
            future.set_exception(exc)
        return future
