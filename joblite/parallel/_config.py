"""The active parallel configuration: ``parallel_config``, ``parallel_backend``.

The backend registry is in ``_registry``, n_jobs arithmetic in ``_njobs``.

The configuration lives in a :class:`contextvars.ContextVar`, so a
``parallel_config`` block affects only the thread (or asyncio task) that
entered it. Example::

    with parallel_config(backend="threading", n_jobs=2):
        Parallel()(delayed(abs)(-i) for i in range(3))   # two threads
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator, Mapping
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from .._core.arguments import MMAP_MODES, check_verbose
from ._njobs import coerce_n_jobs, normalize_n_jobs
from ._registry import (
    REGISTRY,
    backend_class,
    check_backend_kwargs,
    is_builtin_backend,
    is_multiprocessing_context,
    make_backend,
    resolve_backend_name,
)

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

    from .backends.base import ParallelBackendBase

__all__ = [
    "UNSET",
    "ParallelSettings",
    "effective_n_jobs",
    "parallel_backend",
    "parallel_config",
]


class _Unset:
    """Marks a parameter the caller did not give, so outer settings show through."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()

PREFER_VALUES: Final = (None, "threads", "processes")
REQUIRE_VALUES: Final = (None, "sharedmem")


# The default backend_params: read-only, so the default layer cannot be changed.
_NO_PARAMS: Final[Mapping[str, Any]] = MappingProxyType({})


class ParallelSettings(NamedTuple):
    """One immutable layer of configuration; unset fields fall through to defaults.

    A named tuple: building and merging one costs about a microsecond, and
    every ``Parallel`` call merges its own layer over the active one.
    """

    backend: Any = UNSET
    backend_params: Mapping[str, Any] = _NO_PARAMS
    initargs: Any = UNSET
    initializer: Any = UNSET
    inner_max_num_threads: Any = UNSET
    max_nbytes: Any = UNSET
    mmap_mode: Any = UNSET
    n_jobs: Any = UNSET
    prefer: Any = UNSET
    require: Any = UNSET
    temp_folder: Any = UNSET
    verbose: Any = UNSET

    def merged(self, **fields: Any) -> ParallelSettings:
        """A new layer: ``fields`` that are set override this layer's values."""
        given = {name: value for name, value in fields.items() if value is not UNSET}
        return self._replace(**given) if given else self

    def given(self) -> dict[str, Any]:
        """The fields this layer sets, ``backend_params`` aside."""
        return {
            name: value
            for name, value in zip(self._fields, self, strict=True)
            if value is not UNSET and name != "backend_params"
        }

    def over(self, base: ParallelSettings) -> ParallelSettings:
        """This layer's set fields over ``base`` (whose ``backend_params`` stay)."""
        given = self.given()
        return base._replace(**given) if given else base

    def get(self, name: str, default: Any) -> Any:
        value = getattr(self, name)
        return default if value is UNSET else value


_EMPTY: Final = ParallelSettings()
_ACTIVE: contextvars.ContextVar[ParallelSettings] = contextvars.ContextVar(
    "joblite_parallel_config",
    default=_EMPTY,
)


def active_settings() -> ParallelSettings:
    return _ACTIVE.get()


def none_is_unset(value: Any) -> Any:
    return UNSET if value is None else value


# joblib's default for these is None, meaning "not given": outer layers show through.
_NONE_IS_UNSET: Final = frozenset(
    {"backend", "n_jobs", "temp_folder", "prefer", "require", "inner_max_num_threads"}
)


