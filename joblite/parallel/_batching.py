"""Batches: many tasks per round trip, sized from how long tasks really take.

A :class:`Batch` is the zero-argument callable every backend runs. It never
raises for a task's own error: failures come back as
:class:`~joblite.parallel._errors.TaskFailure` records next to the results, so
one IPC round trip carries a whole slice of work either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from itertools import islice, repeat, starmap
from operator import is_, itemgetter
from typing import Any, Final

from ..exceptions import UnpicklableObjectError
from ._errors import TaskFailure, capture_failure
from ._wire import EncodedOutput, Reducer, decode_batch, encode_batch

__all__ = [
    "Batch",
    "BatchOutput",
    "BatchSizer",
    "PackedTasks",
    "iterate_plain",
    "load_batch",
    "not_a_triple",
    "pack_tasks",
    "run_packed",
    "run_plain",
    "run_tasks",
    "take_tasks",
    "unpack_task",
]

# results (None where a task failed), failures or None, seconds spent in tasks
BatchOutput = tuple[list[Any], "list[TaskFailure] | None", float]
Task = tuple[Callable[..., Any], Sequence[Any], dict[str, Any]]

_NOT_A_TRIPLE: Final = (
    "Parallel expects an iterable of (callable, args, kwargs) triples such as "
    "delayed(f)(x); got {!r}"
)


def not_a_triple(task: object) -> TypeError:
    """The error for an input item that is not a ``(callable, args, kwargs)`` triple."""
    return TypeError(_NOT_A_TRIPLE.format(task))


def unpack_task(task: Any) -> Task:
    """``task`` as ``(function, args, kwargs)``; ``TypeError`` naming it if it is not one."""
    try:
        function, args, kwargs = task
    except (TypeError, ValueError):
        raise not_a_triple(task) from None
    return function, args, kwargs


def _call(task: Any) -> Any:
    function, args, kwargs = unpack_task(task)
    return function(*args, **kwargs)


def run_plain(tasks: Iterator[Any]) -> list[Any]:
    """Call every task in order, in this thread: ``Parallel(n_jobs=1)``'s hot path."""
    # The unpacking is inlined: a helper call per task would cost more than the task.
    results: list[Any] = []
    append = results.append
    for task in tasks:
        try:
            function, args, kwargs = task
        except (TypeError, ValueError):
            raise not_a_triple(task) from None
        append(function(*args, **kwargs))
    return results


def iterate_plain(tasks: Iterator[Any]) -> Iterator[Any]:
    """:func:`run_plain`, one result at a time."""
    for task in tasks:
        try:
            function, args, kwargs = task
        except (TypeError, ValueError):
            raise not_a_triple(task) from None
        yield function(*args, **kwargs)


def run_tasks(tasks: Sequence[Any], retries: int, stop_on_error: bool, remote: bool) -> BatchOutput:
    """Run ``tasks`` in order; failing ones are retried ``retries`` more times."""
    start = time.perf_counter()
    results: list[Any] = []
    append = results.append
    failures: list[TaskFailure] | None = None
    for position, task in enumerate(tasks):
        try:
            function, args, kwargs = task
            append(function(*args, **kwargs))
        except Exception as first_error:
            error: Exception = first_error
            for _ in range(retries):
                try:
                    append(_call(task))
                    break
                except Exception as again:
                    error = again
            else:
                if not isinstance(task, tuple) or len(task) != 3:
                    error = not_a_triple(task)
                append(None)
                failures = failures or []
                failures.append(capture_failure(position, error, remote))
                if stop_on_error:
                    break
    return results, failures, time.perf_counter() - start


class Batch:
    """A slice of consecutive tasks, ``start`` being the first one's index in the call."""

    __slots__ = ("payload", "retries", "start", "started", "stop_on_error", "tasks")

    def __init__(
        self, start: int, tasks: list[Any] | PackedTasks, retries: int, stop_on_error: bool
    ) -> None:
        self.start = start
        self.tasks = tasks
        self.retries = retries
        self.stop_on_error = stop_on_error
        # Backends that ship payloads get the batch in the wire format (shared
        # arrays swapped for references) before submitting; see encode().
        self.payload: bytes | None = None
        # When a thread worker began running it (time.monotonic); None while queued.
        self.started: float | None = None

    def __len__(self) -> int:
        return len(self.tasks)

    def __call__(self) -> BatchOutput:
        self.started = time.monotonic()  # the engine's per-task clock starts here
        tasks = self.tasks
        if isinstance(tasks, PackedTasks):
            return run_packed(*tasks.packed(), self.retries, self.stop_on_error, remote=False)
        return run_tasks(tasks, self.retries, self.stop_on_error, remote=False)

    def encode(self, reducer: Reducer | None = None) -> bytes:
        """The batch in the wire format; ``reducer`` may swap large arrays for shared files.

        Raises ``UnpicklableObjectError`` (a ``pickle.PicklingError``, as joblib
        raises, and a ``TypeError``) naming the tasks, pickle's error as its cause.
        """
        try:
            return encode_batch(pack_tasks(self.tasks), self.retries, self.stop_on_error, reducer)
        except Exception as exc:
            last = self.start + len(self.tasks) - 1
            where = f"task {self.start}" if last == self.start else f"tasks {self.start}-{last}"
            raise UnpicklableObjectError(
                f"could not pickle {where} to send to the worker processes: {exc}"
            ) from exc

    def __reduce__(self) -> tuple[Callable[[bytes], _RemoteBatch], tuple[bytes]]:
        payload = self.payload
        if payload is None:  # a third-party backend pickling us itself
            payload = self.encode()
        return (load_batch, (payload,))


