"""``Parallel`` and ``delayed``: joblib's API over joblite's backends.

``Parallel`` is the API edge: it checks its arguments, layers them over the
active ``parallel_config``, picks and configures a backend, then hands the
call to the inline loop (``_inline``) or the dispatch loop (``_dispatch``,
whose opening comment draws a call's whole path).

Example::

    >>> from joblite.parallel import Parallel, delayed
    >>> Parallel(n_jobs=2, backend="threading")(delayed(pow)(i, 2) for i in range(4))
    [0, 1, 4, 9]
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ._adapter import as_executor_backend
from ._choice import select_backend
from ._config import UNSET, ParallelSettings, active_settings, settings_layer
from ._options import CallOptions, check_call_options
from ._registry import check_backend_kwargs
from .backends.base import ExecutorBackend

if TYPE_CHECKING:
    from ._progress import Progress, ProgressCallback

__all__ = ["Parallel", "delayed"]

T = TypeVar("T")


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
        check_call_options(
            return_as, on_error, retries, timeout, batch_size, pre_dispatch, initializer, initargs
        )
        # The arguments parallel_config also takes: one layer over the active one.
        self._own: ParallelSettings = settings_layer(
            n_jobs=n_jobs,
            backend=backend,
            verbose=verbose,
            temp_folder=temp_folder,
            max_nbytes=max_nbytes,
            mmap_mode=mmap_mode,
            prefer=prefer,
            require=require,
        )
        if self._own.backend is not UNSET:
            check_backend_kwargs(self._own.backend, backend_kwargs)
        self._given = self._own.given()  # merged over the active layer at each call
        self.return_as = return_as
        self.timeout = timeout
        self.pre_dispatch = pre_dispatch
        self.batch_size = batch_size
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

    def _settings(self) -> ParallelSettings:
        active = active_settings()
        return active._replace(**self._given) if self._given else active

    # joblib exposes these as attributes; unset ones read through the active config.
    @property
    def n_jobs(self) -> Any:
        return self._settings().get("n_jobs", None)

    @property
    def verbose(self) -> int | float:
        return self._settings().get("verbose", 0)  # type: ignore[no-any-return]

    def _make_backend(
        self, settings: ParallelSettings | None = None
    ) -> tuple[ExecutorBackend, int]:
        """The call's backend, adapted to the one protocol and configured, and its n_jobs."""
        settings = self._settings() if settings is None else settings
        prefer = settings.get("prefer", None)
        require = settings.get("require", None)
        backend = select_backend(
            settings.get("backend", None),
            prefer=prefer,
            require=require,
            inner_max_num_threads=settings.get("inner_max_num_threads", None),
            params={**settings.backend_params, **self._backend_kwargs},
            explicit=self._own.backend is not UNSET,
        )
        n_jobs = settings.get("n_jobs", None)
        if n_jobs is None:
            n_jobs = getattr(backend, "default_n_jobs", 1)
        if n_jobs == 0:  # a third-party backend's default_n_jobs
            raise ValueError(
                "n_jobs == 0 in Parallel has no meaning; use None, 1, or -1 (all CPUs)"
            )
        check_backend_kwargs(backend, self._backend_kwargs)  # an instance passed in
        executor = as_executor_backend(backend)
        executor.set_initializer(*self._initializer(settings))
        effective = executor.configure(
            n_jobs=n_jobs, parallel=self, prefer=prefer, require=require, **self._backend_kwargs
        )
        return executor, int(effective)

    def _initializer(
        self, settings: ParallelSettings
    ) -> tuple[Callable[..., object] | None, tuple[Any, ...]]:
        """The call's own initializer, else the one ``parallel_config`` gives."""
        if self.initializer is not None:
            return self.initializer, self.initargs
        return settings.get("initializer", None), settings.get("initargs", ())

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

    def __call__(self, iterable: Iterable[Any]) -> Any:
        settings = self._settings()  # merged once per call
        managed = self._managed is not None
        backend, n_jobs = (
            self._managed if self._managed is not None else self._make_backend(settings)
        )
        total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
        from ._progress import make_progress

        inline = n_jobs == 1 and backend.inline_single_job
        name = None if inline else type(getattr(backend, "backend", backend)).__name__
        requested = settings.get("n_jobs", None)
        progress = make_progress(
            self.progress,
            settings.get("verbose", 0),
            name,
            n_jobs if requested is None else requested,
            n_jobs,
            total,
        )
        options = CallOptions.of(self, n_jobs, self._task_seconds if managed else None)
        if inline:
            from ._inline import run_inline

            if not managed:
                backend.terminate()
            initializer, initargs = self._initializer(settings)
            if initializer is not None:
                initializer(*initargs)
            as_list = self.return_as == "list"
            return run_inline(iter(iterable), total, options, progress, as_list=as_list)
        return self._dispatch(backend, iter(iterable), total, options, progress, settings, managed)

    def _dispatch(
        self,
        backend: ExecutorBackend,
        tasks: Iterator[Any],
        total: int | None,
        options: CallOptions,
        progress: Progress | None,
        settings: ParallelSettings,
        managed: bool,
    ) -> Any:
        # Process workers take long to start: let them boot while we import the
        # dispatch machinery and prepare the first batches.
        backend.start_call()

        def on_close() -> None:
            backend.stop_call()
            if managed:
                self._task_seconds = loop.sizer.task_seconds
            else:
                backend.terminate()

        try:
            from ._dispatch import DispatchLoop
            from ._memmap import array_sharer

            sharer = array_sharer(settings) if backend.shares_arrays else None
            loop = DispatchLoop(
                backend,
                tasks,
                total,
                options,
                sharer=sharer,
                progress=progress,
                on_close=on_close,
                hold_counts=self.return_as == "generator",
            )
        except BaseException:
            backend.stop_call()
            if not managed:
                backend.terminate()
            raise
        if self.return_as == "list":
            results: list[Any] = []
            for chunk in loop.chunks():
                results.extend(chunk)
            return results
        chunks = loop.chunks()
        try:
            loop.fill()  # start working now, like joblib, not at the first next()
        except BaseException:
            loop.close()
            raise
        generator = _flatten(chunks)
        weakref.finalize(generator, loop.close)
        return generator

    def __repr__(self) -> str:
        return f"Parallel(n_jobs={self.n_jobs!r}, return_as={self.return_as!r})"


def _flatten(chunks: Iterator[list[Any]]) -> Iterator[Any]:
    for chunk in chunks:
        yield from chunk