def settings_layer(**given: Any) -> ParallelSettings:
    """One checked layer of settings: the arguments ``Parallel`` and ``parallel_config`` share.

    Raises ``ValueError``/``TypeError`` naming the first bad argument (see
    :class:`parallel_config`); fails here, not at the first ``Parallel`` call.
    """
    # Only what is given is checked: every Parallel() builds a layer (~1 µs here).
    fields = {
        name: value
        for name, value in given.items()
        if value is not UNSET and (value is not None or name not in _NONE_IS_UNSET)
    }
    if not fields:
        return _EMPTY
    if "prefer" in fields:
        _check_choice("prefer", fields["prefer"], PREFER_VALUES)
    if "require" in fields:
        _check_choice("require", fields["require"], REQUIRE_VALUES)
    _check_consistent(fields)
    if "mmap_mode" in fields:
        _check_choice("mmap_mode", fields["mmap_mode"], MMAP_MODES)
    if "backend" in fields:
        check_backend(fields["backend"])
    if "n_jobs" in fields:
        fields["n_jobs"] = coerce_n_jobs(fields["n_jobs"])
        normalize_n_jobs(fields["n_jobs"])
    if "verbose" in fields:
        fields["verbose"] = check_verbose(fields["verbose"])
    if "temp_folder" in fields:
        check_temp_folder(fields["temp_folder"])
    if "max_nbytes" in fields:
        from .._core.units import parse_bytes  # lazily: workers import this module

        parse_bytes(fields["max_nbytes"], name="max_nbytes")
    inner = fields.get("inner_max_num_threads", UNSET)
    if inner is not UNSET and (not isinstance(inner, int) or inner < 1):
        raise ValueError(f"inner_max_num_threads must be a positive int, got {inner!r}")
    return ParallelSettings(**fields)


def _check_consistent(fields: dict[str, Any]) -> None:
    """Hints one call gives that contradict each other: ``ValueError``, as in joblib."""
    from ._choice import check_hints  # lazily: it imports the backend base

    check_hints(fields.get("prefer"), fields.get("require"))
    backend = fields.get("backend")
    if fields.get("require") == "sharedmem" and backend is not None:
        cls = backend_class(backend)
        if cls is not None and not getattr(cls, "supports_sharedmem", False):
            raise ValueError(
                f"require='sharedmem' needs a thread-based backend, got backend={backend!r}"
            )


def _check_choice(name: str, value: object, choices: tuple[object, ...]) -> None:
    if value is not UNSET and value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_temp_folder(temp_folder: object) -> None:
    """Fail now, naming the argument, rather than at the first shared array."""
    if temp_folder is UNSET or temp_folder is None:
        return
    if not isinstance(temp_folder, (str, os.PathLike)):
        raise TypeError(f"temp_folder must be a path (str or os.PathLike), got {temp_folder!r}")
    if os.path.exists(temp_folder) and not os.path.isdir(temp_folder):
        raise ValueError(f"temp_folder must be a folder, got an existing file {temp_folder!r}")


def check_backend(backend: object) -> None:
    """Reject what is neither a backend name nor a backend (old joblib ones included)."""
    if backend is UNSET or backend is None:
        return
    if isinstance(backend, str):
        resolve_backend_name(backend)
        return
    if is_multiprocessing_context(backend):
        return  # joblib's way to name the multiprocessing backend's start method
    from .backends.base import ParallelBackendBase

    if not isinstance(backend, ParallelBackendBase) and not (
        hasattr(backend, "submit") or hasattr(backend, "apply_async")
    ):
        raise TypeError(
            "backend must be a backend name, a ParallelBackendBase instance or a "
            f"multiprocessing context, got {backend!r}"
        )


