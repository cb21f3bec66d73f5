"""Parallel loops with joblib's API: ``Parallel(n_jobs=4)(delayed(f)(x) for x in xs)``.

Importing this package is cheap: every name, and loky, multiprocessing,
concurrent.futures and numpy, load on first use.

Example::

    >>> from joblite.parallel import Parallel, delayed
    >>> Parallel(n_jobs=2, prefer="threads")(delayed(abs)(-i) for i in range(3))
    [0, 1, 2]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import effective_n_jobs as effective_n_jobs
    from ._config import parallel_backend as parallel_backend
    from ._config import parallel_config as parallel_config
    from ._errors import RemoteTraceback as RemoteTraceback
    from ._njobs import cpu_count as cpu_count
    from ._parallel import Parallel as Parallel
    from ._parallel import delayed as delayed
    from ._registry import register_parallel_backend as register_parallel_backend
    from ._wrap import wrap_non_picklable_objects as wrap_non_picklable_objects
    from .backends.base import ParallelBackendBase as ParallelBackendBase
    from .backends.base import SequentialBackend as SequentialBackend
    from .backends.dask_backend import DaskBackend as DaskBackend
    from .backends.loky_pool import LokyBackend as LokyBackend
    from .backends.multiprocessing_pool import MultiprocessingBackend as MultiprocessingBackend
    from .backends.ray_backend import RayBackend as RayBackend
    from .backends.threads import ThreadingBackend as ThreadingBackend

__all__ = [
    "DaskBackend",
    "LokyBackend",
    "MultiprocessingBackend",
    "Parallel",
    "ParallelBackendBase",
    "RayBackend",
    "RemoteTraceback",
    "SequentialBackend",
    "ThreadingBackend",
    "cpu_count",
    "delayed",
    "effective_n_jobs",
    "get_active_backend",
    "parallel_backend",
    "parallel_config",
    "register_parallel_backend",
    "shutdown_workers",
    "wrap_non_picklable_objects",
]

# Every name loads on first use: worker processes import this package to run
# batches and must not pay for the caller's machinery.
_LAZY = {
    "cpu_count": "._njobs",
    "effective_n_jobs": "._config",
    "parallel_backend": "._config",
    "parallel_config": "._config",
    "register_parallel_backend": "._registry",
    "RemoteTraceback": "._errors",
    "Parallel": "._parallel",
    "delayed": "._parallel",
    "wrap_non_picklable_objects": "._wrap",
    "ParallelBackendBase": ".backends.base",
    "DaskBackend": ".backends.dask_backend",
    "LokyBackend": ".backends.loky_pool",
    "MultiprocessingBackend": ".backends.multiprocessing_pool",
    "RayBackend": ".backends.ray_backend",
    "SequentialBackend": ".backends.base",
    "ThreadingBackend": ".backends.threads",
}


def __getattr__(name: str) -> Any:
    if name == "mp":
        # joblib.parallel.mp is the multiprocessing module (None where it is
        # unusable); scikit-learn's test utilities check it. Always usable here.
        value: Any = importlib.import_module("multiprocessing")
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | {"mp"})


def shutdown_workers() -> None:
    """Stop loky's reusable worker processes now instead of after 300 s idle.

    Example::

        >>> shutdown_workers()
    """
    import sys

    module = sys.modules.get("joblite.parallel.backends.loky_pool")
    if module is not None:
        module.shutdown_loky_workers()


def get_active_backend(
    prefer: str | None = None, require: str | None = None, verbose: int = 0
) -> tuple[ParallelBackendBase, int | None]:
    """The backend and ``n_jobs`` a ``Parallel()`` call here takes from the configuration.

    joblib's ``joblib.parallel.get_active_backend``: ``n_jobs`` is ``None``
    when no ``parallel_config`` sets it. ``prefer``/``require`` act as they do
    in ``Parallel`` when the configuration names no backend.

    Example::

        >>> with parallel_backend("threading", n_jobs=2):
        ...     backend, n_jobs = get_active_backend()
        >>> type(backend).__name__, n_jobs
        ('ThreadingBackend', 2)
    """
    from ._config import active_settings, settings_backend

    settings = active_settings()
    backend = settings_backend(settings, prefer, require)
    n_jobs: int | None = settings.get("n_jobs", None)
    return backend, n_jobs
