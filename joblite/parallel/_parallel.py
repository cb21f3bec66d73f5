"""``Parallel`` and ``delayed``: joblib's API over joblite's backends.

Example::

    >>> from joblite.parallel import Parallel, delayed
    >>> Parallel(n_jobs=2, backend="threading")(delayed(pow)(i, 2) for i in range(4))
    [0, 1, 4, 9]
"""

from __future__ import annotations

import functools
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar

from .._core.arguments import MMAP_MODES, check_verbose
from .._core.units import parse_bytes
from ..exceptions import TaskTimeoutError
from ._adapter import as_executor_backend
from ._choice import select_backend
from ._config import (
    PREFER_VALUES,
    REQUIRE_VALUES,
    UNSET,
    active_settings,
    check_backend,
    check_temp_folder,
    none_is_unset,
)
from ._njobs import normalize_n_jobs
from ._registry import check_backend_kwargs
from .backends.base import ExecutorBackend

if TYPE_CHECKING:
    from ._dispatch import DispatchLoop
    from ._progress import Progress, ProgressCallback

__all__ = ["Parallel", "delayed"]

T = TypeVar("T")
RETURN_AS: Final = ("list", "generator", "generator_unordered")
ON_ERROR: Final = ("raise", "collect")


# A one-entry cache: ``delayed(f)(x) for x in xs`` builds the wrapper once, not per
# item. One immutable pair, read once: thread-safe without a lock.
_LAST_DELAYED: tuple[Any, Any] = (None, None)


def delayed(
    function: Callable[..., T],
) -> Callable[..., tuple[Callable[..., T], tuple[Any, ...], dict[str, Any]]]:
    """Capture a call for ``Parallel``: ``delayed(f)(x, y=1)`` is ``(f, (x,), {"y": 1})``.

    Raises ``TypeError`` when ``function`` is not callable.

    Example::

        >>> delayed(max)(1, 2)
        (<built-in function max>, (1, 2), {})
    """
    last = _LAST_DELAYED
    if last[0] is function:
        return last[1]  # type: ignore[no-any-return]
    return _new_delayed(function)


def _new_delayed(
    function: Callable[..., T],
) -> Callable[..., tuple[Callable[..., T], tuple[Any, ...], dict[str, Any]]]:
    global _LAST_DELAYED
    if not callable(function):
        raise TypeError(f"delayed expects a callable, got {function!r}")

    def delayed_function(
        *args: Any, **kwargs: Any
    ) -> tuple[Callable[..., T], tuple[Any, ...], dict[str, Any]]:
        return (function, args, kwargs)

    try:
        functools.update_wrapper(delayed_function, function)
    except (AttributeError, TypeError):  # callables without __name__ (partials, objects)
        delayed_function.__wrapped__ = function  # type: ignore[attr-defined]
    _LAST_DELAYED = (function, delayed_function)
    return delayed_function