class parallel_config:
    """Set defaults for every ``Parallel`` call in this thread / async task.

    Takes effect when created (so it also works without ``with``, like
    joblib) and is undone on ``__exit__``. Unset arguments keep the value of
    an enclosing block. ``backend`` is a registered name, a backend instance
    or a ``multiprocessing`` context; extra keyword arguments go to the
    backend's constructor, except ``initializer``/``initargs``, which every
    built-in backend runs in each worker (as ``Parallel``'s own). ``with``
    gives joblib's mapping: ``config["backend"]`` (the backend a ``Parallel()``
    here runs on), ``config["n_jobs"]``, ``verbose``, ``temp_folder``,
    ``max_nbytes``, ``mmap_mode``, ``prefer``, ``require``.

    ``n_jobs=None`` resets ``n_jobs`` to the backend's default (as joblib does);
    ``None`` for ``backend``, ``temp_folder``, ``prefer``, ``require`` or
    ``inner_max_num_threads`` keeps the enclosing value.

    Raises ``ValueError`` for an unknown ``prefer``/``require``/``mmap_mode``,
    hints that contradict each other (``prefer="processes"`` or a process
    backend with ``require="sharedmem"``), ``inner_max_num_threads`` for a
    backend that cannot honour it (threads, sequential), an ``n_jobs`` of 0 or
    a string that is not an integer, a negative or unreadable ``max_nbytes``, a
    ``temp_folder`` that is a file, and for an unknown backend name (listing
    the registered ones); ``TypeError`` for a ``backend`` that is neither a
    name nor a backend, a ``verbose`` that is not a number, arguments of the
    wrong type, and keywords a built-in backend does not take (``n_job=2``).

    Example::

        >>> with parallel_config(backend="threading", n_jobs=2) as config:
        ...     Parallel()(delayed(abs)(-i) for i in range(3))
        [0, 1, 2]
        >>> config["n_jobs"], config["backend"].nesting_level
        (2, 0)
    """

    def __init__(
        self,
        backend: str | ParallelBackendBase | BaseContext | _Unset | None = UNSET,
        *,
        n_jobs: int | float | str | _Unset | None = UNSET,
        verbose: float | _Unset = UNSET,
        temp_folder: str | os.PathLike[str] | _Unset | None = UNSET,
        max_nbytes: int | str | _Unset | None = UNSET,
        mmap_mode: str | _Unset | None = UNSET,
        prefer: str | _Unset | None = UNSET,
        require: str | _Unset | None = UNSET,
        inner_max_num_threads: int | _Unset | None = UNSET,
        **backend_params: Any,
    ) -> None:
        layer = settings_layer(
            backend=backend,
            n_jobs=n_jobs,
            verbose=verbose,
            temp_folder=temp_folder,
            max_nbytes=max_nbytes,
            mmap_mode=mmap_mode,
            prefer=prefer,
            require=require,
            inner_max_num_threads=inner_max_num_threads,
        )
        outer = _ACTIVE.get()
        given = layer.backend is not UNSET
        target = layer.backend if given else outer.get("backend", REGISTRY.default)
        init, backend_params = _split_initializer(target, backend_params)
        check_backend_kwargs(target, backend_params)
        params = {} if given else dict(outer.backend_params)
        params.update(backend_params)
        settings = layer.over(outer).merged(backend_params=params, **init)
        if n_jobs is None:
            settings = settings._replace(n_jobs=UNSET)  # joblib #1473: the backend's default
        if layer.inner_max_num_threads is not UNSET:
            _check_inner_threads(target, layer.inner_max_num_threads)
        self.settings = settings
        self._token: contextvars.Token[ParallelSettings] | None = _ACTIVE.set(settings)

    def __enter__(self) -> Mapping[str, Any]:
        return ConfigView(self.settings)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unregister()

    def unregister(self) -> None:
        """Undo this configuration (what ``__exit__`` does)."""
        if self._token is not None:
            _ACTIVE.reset(self._token)
            self._token = None


# What a joblib user reads from `with parallel_config(...) as config` when unset.
_JOBLIB_DEFAULTS: Final[Mapping[str, Any]] = MappingProxyType(
    {
        "n_jobs": None,
        "verbose": 0,
        "temp_folder": None,
        "max_nbytes": "1M",
        "mmap_mode": "r",
        "prefer": None,
        "require": None,
    }
)


class ConfigView(Mapping[str, Any]):
    """joblib's ``with parallel_config(...) as config`` value: a read-only mapping.

    Example::

        >>> with parallel_config(n_jobs=2) as config:
        ...     config["n_jobs"], config["mmap_mode"]
        (2, 'r')
    """

    def __init__(self, settings: ParallelSettings) -> None:
        self._settings = settings
        self._backend: ParallelBackendBase | None = None

    def __getitem__(self, key: str) -> Any:
        if key == "backend":
            if self._backend is None:  # built on first read, as get_active_backend does
                self._backend = settings_backend(self._settings)
            return self._backend
        return self._settings.get(key, _JOBLIB_DEFAULTS[key])

    def __iter__(self) -> Iterator[str]:
        return iter(("backend", *_JOBLIB_DEFAULTS))

    def __len__(self) -> int:
        return 1 + len(_JOBLIB_DEFAULTS)

    def __repr__(self) -> str:
        return f"ConfigView({self._settings!r})"


