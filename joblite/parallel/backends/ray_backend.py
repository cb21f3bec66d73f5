"""The Ray backend: batches run as Ray tasks on the current Ray runtime.

``Parallel(backend="ray")`` needs ``ray.init()`` to have run in this process
(a local runtime or a connection to a cluster). Each batch is one Ray task
holding the batch in the wire format of ``_wire``, so lambdas and closures
work. Large numpy arguments are not pickled into each batch: the backend
encodes the batch itself (``ships_payloads`` is False for that reason), puts
each such array into Ray's object store once per call and hands the task its
``ObjectRef`` as a top-level argument, which Ray resolves to a read-only array
mapped from the object store, without a copy.

Unlike a dask cluster, Ray can stop one task: past ``timeout`` the task is
cancelled with ``force=True``, which kills the worker process running it
(Ray starts another), and a dead worker fails only the task it ran, so it is
named in the ``WorkerCrashedError``. Ray's own retries are off
(``max_retries=0``): joblite's ``retries=`` is the one rule, but for a task
that may have lost its worker to our own kill of an earlier task (``_Attempts``).
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ClassVar

from ...exceptions import MissingDependencyError, NoRayRuntimeError, WorkerCrashedError
from .._njobs import normalize_n_jobs
from .._worker_state import WORKER_STATE
from ._nesting import in_ray_task, limit_nested_n_jobs
from .base import ExecutorBackend, settle

__all__ = ["RayBackend"]

logger = logging.getLogger(__name__)

_NO_RUNTIME = (
    'backend="ray" needs a Ray runtime in this process: call ray.init() first, e.g.\n\n'
    "    import ray\n"
    "    ray.init()                          # a local runtime\n"
    '    ray.init(address="auto")            # join a running cluster\n'
)
# Arrays below this many bytes travel inside the batch: a put and a lookup
# cost more than pickling them. Parallel's max_nbytes overrides it per call.
DEFAULT_MAX_NBYTES = 1024**2


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("ray", "ray", 'Parallel(backend="ray")') from exc
    return ray


class _ObjectStore:
    """The arrays of one call put into Ray's object store, each once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # id(array) -> (array, ObjectRef); holding the array keeps its id unique.
        self.refs: dict[int, tuple[Any, Any]] = {}

    def ref_for(self, array: Any) -> Any:
        with self.lock:
            known = self.refs.get(id(array))
            if known is None:
                known = self.refs[id(array)] = (array, _import_ray().put(array))
                logger.debug("put a %d-byte array into Ray's object store", array.nbytes)
            return known[1]

    def clear(self) -> None:
        # Tasks in flight hold their own references: Ray frees an object
        # once the last task that takes it is done.
        with self.lock:
            self.refs.clear()