@functools.lru_cache(maxsize=64)
def _eval_pre_dispatch(expression: str, n_jobs: int) -> int:
    """Evaluate joblib's ``"2 * n_jobs"``-style strings without ``eval``."""
    import ast
    import operator

    operators: dict[type, Callable[[Any, Any], Any]] = {
        ast.Add: operator.add,
        ast.Sub: operator.sub,
        ast.Mult: operator.mul,
        ast.FloorDiv: operator.floordiv,
        ast.Div: operator.truediv,
    }

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Name) and node.id == "n_jobs":
            return n_jobs
        if isinstance(node, ast.BinOp) and type(node.op) in operators:
            return operators[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError

    try:
        return max(1, int(walk(ast.parse(expression, mode="eval"))))
    except (ValueError, SyntaxError, ZeroDivisionError):
        raise ValueError(
            f"pre_dispatch must be 'all', an int or an expression of n_jobs such as "
            f"'2 * n_jobs', got {expression!r}"
        ) from None


class Parallel:
    """Run ``delayed`` calls on workers: ``Parallel(n_jobs=4)(delayed(f)(x) for x in xs)``.

    Same parameters, defaults and meanings as ``joblib.Parallel``, plus
    ``progress``, ``initializer``/``initargs``, ``on_error`` and ``retries``
    (see docs/parallel.md). Use it as a context manager to keep its workers
    across calls. ``None`` for ``n_jobs``, ``backend``, ``temp_folder``,
    ``prefer`` or ``require`` means "not given", as in joblib: the active
    ``parallel_config`` applies.

    Raises the first failing task's own exception (remote traceback as its
    ``__cause__``), ``TaskTimeoutError`` (a ``TimeoutError``) past ``timeout``,
    ``WorkerCrashedError`` when a worker process dies; ``ValueError`` /
    ``TypeError`` for bad arguments, naming the argument.
    """

    def __init__(
        self,
        n_jobs: Any = UNSET,
        backend: Any = UNSET,
        return_as: str = "list",
        verbose: Any = UNSET,
        timeout: float | None = None,
        pre_dispatch: str | int = "2 * n_jobs",
        batch_size: str | int = "auto",
        temp_folder: Any = UNSET,
        max_nbytes: Any = UNSET,
        mmap_mode: Any = UNSET,
        prefer: Any = UNSET,
        require: Any = UNSET,
        *,
        progress: bool | ProgressCallback | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        on_error: str = "raise",
        retries: int = 0,
        **backend_kwargs: Any,
    ) -> None:
        if return_as not in RETURN_AS:
            raise ValueError(f"return_as must be one of {RETURN_AS}, got {return_as!r}")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            raise ValueError(
                f"timeout must be a positive number of seconds or None, got {timeout!r}"
            )
        if batch_size != "auto" and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be 'auto' or an int >= 1, got {batch_size!r}")
        if isinstance(pre_dispatch, str):
            if pre_dispatch != "all":
                _eval_pre_dispatch(pre_dispatch, 1)  # a bad expression fails now
        elif (
            isinstance(pre_dispatch, bool) or not isinstance(pre_dispatch, int) or pre_dispatch < 1
        ):
            raise ValueError(
                "pre_dispatch must be 'all', an int >= 1 or an expression of n_jobs "
                f"such as '2 * n_jobs', got {pre_dispatch!r}"
            )
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable or None, got {initializer!r}")
        if not isinstance(initargs, (tuple, list)):
            raise TypeError(f"initargs must be a tuple, got {initargs!r}")
        for name, value, choices in (
            ("prefer", prefer, PREFER_VALUES),
            ("require", require, REQUIRE_VALUES),
            ("mmap_mode", mmap_mode, MMAP_MODES),
        ):
            if value is not UNSET and value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        # None is joblib's default for these: it means "use the active configuration".
        n_jobs = none_is_unset(n_jobs)
        backend = none_is_unset(backend)
        temp_folder = none_is_unset(temp_folder)
        prefer = none_is_unset(prefer)
        require = none_is_unset(require)
        if n_jobs is not UNSET:
            normalize_n_jobs(n_jobs)
        if max_nbytes is not UNSET:
            parse_bytes(max_nbytes, name="max_nbytes")
        if verbose is not UNSET:
            verbose = check_verbose(verbose)
        check_temp_folder(temp_folder)
        check_backend(backend)
        if backend is not UNSET:
            check_backend_kwargs(backend, backend_kwargs)
        self._n_jobs = n_jobs
        self._backend_arg = backend
        self.return_as = return_as
        self._verbose = verbose
        self.timeout = timeout
        self.pre_dispatch = pre_dispatch
        self.batch_size = batch_size
        self._temp_folder = temp_folder
        self._max_nbytes = max_nbytes
        self._mmap_mode = mmap_mode
        self._prefer = prefer
        self._require = require
        self.progress = progress
        self.initializer = initializer
        self.initargs = tuple(initargs)
        self.on_error = on_error
        self.retries = retries
        self._backend_kwargs = backend_kwargs
        self._managed: tuple[ExecutorBackend, int] | None = None
        # Per-task seconds measured by the previous call in this `with` block:
        # the next call starts with well-sized batches instead of single tasks.
        self._task_seconds: float | None = None

    # joblib exposes these as attributes; unset ones read through the active config.
    @property
    def n_jobs(self) -> Any:
        value = self._n_jobs
        return active_settings().get("n_jobs", None) if value is UNSET else value

    @property
    def verbose(self) -> int | float:
        value = self._verbose
        return active_settings().get("verbose", 0) if value is UNSET else value  # type: ignore[no-any-return]

    def _setting(self, name: str, own: Any, default: Any) -> Any:
        return active_settings().get(name, default) if own is UNSET else own

    # ------------------------------------------------------------ backend choice

    def _make_backend(self) -> tuple[ExecutorBackend, int]:
        settings = active_settings()
        prefer = self._setting("prefer", self._prefer, None)
        require = self._setting("require", self._require, None)
        inner = settings.get("inner_max_num_threads", None)
        params = dict(settings.backend_params)
        params.update(self._backend_kwargs)
        explicit = self._backend_arg not in (UNSET, None)
        backend = select_backend(
            self._backend_arg if explicit else settings.get("backend", None),
            prefer=prefer,
            require=require,
            inner_max_num_threads=inner,
            params=params,
            explicit=explicit,
        )
        n_jobs = self.n_jobs
        if n_jobs is None:
            n_jobs = getattr(backend, "default_n_jobs", 1)
        if n_jobs == 0:
            raise ValueError(
                "n_jobs == 0 in Parallel has no meaning; use None, 1, or -1 (all CPUs)"
            )
        check_backend_kwargs(backend, self._backend_kwargs)  # an instance passed in
        executor = as_executor_backend(backend)
        executor.set_initializer(self.initializer, self.initargs)
        effective = executor.configure(
            n_jobs=n_jobs, parallel=self, prefer=prefer, require=require, **self._backend_kwargs
        )
        return executor, int(effective)

    def __enter__(self) -> Parallel:
        self._managed = self._make_backend()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        managed, self._managed = self._managed, None
        self._task_seconds = None
        if managed is not None:
            managed[0].terminate()

    # ------------------------------------------------------------ calling

    def __call__(self, iterable: Iterable[Any]) -> Any:
        backend, n_jobs = self._managed if self._managed is not None else self._make_backend()
        managed = self._managed is not None
        total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
        backend_name = type(getattr(backend, "backend", backend)).__name__
        from ._progress import make_progress

        progress = make_progress(self.progress, self.verbose, backend_name, n_jobs)
        if n_jobs == 1 and backend.inline_single_job:
            if not managed:
                backend.terminate()
            results = self._sequential(iter(iterable), total, progress)
            if self.return_as == "list" and not isinstance(results, list):
                return list(results)
            return results
        return self._dispatch(backend, n_jobs, iter(iterable), total, progress, managed)

    def _sequential(
        self, tasks: Iterator[Any], total: int | None, progress: Progress | None
    ) -> list[Any] | Iterator[Any]:
        """The list itself on the plain list path, else a generator of results."""
        if self.initializer is not None:
            self.initializer(*self.initargs)
        plain = progress is None and self.timeout is None and self.retries == 0
        if plain and self.on_error == "raise":
            from ._batching import iterate_plain, run_plain

            if self.return_as == "list":  # the hot path: a plain loop
                return run_plain(tasks)
            return iterate_plain(tasks)
        return self._sequential_general(tasks, total, progress)

    def _sequential_general(
        self, tasks: Iterator[Any], total: int | None, progress: Progress | None
    ) -> Iterator[Any]:
        from ._batching import unpack_task

        collect = self.on_error == "collect"
        timeout = self.timeout
        done = 0
        try:
            for index, task in enumerate(tasks):
                start = time.monotonic()
                function: Any = None
                for attempt in range(self.retries + 1):
                    try:
                        # An item that is not a triple fails like a task, as with n_jobs > 1.
                        function, args, kwargs = unpack_task(task)
                        result = function(*args, **kwargs)
                        break
                    except Exception as exc:
                        if attempt < self.retries:
                            continue
                        if not collect:
                            raise
                        result = exc
                # A plain loop cannot interrupt a task: the timeout is checked after it.
                if timeout is not None and time.monotonic() - start > timeout:
                    name = getattr(function, "__qualname__", repr(function))
                    error = TaskTimeoutError(
                        f"task {index} ({name}) did not finish within timeout={timeout}s"
                    )
                    if not collect:
                        raise error
                    result = error
                done += 1
                if progress is not None:
                    progress.update(done, total)
                yield result
            if progress is not None:
                progress.update(done, done)
        finally:
            if progress is not None:
                progress.close()

    def _dispatch(
        self,
        backend: ExecutorBackend,
        n_jobs: int,
        tasks: Iterator[Any],
        total: int | None,
        progress: Progress | None,
        managed: bool,
    ) -> Any:
        # Process workers take long to start: let them boot while we import and
        # prepare the first batches.
        backend.start_call()
        try:
            run = self._new_run(backend, n_jobs, tasks, total, progress, managed)
        except BaseException:
            backend.stop_call()
            if not managed:
                backend.terminate()
            raise
        if self.return_as == "list":
            results: list[Any] = []
            for chunk in run.chunks():
                results.extend(chunk)
            return results
        chunks = run.chunks()
        try:
            run.fill()  # start working now, like joblib, not at the first next()
        except BaseException:
            run.close()
            raise
        generator = _flatten(chunks)
        weakref.finalize(generator, run.close)
        return generator

    def _new_run(
        self,
        backend: ExecutorBackend,
        n_jobs: int,
        tasks: Iterator[Any],
        total: int | None,
        progress: Progress | None,
        managed: bool,
    ) -> DispatchLoop:
        from ._dispatch import DispatchLoop, DispatchOptions
        from ._memmap import ArraySharer

        sharer = None
        max_nbytes = parse_bytes(
            self._setting("max_nbytes", self._max_nbytes, "1M"), name="max_nbytes"
        )
        if backend.shares_arrays and max_nbytes is not None and "numpy" in sys.modules:
            sharer = ArraySharer(
                self._setting("temp_folder", self._temp_folder, None),
                max_nbytes,
                self._setting("mmap_mode", self._mmap_mode, "r") or "r+",
            )
        if self.pre_dispatch == "all":
            max_in_flight = sys.maxsize
        elif isinstance(self.pre_dispatch, int):
            max_in_flight = self.pre_dispatch
        else:
            max_in_flight = _eval_pre_dispatch(self.pre_dispatch, n_jobs)
        batch_size = None if self.batch_size == "auto" else int(self.batch_size)
        if self.timeout is not None:
            # Process deadlines count from submission, so nothing may queue behind
            # a busy worker (thread deadlines count from the task's start).
            max_in_flight = n_jobs
            batch_size = batch_size or 1

        def on_close() -> None:
            backend.stop_call()
            if managed:
                self._task_seconds = run.sizer.task_seconds
            else:
                backend.terminate()

        options = DispatchOptions(
            batch_size=batch_size,
            max_in_flight=max_in_flight,
            timeout=self.timeout,
            collect=self.on_error == "collect",
            retries=self.retries,
            ordered=self.return_as != "generator_unordered",
            task_seconds=self._task_seconds if managed else None,
        )
        run = DispatchLoop(
            backend, tasks, total, options, sharer=sharer, progress=progress, on_close=on_close
        )
        return run

    def __repr__(self) -> str:
        return f"Parallel(n_jobs={self.n_jobs!r}, return_as={self.return_as!r})"


def _flatten(chunks: Iterator[list[Any]]) -> Iterator[Any]:
    for chunk in chunks:
        yield from chunk
