"""The backend interface: joblib's custom-backend protocol, executor-sized.

A backend runs zero-argument callables (batches of tasks) somewhere and says
when they are done. The whole contract a third-party backend needs::

    class MyBackend(ParallelBackendBase):
        supports_retrieve_callback = True

        def effective_n_jobs(self, n_jobs):
            return n_jobs

        def submit(self, func, callback=None):
            future = my_pool.submit(func)          # anything future-like
            if callback is not None:
                future.add_done_callback(callback)
            return future

        def retrieve_result_callback(self, future):
            return future.result()

Backends written for joblib that implement ``apply_async`` (and return an
object with ``.get()``) keep working too. joblite's own backends subclass
:class:`ExecutorBackend`: ``submit_batch`` returns a
:class:`concurrent.futures.Future` and they can replace stuck or dead workers.
It is the one protocol the dispatch loop speaks; the others are adapted to it
at the start of a call (:mod:`joblite.parallel._adapter`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any, ClassVar

from .._njobs import cpu_count, normalize_n_jobs
from .._wire import encode_initializer

__all__ = [
    "BLAS_THREAD_VARIABLES",
    "ExecutorBackend",
    "ParallelBackendBase",
    "SequentialBackend",
]

# Environment variables that cap the thread pools of BLAS / OpenMP libraries.
BLAS_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMBA_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


class ParallelBackendBase:
    """Base class for backends, compatible with joblib's documented protocol.

    Subclasses implement ``effective_n_jobs`` and ``submit`` (or the older
    ``apply_async``). Every other method has a working default.
    """

    default_n_jobs: ClassVar[int] = 1
    supports_inner_max_num_threads: ClassVar[bool] = False
    supports_retrieve_callback: ClassVar[bool] = False
    supports_sharedmem: ClassVar[bool] = False
    uses_threads: ClassVar[bool] = False

    def __init__(
        self,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        **backend_kwargs: Any,
    ) -> None:
        self.nesting_level = nesting_level
        self.inner_max_num_threads = inner_max_num_threads
        self.backend_kwargs = backend_kwargs
        self.parallel: Any = None

    @property
    def supports_timeout(self) -> bool:
        return self.supports_retrieve_callback

    @property
    def supports_return_generator(self) -> bool:
        return True

    def effective_n_jobs(self, n_jobs: int) -> int:
        """How many tasks can really run at once for a requested ``n_jobs``."""
        raise NotImplementedError(f"{type(self).__name__} must implement effective_n_jobs")

    def submit(self, func: Callable[[], Any], callback: Callable[[Any], None] | None = None) -> Any:
        """Schedule ``func()``; call ``callback(out)`` when done; return a future-like."""
        return self.apply_async(func, callback)

    def apply_async(
        self, func: Callable[[], Any], callback: Callable[[Any], None] | None = None
    ) -> Any:
        """The pre-``submit`` name of the same hook (joblib < 1.3 backends)."""
        raise NotImplementedError(f"{type(self).__name__} must implement submit")

    def retrieve_result_callback(self, out: Any) -> Any:
        """Turn what ``callback`` received into the batch's result (or raise)."""
        if hasattr(out, "result"):
            return out.result()
        if hasattr(out, "get"):
            return out.get()
        return out

    def retrieve_result(self, out: Any, timeout: float | None = None) -> Any:
        """Block for the result of ``submit``'s return value (when there is no callback)."""
        if hasattr(out, "result"):
            return out.result(timeout=timeout)
        return out.get(timeout=timeout) if self.supports_timeout else out.get()

    def configure(
        self,
        n_jobs: int = 1,
        parallel: Any = None,
        prefer: str | None = None,
        require: str | None = None,
        **backend_kwargs: Any,
    ) -> int:
        """Prepare for a ``Parallel`` call; return the number of workers."""
        self.parallel = parallel
        return self.effective_n_jobs(n_jobs)

    def start_call(self) -> None:
        """Called at the start of each ``Parallel.__call__``."""

    def stop_call(self) -> None:
        """Called at the end of each ``Parallel.__call__``."""

    def terminate(self) -> None:
        """Release workers when no context manager keeps them."""

    def compute_batch_size(self) -> int:
        return 1

    def batch_completed(self, batch_size: int, duration: float) -> None:
        """Told how long each batch took (joblib's auto-batching hook)."""

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """Stop running tasks; with ``ensure_ready`` the backend must stay usable."""

    def get_nested_backend(self) -> tuple[ParallelBackendBase, int | None]:
        return SequentialBackend(nesting_level=(self.nesting_level or 0) + 1), None

    def worker_environment(self, n_jobs: int) -> dict[str, str]:
        """BLAS/OpenMP thread caps for worker processes (``inner_max_num_threads``)."""
        explicit = self.inner_max_num_threads
        default = max(cpu_count() // max(n_jobs, 1), 1)
        return {
            name: str(explicit if explicit is not None else os.environ.get(name, default))
            for name in BLAS_THREAD_VARIABLES
        }


class ExecutorBackend(ParallelBackendBase):
    """A joblite backend, the one protocol the dispatch loop speaks.

    ``submit_batch(func)`` returns a ``concurrent.futures.Future``;
    ``replace_workers()`` stops every worker (stuck ones too) and ``terminate()``
    releases them. Foreign (joblib-style) backends are wrapped into one by
    :mod:`joblite.parallel._adapter`. The attributes below tell the dispatch loop
    what it needs to know about how tasks travel; the defaults describe threads
    in the caller's process.
    """

    #: Batches travel pickled: the loop pickles each one before submitting it
    #: (``Batch.payload``), so the backend never pickles a task itself.
    ships_payloads: bool = False
    #: Workers run on this machine in other processes: large arrays reach them
    #: as memory-mapped files in ``temp_folder`` instead of copies.
    shares_arrays: bool = False
    #: A task's ``timeout`` clock starts when its batch starts running (the
    #: worker runs our ``Batch`` object, which notes the time); otherwise at
    #: submission, as the caller cannot see a worker start a task.
    clock_starts_at_run: bool = True
    #: Workers are processes of one pool: a death breaks the pool
    #: (``BrokenProcessPool``), and batches in flight die with killed workers.
    process_pool: bool = False
    #: ``replace_workers`` can stop a running task, so an abandoned call does
    #: so (a thread cannot be killed: it is left to finish).
    stops_running_tasks: bool = False
    #: With ``n_jobs`` resolving to 1, ``Parallel`` runs the tasks as a plain
    #: loop in the caller instead; False for backends that decide where tasks
    #: run themselves (a cluster, a third-party backend).
    inline_single_job: bool = True
    supports_retrieve_callback: ClassVar[bool] = True

    def __init__(
        self,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        **backend_kwargs: Any,
    ) -> None:
        super().__init__(nesting_level, inner_max_num_threads, **backend_kwargs)
        self.n_jobs = 1
        self.initializer: Callable[..., object] | None = None
        self.initargs: tuple[Any, ...] = ()
        self._initializer_payload: tuple[bytes | None] | None = None  # made on first use

    def effective_n_jobs(self, n_jobs: int) -> int:
        return normalize_n_jobs(n_jobs)

    def set_initializer(
        self, initializer: Callable[..., object] | None, initargs: tuple[Any, ...]
    ) -> None:
        """Run ``initializer(*initargs)`` once in each worker this backend starts."""
        self.initializer = initializer
        self.initargs = tuple(initargs)
        self._initializer_payload = None

    def initializer_payload(self) -> bytes | None:
        """``(initializer, initargs)`` pickled for process workers; None without one.

        Pickled once per :meth:`set_initializer`, not per pool or batch: large
        ``initargs`` are the usual reason for an initializer.
        """
        if self._initializer_payload is None:
            self._initializer_payload = (encode_initializer(self.initializer, self.initargs),)
        return self._initializer_payload[0]

    def configure(
        self,
        n_jobs: int = 1,
        parallel: Any = None,
        prefer: str | None = None,
        require: str | None = None,
        **backend_kwargs: Any,
    ) -> int:
        self.parallel = parallel
        self.n_jobs = self.prepare_call(n_jobs, prefer=prefer, require=require, **backend_kwargs)
        return self.n_jobs

    def prepare_call(self, n_jobs: int, **options: Any) -> int:
        """The configure hook: per-call set-up; returns the number of workers.

        ``options`` are ``configure``'s other keywords (``prefer``, ``require``,
        the backend's own). Override it, not ``configure``, and call ``super()``.
        """
        return self.effective_n_jobs(n_jobs)

    def submit(
        self, func: Callable[[], Any], callback: Callable[[Any], None] | None = None
    ) -> Future[Any]:
        future = self.submit_batch(func)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    def submit_batch(self, func: Callable[[], Any]) -> Future[Any]:
        raise NotImplementedError

    def retrieve_result_callback(self, out: Any) -> Any:
        return out.result()

    def abort_everything(self, ensure_ready: bool = True) -> None:
        self.replace_workers()

    def replace_workers(self) -> None:
        """Stop all workers now (stuck ones too); the next submit starts fresh ones."""

    def terminate(self) -> None:
        """Shut workers down (the reusable loky pool only forgets them)."""


class SequentialBackend(ExecutorBackend):
    """Runs everything in the calling thread, in order.

    ``Parallel`` bypasses it for a plain loop when ``n_jobs`` resolves to 1; it
    exists so ``backend="sequential"`` and nested calls have something to name.
    It lives here, not in a file of its own, because
    :meth:`ParallelBackendBase.get_nested_backend` returns it.

    Example::

        >>> Parallel(backend=SequentialBackend())(delayed(abs)(-1) for _ in range(2))
        [1, 1]
    """

    uses_threads: ClassVar[bool] = True
    supports_sharedmem: ClassVar[bool] = True

    def effective_n_jobs(self, n_jobs: int) -> int:
        normalize_n_jobs(n_jobs)  # still reject 0 and junk
        return 1

    def submit_batch(self, func: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(func())
        except BaseException as exc:
            future.set_exception(exc)
        return future


def settle(future: Future[Any], result: Any, error: BaseException | None) -> None:
    """Complete ``future`` from a backend's callback thread, unless it was cancelled meanwhile."""
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except InvalidStateError:  # the caller cancelled it meanwhile
        pass