def pack_tasks(tasks: list[Any] | PackedTasks) -> Any:
    """``(f, values, star)`` when every task calls one ``f`` without kwargs, else ``tasks``.

    The packed form pickles without a tuple and an empty dict per task and
    lets the worker run the batch through C-level ``map``: ``values`` holds
    the lone arguments (``star=False``) or the argument tuples (``star=True``).
    Every check runs through ``map`` on exact types, as :func:`_take_fitting`
    does: packing costs little per task and runs no code of the tasks' own
    objects (a ``__len__`` or ``__eq__`` that raises fails only its task).
    """
    if isinstance(tasks, PackedTasks):
        return tasks.packed()
    n_tasks = len(tasks)
    if not n_tasks or not all(map(is_, map(type, tasks), repeat(tuple))):
        return tasks
    if set(map(len, tasks)) != {3}:
        return tasks
    function = tasks[0][0]
    if not all(map(is_, map(_first, tasks), repeat(function))):
        return tasks
    # Exactly an empty dict each: comparing with {} would run the objects' own __eq__.
    all_kwargs = list(map(_third, tasks))
    if not all(map(is_, map(type, all_kwargs), repeat(dict))) or any(all_kwargs):
        return tasks
    all_args = list(map(_second, tasks))
    if not all(map(is_, map(type, all_args), repeat(tuple))):
        return tasks
    if set(map(len, all_args)) == {1}:
        return (function, list(map(_first, all_args)), False)
    return (function, all_args, True)


_first, _second, _third = itemgetter(0), itemgetter(1), itemgetter(2)


class PackedTasks:
    """A packed batch kept as such in the caller: reads like its list of triples.

    Holding ``values`` instead of a tuple and an args tuple per task leaves
    the garbage collector almost nothing to walk while batches are in flight.
    A triple read back calls what the original one called, as
    ``(function, (value,), {})`` or ``(function, args, {})``.
    """

    __slots__ = ("function", "star", "values")

    def __init__(self, function: Callable[..., Any], values: list[Any], star: bool) -> None:
        self.function = function
        self.values = values
        self.star = star

    def packed(self) -> tuple[Callable[..., Any], list[Any], bool]:
        return self.function, self.values, self.star

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, position: int) -> Task:
        value = self.values[position]
        return (self.function, value if self.star else (value,), {})

    def __iter__(self) -> Iterator[Task]:
        return map(self.__getitem__, range(len(self.values)))


def run_packed(
    function: Callable[..., Any],
    values: list[Any],
    star: bool,
    retries: int,
    stop_on_error: bool,
    remote: bool,
) -> BatchOutput:
    """:func:`run_tasks` for a packed batch: ``map`` runs the tasks, Python only on errors."""
    start = time.perf_counter()
    results: list[Any] = []
    failures: list[TaskFailure] | None = None
    remaining = iter(values)
    call = starmap if star else map
    while True:
        try:
            # list.extend keeps what it appended before an exception, so
            # len(results) is the failing task and `remaining` is just past it.
            results.extend(call(function, remaining))
        except Exception as first_error:
            error: Exception | None = first_error
        else:
            if len(results) == len(values):
                break
            # A task raised StopIteration, which `map` took for its own end.
            error = StopIteration(f"task raised StopIteration in {function!r}")
        position = len(results)
        value = values[position]
        for _ in range(retries):
            try:
                results.append(function(*value) if star else function(value))
                error = None
                break
            except Exception as again:
                error = again
        if error is not None:
            results.append(None)
            failures = failures or []
            failures.append(capture_failure(position, error, remote))
            if stop_on_error:
                break
        if len(results) == len(values):
            break
    return results, failures, time.perf_counter() - start


class _RemoteBatch:
    """A batch rebuilt in a worker process: a list of triples or a packed batch."""

    __slots__ = ("retries", "stop_on_error", "tasks")

    def __init__(self, tasks: Any, retries: int, stop_on_error: bool) -> None:
        self.tasks = tasks
        self.retries = retries
        self.stop_on_error = stop_on_error

    def __call__(self) -> BatchOutput:
        if type(self.tasks) is tuple:
            function, values, star = self.tasks
            output = run_packed(function, values, star, self.retries, self.stop_on_error, True)
        else:
            output = run_tasks(self.tasks, self.retries, self.stop_on_error, remote=True)
        return EncodedOutput(output)


