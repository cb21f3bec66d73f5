"""The backend registry: names (and aliases) to backend factories.

Built-in backends are registered lazily: loky and multiprocessing are slow to
import and `import joblite` must stay fast. Example::

    register_parallel_backend("mine", MyBackend)
    make_backend("mine", n_workers=3)
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .backends.base import ParallelBackendBase

__all__ = [
    "REGISTRY",
    "backend_class",
    "check_backend_kwargs",
    "is_builtin_backend",
    "is_multiprocessing_context",
    "make_backend",
    "register_parallel_backend",
    "resolve_backend_name",
]


def _lazy(module: str, name: str) -> Callable[..., ParallelBackendBase]:
    # Built-in backends are imported on first use: loky and multiprocessing are
    # slow to import and `import joblite` must stay fast.
    def backend_class() -> type[ParallelBackendBase]:
        cls: type[ParallelBackendBase] = getattr(
            importlib.import_module(f"joblite.parallel.backends.{module}"), name
        )
        return cls

    def factory(**kwargs: Any) -> ParallelBackendBase:
        return backend_class()(**kwargs)

    factory.__qualname__ = factory.__name__ = name
    factory.backend_class = backend_class  # type: ignore[attr-defined]
    return factory


class _Registry:
    """Backend names -> factories. Process-wide by nature, like joblib's."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.factories: dict[str, Callable[..., ParallelBackendBase]] = {
            "sequential": _lazy("base", "SequentialBackend"),
            "threading": _lazy("threads", "ThreadingBackend"),
            "loky": _lazy("loky_pool", "LokyBackend"),
            "multiprocessing": _lazy("multiprocessing_pool", "MultiprocessingBackend"),
            "dask": _lazy("dask_backend", "DaskBackend"),
            "ray": _lazy("ray_backend", "RayBackend"),
        }
        self.aliases = {"threads": "threading", "processes": "loky"}
        self.default = "loky"


REGISTRY: Final = _Registry()


def register_parallel_backend(
    name: str, factory: Callable[..., ParallelBackendBase], make_default: bool = False
) -> None:
    """Make ``Parallel(backend=name)`` build its backend with ``factory(**kwargs)``.

    ``make_default=True`` also makes it the backend used when none is given.
    Raises ``TypeError`` when ``name`` is not a str or ``factory`` not callable.

    Example::

        register_parallel_backend("mine", MyBackend)
        Parallel(backend="mine", n_jobs=2)(...)
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory must be callable (a backend class), got {factory!r}")
    with REGISTRY.lock:
        REGISTRY.factories[name] = factory
        REGISTRY.aliases.pop(name, None)
        if make_default:
            REGISTRY.default = name


def resolve_backend_name(name: str) -> str:
    name = REGISTRY.aliases.get(name, name)
    if name not in REGISTRY.factories:
        known = sorted(set(REGISTRY.factories) | set(REGISTRY.aliases))
        raise ValueError(f"backend must be one of {known} or a backend instance, got {name!r}")
    return name


def make_backend(name: str, **kwargs: Any) -> ParallelBackendBase:
    """Instantiate a registered backend by name or alias."""
    check_backend_kwargs(name, kwargs)
    return REGISTRY.factories[resolve_backend_name(name)](**kwargs)


@functools.cache
def _constructor_parameters(cls: type) -> frozenset[str]:
    import inspect  # lazily: slow to import, and only needed when kwargs are given

    parameters = inspect.signature(cls).parameters.values()
    return frozenset(
        p.name
        for p in parameters
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )


def is_multiprocessing_context(backend: object) -> bool:
    """True for ``multiprocessing.get_context(...)`` objects, which joblib takes as a backend."""
    # Whoever holds a context has imported multiprocessing.context: no import here.
    # getattr: another thread may be importing it right now (half-initialized).
    base = getattr(sys.modules.get("multiprocessing.context"), "BaseContext", None)
    return base is not None and isinstance(backend, base)


def backend_class(backend: object) -> type | None:
    """The class of a backend given as a name, an instance or a multiprocessing context.

    ``None`` for a registered name whose factory is not a class (nothing to read).
    """
    if is_multiprocessing_context(backend):
        backend = "multiprocessing"
    if isinstance(backend, str):
        factory = REGISTRY.factories.get(REGISTRY.aliases.get(backend, backend))
        load = getattr(factory, "backend_class", None)
        if load is not None:
            return load()  # type: ignore[no-any-return]
        return factory if isinstance(factory, type) else None
    return type(backend)


def is_builtin_backend(backend: object) -> bool:
    """True when ``backend`` (a name, instance or context) is one of joblite's own."""
    cls = backend_class(backend)
    return cls is not None and cls.__module__.startswith("joblite.parallel.backends.")


def check_backend_kwargs(backend: object, kwargs: dict[str, Any]) -> None:
    """Raise ``TypeError`` naming keywords a built-in backend does not take.

    Third-party backends get whatever keywords the caller gives them.
    """
    if not kwargs or not is_builtin_backend(backend):
        return
    cls = backend_class(backend)
    assert cls is not None  # a built-in backend
    unknown = sorted(set(kwargs) - _constructor_parameters(cls))
    if unknown:
        accepted = sorted(_constructor_parameters(cls) - {"nesting_level"})
        raise TypeError(
            f"unexpected keyword argument(s) {', '.join(map(repr, unknown))} for {cls.__name__}; "
            f"it accepts {accepted} (check the spelling of Parallel/parallel_config arguments)"
        )