def settings_backend(
    settings: ParallelSettings, prefer: str | None = None, require: str | None = None
) -> ParallelBackendBase:
    """The backend a ``Parallel()`` given only ``prefer``/``require`` runs on under ``settings``."""
    from ._choice import select_backend  # lazily: it imports the backend base

    return select_backend(
        settings.get("backend", None),
        prefer=settings.get("prefer", None) if prefer is None else prefer,
        require=settings.get("require", None) if require is None else require,
        inner_max_num_threads=settings.get("inner_max_num_threads", None),
        params=dict(settings.backend_params),
    )


_INITIALIZER_KEYS: Final = ("initializer", "initargs")


def _split_initializer(
    backend: object, backend_params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``initializer``/``initargs`` apart from the keywords for a backend's constructor.

    A third-party backend named by a string gets them in its constructor, as
    joblib passes them; every other backend runs them as ``Parallel``'s own.
    """
    if not any(key in backend_params for key in _INITIALIZER_KEYS) or (
        isinstance(backend, str) and not is_builtin_backend(backend)
    ):
        return {}, backend_params
    params = dict(backend_params)
    initializer = params.pop("initializer", None)
    initargs = params.pop("initargs", ())
    if initializer is not None and not callable(initializer):
        raise TypeError(f"initializer must be callable or None, got {initializer!r}")
    if not isinstance(initargs, (tuple, list)):
        raise TypeError(f"initargs must be a tuple, got {initargs!r}")
    return {"initializer": initializer, "initargs": tuple(initargs)}, params


def _check_inner_threads(backend: object, inner_max_num_threads: int | None) -> None:
    """joblib's rule: a backend that cannot cap its workers' threads refuses the cap."""
    if inner_max_num_threads is None:
        return
    cls = backend_class(backend)
    if cls is not None and not getattr(cls, "supports_inner_max_num_threads", False):
        raise ValueError(
            f"inner_max_num_threads is not supported by {cls.__name__}: it cannot cap its "
            "workers' threads; use a process backend (loky, multiprocessing) or drop it"
        )


class parallel_backend(parallel_config):
    """The older form of :class:`parallel_config`: ``backend`` comes first.

    As in joblib, a backend name is turned into one backend instance here,
    which every ``Parallel`` call in the block uses, and ``with`` gives
    ``(backend, n_jobs)``.

    Example::

        >>> with parallel_backend("threading", n_jobs=2) as (backend, n_jobs):
        ...     Parallel()(delayed(abs)(-i) for i in range(2))
        [0, 1]
    """

    def __init__(
        self,
        backend: str | ParallelBackendBase,
        n_jobs: int | float | _Unset | None = -1,
        inner_max_num_threads: int | _Unset | None = None,
        **backend_params: Any,
    ) -> None:
        if isinstance(backend, str):
            inner = none_is_unset(inner_max_num_threads)
            init, constructor_params = _split_initializer(backend, backend_params)
            backend = make_backend(
                backend,
                inner_max_num_threads=None if inner is UNSET else inner,
                **constructor_params,
            )
            backend_params = init  # parallel_config keeps them for every call
        super().__init__(
            backend,
            n_jobs=n_jobs,
            inner_max_num_threads=inner_max_num_threads,
            **backend_params,
        )
        self.backend = backend
        self.n_jobs = n_jobs

    def __enter__(self) -> tuple[ParallelBackendBase, Any]:  # type: ignore[override]
        return self.backend, self.n_jobs


def effective_n_jobs(n_jobs: int | float | None = -1) -> int:
    """How many workers ``Parallel(n_jobs=n_jobs)`` would use in this context.

    Example::

        >>> effective_n_jobs(1)
        1
    """
    settings = _ACTIVE.get()
    if n_jobs is None:
        n_jobs = settings.get("n_jobs", None)
        if n_jobs is None:
            return 1
    backend = settings.get("backend", None)
    if is_multiprocessing_context(backend):
        backend = "multiprocessing"
    if isinstance(backend, str):
        backend = make_backend(backend)
    if backend is not None:
        return int(backend.effective_n_jobs(n_jobs))
    return normalize_n_jobs(n_jobs)