def load_batch(payload: bytes) -> _RemoteBatch:
    """Unpickle a batch in a worker process (and mark it as one, for nested calls)."""
    from ._worker_state import WORKER_STATE

    WORKER_STATE.in_process_worker = True
    return _RemoteBatch(*decode_batch(payload))


# Items read (and packed) at a time by take_tasks(pack=True) before the batch's
# function is known.
TAKE_CHUNK: Final = 256


def take_tasks(tasks: Iterator[Any], size: int, pack: bool = False) -> list[Any] | PackedTasks:
    """The next ``size`` items of the caller's input (fewer at its end).

    With ``pack``, a batch of one function without keywords comes back as
    :class:`PackedTasks`: the first ``TAKE_CHUNK`` items are packed by
    :func:`pack_tasks`, the rest one by one as they are read
    (:func:`_take_fitting`), so a triple is freed as soon as its arguments are
    kept and the garbage collector never walks thousands of them. The first
    item that does not fit turns the batch back into triples.
    """
    taken = list(islice(tasks, min(size, TAKE_CHUNK) if pack else size))
    if not pack or not taken:
        return taken
    first = pack_tasks(taken)
    if type(first) is not tuple:
        return taken + list(islice(tasks, size - len(taken)))
    function, values, star = first
    misfit = _take_fitting(tasks, function, star, size - len(values), values)
    if not misfit:
        return PackedTasks(function, values, star)
    # A mixed batch travels as triples.
    rest = list(islice(tasks, size - len(values) - 1))
    return [*PackedTasks(function, values, star), *misfit, *rest]


def _take_fitting(
    tasks: Iterator[Any], function: Any, star: bool, count: int, values: list[Any]
) -> tuple[Any, ...]:
    """Read up to ``count`` tasks into ``values`` while they fit the packed batch.

    A task fits when it unpacks to ``(function, args, kwargs)`` with ``args``
    a tuple (of one value unless ``star``) and ``kwargs`` an empty dict: exact
    types, so no code of the task's own objects (``__eq__``, ``__len__``) runs
    before the task does. Returns ``()``, or the first task that does not fit,
    as its triple when it unpacked (an iterator item cannot be read twice).

    This loop costs ~1,100 instructions (~90 ns) a task, against ~2,000 for
    :func:`pack_tasks`' C-level passes over each chunk and ~2,400 for building
    ``delayed(f)(i)`` itself (callgrind, 100,000 trivial tasks).
    """
    append = values.append
    for task in islice(tasks, count):
        try:
            f, args, kwargs = task
        except (TypeError, ValueError):
            return (task,)
        if f is not function or type(args) is not tuple or type(kwargs) is not dict or kwargs:
            return ((f, args, kwargs),)
        if star:
            append(args)
            continue
        try:
            (value,) = args
        except ValueError:
            return ((f, args, kwargs),)
        append(value)
    return ()


class BatchSizer:
    """Picks the next batch size so a batch runs about ``TARGET_SECONDS``.

    Starts at 1 task (long tasks balance well), then follows the measured
    time per task, growing at most ``MAX_GROWTH``-fold per completed batch so
    one unrepresentative fast task cannot swallow the whole input.
    """

    TARGET_SECONDS: Final = 0.02
    MAX_GROWTH: Final = 16
    # For trivial tasks the caller, not the worker, is the bottleneck: smaller
    # batches keep the last one's round trip (the tail after the input ends) short.
    MAX_SIZE: Final = 16384

    def __init__(self, fixed: int | None, task_seconds: float | None = None) -> None:
        """``task_seconds``: a per-task duration learnt by an earlier call, if any."""
        self.fixed = fixed
        self.task_seconds = task_seconds
        if fixed is not None:
            self.size = fixed
        elif task_seconds is None:
            self.size = 1
        else:
            self.size = self._ideal(task_seconds)

    def _ideal(self, per_task: float) -> int:
        if per_task <= 0:
            return self.MAX_SIZE
        return max(1, min(int(self.TARGET_SECONDS / per_task), self.MAX_SIZE))

    def next_size(self) -> int:
        return self.size

    def batch_completed(self, n_tasks: int, elapsed: float) -> None:
        if self.fixed is not None or n_tasks == 0:
            return
        per_task = elapsed / n_tasks
        self.task_seconds = per_task
        ideal = self._ideal(per_task)
        if n_tasks < self.size and ideal > n_tasks:
            return  # a short final batch says little about what the next should be
        self.size = min(ideal, self.size * self.MAX_GROWTH)