class RayBackend(ExecutorBackend):
    """Runs batches as tasks on the current Ray runtime (``ray.init()`` first).

    ``n_jobs=-1`` (and ``None``) means every CPU of the cluster, ``-2`` all
    but one, a positive value at most that many. Tasks always go to Ray,
    ``n_jobs=1`` included, except inside a Ray task, where a nested call runs
    in the task itself. ``remote_options`` go to each task's ``.options()``
    (e.g. ``{"num_cpus": 2}`` or ``{"resources": {"GPU": 1}}``).

    Raises ``NoRayRuntimeError`` (a ``RuntimeError``) when ``ray.init()`` has
    not run, ``MissingDependencyError`` (an ``ImportError``) without ``ray``.

    Example::

        >>> ray.init(num_cpus=2)
        >>> Parallel(backend="ray")(delayed(abs)(-i) for i in range(3))
        [0, 1, 2]
    """

    ships_payloads = False  # submit_batch encodes: large arrays go by ObjectRef
    clock_starts_at_run = False  # a task's start happens out of sight
    stops_running_tasks = True  # ray.cancel(force=True) kills the worker running it
    inline_single_job = False  # the user chose the cluster, for one task at a time too
    default_n_jobs: ClassVar[int] = -1

    def __init__(
        self,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        remote_options: dict[str, Any] | None = None,
        **backend_kwargs: Any,
    ) -> None:
        super().__init__(nesting_level, inner_max_num_threads, **backend_kwargs)
        _import_ray()
        self.remote_options = dict(remote_options or {})
        self._store = _ObjectStore()
        self._max_nbytes: int | None = DEFAULT_MAX_NBYTES
        self._init: tuple[str, Any] | None = None  # (token, ObjectRef of the payload)
        self._remote: Any = None
        # Tasks force-cancelled by this backend, until their workers are gone.
        self._killed: list[Any] = []
        # Calls (the current one counts) whose crashed tasks run once more: see _Attempts.
        self._shadowed_calls = 0

    def _runtime(self) -> Any:
        ray = _import_ray()
        if not ray.is_initialized():
            raise NoRayRuntimeError(_NO_RUNTIME)
        return ray

    def effective_n_jobs(self, n_jobs: int) -> int:
        normalize_n_jobs(n_jobs)  # reject 0 and junk before asking the cluster
        if in_ray_task():
            # Waiting on tasks from a task holds its CPU while they queue for
            # one: every CPU busy waiting is a deadlock. joblib's rule for
            # nested pools instead: run here, with its warning.
            return limit_nested_n_jobs("Ray", int(n_jobs // 1))
        total = max(int(self._runtime().cluster_resources().get("CPU", 0)), 1)
        requested = int(n_jobs // 1)  # floats round down, as everywhere
        if requested < 0:
            return max(total + 1 + requested, 1)
        return min(requested, total)  # more would only queue on the raylet

    def set_initializer(
        self, initializer: Callable[..., object] | None, initargs: tuple[Any, ...]
    ) -> None:
        super().set_initializer(initializer, initargs)
        self._init = None  # put into the object store at the next call

    def prepare_call(self, n_jobs: int, **options: Any) -> int:
        self.inline_single_job = in_ray_task()
        self._max_nbytes = _call_max_nbytes(self.parallel)
        effective = super().prepare_call(n_jobs, **options)
        self._shadowed_calls = max(self._shadowed_calls - 1, 0)
        if self.inline_single_job:
            return effective
        ray = self._runtime()
        payload = self.initializer_payload()
        if payload is not None and self._init is None:
            # Once per Parallel call (or `with` block): large initargs are the
            # usual reason for an initializer; a fresh token runs it again.
            self._init = (uuid.uuid4().hex, ray.put(payload))
        if self._remote is None:
            options = {"max_retries": 0, "retry_exceptions": False, **self.remote_options}
            self._remote = ray.remote(run_ray_batch).options(**options)
        return effective

    def stop_call(self) -> None:
        # The end of every call, an early one too: Dispatch.close() cancels the
        # futures of unfinished tasks (which force-cancels their Ray tasks, see
        # submit_batch) but calls replace_workers only for futures it cannot
        # cancel, and ours always can be: the wait has to happen here.
        self._await_kills()
        self._store.clear()

    def _encode(self, batch: Any) -> tuple[bytes, list[Any]]:
        """The batch's wire payload and the ObjectRefs of its large arrays."""
        refs: list[Any] = []
        numpy = sys.modules.get("numpy")
        if numpy is None or self._max_nbytes is None:
            return batch.encode(), refs
        ndarray, max_nbytes = numpy.ndarray, self._max_nbytes
        positions: dict[int, int] = {}

        def reduce(obj: Any) -> Any:
            if not isinstance(obj, ndarray):  # most objects: one C-level check
                return NotImplemented
            if obj.nbytes < max_nbytes or obj.dtype.hasobject:
                return NotImplemented
            position = positions.get(id(obj))
            if position is None:
                position = positions[id(obj)] = len(refs)
                refs.append(self._store.ref_for(obj))
            return (stored_array, (position,))

        return batch.encode(reduce), refs

    def submit_batch(self, func: Callable[[], Any]) -> Future[Any]:
        from .._batching import Batch

        if not isinstance(func, Batch):
            raise TypeError(f"RayBackend runs joblite batches, got {func!r}")
        payload, refs = self._encode(func)
        token, init_ref = self._init if self._init is not None else (None, None)
        future: Future[Any] = Future()
        task = _Attempts(
            lambda: self._remote.remote(payload, token, init_ref, *refs),
            weakref.ref(future),  # a future the caller dropped is not kept alive by Ray's
            _tasks_name(func),
            crash_retries=1 if self._shadowed_calls else 0,
        )
        task.launch()
        # The caller cancels `future` when it no longer wants the result (a
        # timeout, an error elsewhere, a closed generator): stop the task too.
        future.add_done_callback(lambda done: done.cancelled() and self._kill(task.ref))
        return future

    def _kill(self, ref: Any) -> bool:
        self._killed.append(ref)
        return _cancel(ref)

    def replace_workers(self) -> None:
        # The caller cancelled the futures of stuck or abandoned tasks before
        # calling this, and each cancel kills the worker running its task (see
        # submit_batch).
        self._await_kills()

    def _await_kills(self) -> None:
        # A force-cancel is asynchronous: wait until the tasks have settled, so
        # that the next tasks do not land on a worker being killed (they would
        # fail as crashed). Bounded, like loky's shutdown.
        killed, self._killed = self._killed, []
        if killed:
            self._shadowed_calls = 2  # the rest of this call, and the next one
            try:
                _import_ray().wait(killed, num_returns=len(killed), timeout=_KILL_WAIT)
            except Exception as exc:  # the runtime shut down meanwhile
                logger.debug("ray backend: could not wait for cancelled tasks: %r", exc)

    def terminate(self) -> None:
        self._store.clear()  # the runtime and its workers belong to the user


def _call_max_nbytes(parallel: Any) -> int | None:
    """The call's ``max_nbytes`` (None: never use the object store)."""
    # configure() hands backends the Parallel object, not its merged settings;
    # a third-party caller may pass anything (or None): then the default.
    settings = getattr(parallel, "_settings", None)
    if settings is None:
        return DEFAULT_MAX_NBYTES
    from ..._core.units import parse_bytes

    return parse_bytes(settings().get("max_nbytes", "1M"), name="max_nbytes")


# Seconds replace_workers waits for force-cancelled tasks' workers to be gone.
_KILL_WAIT = 30.0


def _cancel(ref: Any) -> bool:
    try:
        _import_ray().cancel(ref, force=True)
    except Exception as exc:  # the runtime shut down meanwhile: nothing left to stop
        logger.debug("ray backend: could not cancel a task: %r", exc)
    return True


class _Attempts:
    """One batch's Ray task, run once more if its worker died under it, in a shadowed call.

    ``_await_kills`` waits for force-cancelled tasks to settle, but Ray has no
    way to wait for the workers they ran on to be gone: a task that finished
    just as ``ray.cancel(force=True)`` went out settles with its result, and a
    kill still on its way would take the worker with whatever the next call
    runs on it, failing that task as crashed. So for the rest of a call that
    force-cancelled tasks, and for the next call on the backend, a task whose
    worker died runs once more; one that really kills its worker dies again
    and is reported. (Measured under load, 4 busy loops on 2 cores: an early
    end then a call: 3 rounds in 60 with crashed tasks without the wait, 0 in
    60 with it; the retry guards the window the wait cannot see.)
    """

    def __init__(
        self,
        submit: Callable[[], Any],
        future_ref: weakref.ref[Future[Any]],
        name: str,
        crash_retries: int,
    ) -> None:
        self.submit, self.future_ref, self.name = submit, future_ref, name
        self.crash_retries = crash_retries
        self.ref: Any = None

    def launch(self) -> None:
        self.ref = self.submit()
        self.ref.future().add_done_callback(self._finished)

    def _finished(self, ray_future: Future[Any]) -> None:
        future = self.future_ref()
        if self.crash_retries and future is not None and not future.done():
            from ray.exceptions import WorkerCrashedError as RayWorkerCrashedError

            if isinstance(ray_future.exception(), RayWorkerCrashedError):
                self.crash_retries -= 1
                logger.debug("ray backend: %s lost its worker to a kill; once more", self.name)
                # Not on Ray's callback thread: submitting from it is not documented as safe.
                threading.Thread(target=self._relaunch, name="joblite-ray-retry").start()
                return
        _settle(ray_future, self.future_ref, self.name)

    def _relaunch(self) -> None:
        try:
            self.launch()
        except BaseException as exc:  # the runtime shut down meanwhile
            future = self.future_ref()
            if future is not None:
                settle(future, None, exc)
            return
        future = self.future_ref()
        if future is None or future.cancelled():  # given up on while this was submitted
            _cancel(self.ref)


def _settle(ray_future: Future[Any], future_ref: weakref.ref[Future[Any]], name: str) -> None:
    """Runs on Ray's callback thread: move the outcome into the caller's future."""
    future = future_ref()
    if future is None or future.done():
        return  # cancelled or dropped by the caller: nobody reads the result
    from ray import exceptions as ray_errors

    error: BaseException | None = None
    outcome: Any = None
    try:
        outcome = ray_future.result()
    except (ray_errors.WorkerCrashedError, ray_errors.OutOfMemoryError) as exc:
        # OutOfMemoryError: Ray's memory monitor killed the worker to save the node.
        error = WorkerCrashedError(f"a Ray worker died while running {name}: {exc}")
        error.__cause__ = exc
    except ray_errors.TaskCancelledError as exc:
        # Not our cancel (that sets `future` done first): ray.cancel by someone else.
        error = WorkerCrashedError(f"the Ray task running {name} was cancelled outside joblite")
        error.__cause__ = exc
    except ray_errors.RayTaskError as exc:  # the initializer's own error, as itself
        error = exc.cause if isinstance(exc.cause, BaseException) else exc
    except BaseException as exc:  # the runtime shut down, an object was lost...
        error = exc
    settle(future, outcome, error)


def _tasks_name(batch: Any) -> str:
    # "task 5 (crash_if)" or "one of tasks 4-7 (crash_if, ...)": a Ray task is
    # one batch, so a dead worker narrows a crash down to the batch.
    try:
        names = sorted({getattr(task[0], "__qualname__", repr(task[0])) for task in batch.tasks})
    except Exception:  # an item that is not a triple: the engine reports it later
        names = ["?"]
    label = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    if len(batch) == 1:
        return f"task {batch.start} ({label})"
    return f"one of tasks {batch.start}-{batch.start + len(batch) - 1} ({label})"


# ------------------------------------------------------------ worker side

# Per worker process: initializer token -> None (done) or the exception it
# raised. Bounded: tokens of long-finished calls are forgotten.
_INITIALIZED: collections.OrderedDict[str, Exception | None] = collections.OrderedDict()
_ARRAYS = threading.local()


def stored_array(position: int) -> Any:
    """The batch's ``position``-th large array, as Ray resolved it (runs in the worker)."""
    arrays: tuple[Any, ...] = _ARRAYS.values
    return arrays[position]


def _run_initializer_once(token: str, payload: bytes) -> None:
    from ._worker import run_initializer_once

    run_initializer_once(_INITIALIZED, token, payload)


def run_ray_batch(
    payload: bytes, token: str | None, init_payload: bytes | None, *arrays: Any
) -> Any:
    """Run one batch in a Ray worker; returns the batch's output."""
    from .._batching import _RemoteBatch
    from .._wire import decode_batch

    state = WORKER_STATE.thread
    # Nested Parallel calls in the task run sequentially: the cluster's CPUs
    # are already all busy (see _nesting for explicit process backends).
    was_worker = getattr(state, "is_worker", False)
    state.is_worker = state.in_ray_task = True
    _ARRAYS.values = arrays
    try:
        if token is not None and init_payload is not None:
            _run_initializer_once(token, init_payload)
        return _RemoteBatch(*decode_batch(payload))()
    finally:
        _ARRAYS.values = ()
        state.is_worker = was_worker
        state.in_ray_task = False
