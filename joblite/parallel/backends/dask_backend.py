"""The dask backend: batches run as tasks on a ``distributed`` cluster.

``Parallel(backend="dask")`` uses the active ``distributed.Client``; pass
``DaskBackend(client=...)`` to pick one. Each batch travels as one dask task
holding the batch in the wire format of ``_wire`` (lambdas and closures
work, as with loky);
nothing is shared through files, as workers may be on other machines.

What a cluster cannot do that local pools can:

- kill a task: past ``timeout`` the task's slot gets ``TaskTimeoutError`` but
  the function keeps running on its dask worker thread until it returns, and
  the scheduler may queue later tasks behind it;
- narrow a crash down to one task of a batch: when a dask worker dies, dask
  re-runs its tasks elsewhere, and a batch that kills workers more often than
  ``distributed.scheduler.allowed-failures`` allows fails with
  ``WorkerCrashedError`` for every task in it.
"""

from __future__ import annotations

import collections
import logging
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError, Future
from typing import Any, ClassVar

from ...exceptions import MissingDependencyError, NoDaskClientError, WorkerCrashedError
from .._njobs import normalize_n_jobs
from .._worker_state import WORKER_STATE
from .base import ExecutorBackend, settle

__all__ = ["DaskBackend"]

logger = logging.getLogger(__name__)

_NO_CLIENT_IN_WORKER = (
    'backend="dask" in a joblite worker process has no distributed.Client: the '
    "caller's does not reach worker processes. Connect one there and pass it, e.g. "
    'Parallel(backend=DaskBackend(client=Client("scheduler-host:8786")))'
)
_NO_CLIENT = (
    'backend="dask" needs a distributed.Client: create one first, e.g.\n\n'
    "    from distributed import Client\n"
    "    client = Client()                      # a local cluster\n"
    '    client = Client("scheduler-host:8786")  # an existing one\n\n'
    "or pass DaskBackend(client=client)"
)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError("distributed", "dask", 'Parallel(backend="dask")') from exc
    return distributed


class DaskBackend(ExecutorBackend):
    """Runs batches on the workers of a dask ``distributed`` cluster.

    ``n_jobs=-1`` (and ``None``) means every thread of the cluster, ``-2`` all
    but one, a positive value at most that many. Tasks always go to the
    cluster, ``n_jobs=1`` included. ``submit_kwargs`` go to ``client.submit``
    for each batch (e.g. ``{"resources": {"GPU": 1}}``).

    Raises ``NoDaskClientError`` (a ``ValueError``) when no client is active,
    ``MissingDependencyError`` (an ``ImportError``) without ``distributed``.

    Example::

        >>> with distributed.Client(processes=False), parallel_config(backend="dask"):
        ...     Parallel()(delayed(abs)(-i) for i in range(3))
        [0, 1, 2]
    """

    # Batches travel pickled, but large arrays inside them too: workers may be
    # on other machines, out of reach of a shared file.
    ships_payloads = True
    clock_starts_at_run = False
    stops_running_tasks = True  # cancelling releases a queued dask task
    inline_single_job = False  # a cluster is chosen to run elsewhere, one task at a time too
    default_n_jobs: ClassVar[int] = -1

    def __init__(
        self,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        client: Any = None,
        wait_for_workers_timeout: float = 10.0,
        submit_kwargs: Mapping[str, Any] | None = None,
        **backend_kwargs: Any,
    ) -> None:
        super().__init__(nesting_level, inner_max_num_threads, **backend_kwargs)
        _import_distributed()
        self.client = client
        self.wait_for_workers_timeout = wait_for_workers_timeout
        self.submit_kwargs = dict(submit_kwargs or {})
        self._active_client: Any = None
        self._init_payload: tuple[str, bytes] | None = None
        self._seceded: int | None = None  # the dask worker thread this call left

    def _get_client(self) -> Any:
        if self.client is not None:
            return self.client
        if WORKER_STATE.in_process_worker:
            # A client the caller's process made (inherited by fork) is not
            # connected here, and waiting on it would never end.
            raise NoDaskClientError(_NO_CLIENT_IN_WORKER)
        distributed = _import_distributed()
        try:
            return distributed.get_client()
        except ValueError as exc:  # distributed's "No global client found"
            raise NoDaskClientError(_NO_CLIENT) from exc

    def effective_n_jobs(self, n_jobs: int) -> int:
        normalize_n_jobs(n_jobs)  # reject 0 and junk before asking the cluster
        client = self._get_client()
        total = int(sum(client.nthreads().values()))
        if total == 0:
            # An adaptive cluster may start empty: give it time to get a worker.
            try:
                client.wait_for_workers(1, timeout=self.wait_for_workers_timeout)
            except TimeoutError as exc:
                raise TimeoutError(
                    f"the dask cluster has no worker after {self.wait_for_workers_timeout}s; "
                    "start workers or raise DaskBackend(wait_for_workers_timeout=...)"
                ) from exc
            total = int(sum(client.nthreads().values()))
        requested = int(n_jobs // 1)  # floats round down, as everywhere
        if requested < 0:
            return max(total + 1 + requested, 1)
        return min(requested, total)  # more would only queue on the scheduler

    def set_initializer(
        self, initializer: Callable[..., object] | None, initargs: tuple[Any, ...]
    ) -> None:
        super().set_initializer(initializer, initargs)
        payload = self.initializer_payload()
        # A fresh token per Parallel call (or `with` block): each runs it once per worker.
        self._init_payload = None if payload is None else (uuid.uuid4().hex, payload)

    def prepare_call(self, n_jobs: int, **options: Any) -> int:
        self._active_client = self._get_client()
        return super().prepare_call(n_jobs, **options)

    def start_call(self) -> None:
        # A call made by a task on a dask worker waits for tasks that need
        # worker threads: leave the worker's thread pool meanwhile, as
        # distributed's worker_client does, or a busy cluster never runs them.
        distributed = _import_distributed()
        try:
            distributed.get_worker()
        except ValueError:  # not on a dask worker
            return
        distributed.secede()
        self._seceded = threading.get_ident()

    def stop_call(self) -> None:
        if self._seceded == threading.get_ident():
            self._seceded = None
            _import_distributed().rejoin()

    def submit_batch(self, func: Callable[[], Any]) -> Future[Any]:
        from .._batching import Batch

        if not isinstance(func, Batch) or func.payload is None:
            raise TypeError(f"DaskBackend runs pickled joblite batches, got {func!r}")
        client = self._active_client or self._get_client()
        dask_future = client.submit(
            run_dask_batch,
            func.payload,
            self._init_payload,
            key=f"joblite-{_batch_name(func)}-{uuid.uuid4().hex}",
            pure=False,
            **self.submit_kwargs,
        )
        first = func.start
        future: Future[Any] = Future()
        # The caller cancels `future` when it no longer wants the result (an
        # error elsewhere, a closed generator, a timeout): release the dask task too.
        future.add_done_callback(lambda done: done.cancelled() and dask_future.cancel())
        # Weakly: a future the caller dropped (a task past its timeout) is not kept alive.
        future_ref = weakref.ref(future)
        dask_future.add_done_callback(lambda finished: self._settle(finished, future_ref, first))
        return future

    def _settle(self, dask_future: Any, future_ref: weakref.ref[Future[Any]], first: int) -> None:
        """Runs on dask's callback thread: move the outcome into the caller's future."""
        future = future_ref()
        if future is None or future.done():
            return  # cancelled or dropped by the caller: nobody reads the result
        from distributed.scheduler import KilledWorker

        try:
            outcome = dask_future.result()
        except KilledWorker as exc:
            error: BaseException = WorkerCrashedError(
                f"dask workers died while running the batch starting at task {first}: {exc}"
            )
            error.__cause__ = exc
        except CancelledError as exc:
            # Not our cancel (that sets `future` done first): client.restart or a closed client.
            error = WorkerCrashedError(
                f"the dask task of the batch starting at task {first} was cancelled "
                f"outside joblite (client restarted or closed?): {exc!r}"
            )
        except BaseException as exc:  # the initializer's error, an unpicklable payload...
            error = exc
        else:
            settle(future, outcome, None)
            return
        settle(future, None, error)

    def replace_workers(self) -> None:
        # Called after a task passed its deadline: a dask task cannot be killed.
        # It keeps its worker thread until it returns; the caller has cancelled
        # its future, which released the dask task (see submit_batch).
        logger.debug("dask backend: a task past its timeout keeps running on its worker")

    def terminate(self) -> None:
        self._active_client = None  # the client and its cluster belong to the user


def _batch_name(batch: Any) -> str:
    # Names the dask task group in the dashboard, e.g. "joblite-square".
    try:
        return str(getattr(batch.tasks[0][0], "__name__", "batch"))
    except Exception:  # an item that is not a triple: the engine reports it later
        return "batch"


# ------------------------------------------------------------ worker side

# Per dask worker: initializer token -> None (done) or the exception it raised.
# Bounded: tokens of long-finished calls are forgotten.
_INITIALIZED: weakref.WeakKeyDictionary[Any, collections.OrderedDict[str, Exception | None]] = (
    weakref.WeakKeyDictionary()
)
_INIT_LOCK = threading.Lock()


def _run_initializer_once(init: tuple[str, bytes]) -> None:
    from distributed import get_worker

    from ._worker import run_initializer_once

    token, payload = init
    worker = get_worker()
    with _INIT_LOCK:  # also makes a worker's other threads wait until it is done
        seen = _INITIALIZED.setdefault(worker, collections.OrderedDict())
        run_initializer_once(seen, token, payload)


def run_dask_batch(payload: bytes, init: tuple[str, bytes] | None) -> Any:
    """Run one batch on a dask worker thread; returns the batch's output."""
    from .._batching import _RemoteBatch
    from .._wire import decode_batch

    state = WORKER_STATE.thread
    was_worker = getattr(state, "is_worker", False)
    # Nested Parallel calls in the task run sequentially: the cluster's
    # threads are already all busy. Thread-local, so in-process workers
    # (LocalCluster(processes=False)) do not mark the caller's thread.
    state.is_worker = True
    try:
        if init is not None:
            _run_initializer_once(init)
        return _RemoteBatch(*decode_batch(payload))()
    finally:
        state.is_worker = was_worker
