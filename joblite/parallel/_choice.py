"""Which backend a ``Parallel`` call runs on: one rule for Parallel and get_active_backend."""

from __future__ import annotations

from typing import Any

from ._registry import REGISTRY, is_multiprocessing_context, make_backend
from ._worker_state import WORKER_STATE, gil_disabled
from .backends.base import ParallelBackendBase

__all__ = ["check_hints", "select_backend"]


def check_hints(prefer: object, require: object) -> None:
    """Raise ``ValueError`` for hints no backend can honour together, as joblib does."""
    if prefer == "processes" and require == "sharedmem":
        raise ValueError(
            "prefer='processes' and require='sharedmem' are inconsistent: process "
            "workers cannot share memory with the caller"
        )


def select_backend(
    backend: str | ParallelBackendBase | None,
    *,
    prefer: str | None,
    require: str | None,
    inner_max_num_threads: int | None,
    params: dict[str, Any],
    explicit: bool = False,
) -> ParallelBackendBase:
    """The backend a ``Parallel`` call runs on; ``get_active_backend`` asks the same.

    ``backend`` is the call's own or the configuration's (``None``: neither), a
    name, an instance or a ``multiprocessing`` context (the multiprocessing
    backend on that context, as in joblib). Its ``nesting_level`` is set if
    unset (0 in the caller, 1 in a worker). Raises ``ValueError`` when an
    ``explicit`` backend cannot share memory as ``require="sharedmem"`` asks,
    or for ``prefer="processes"`` with ``require="sharedmem"``.
    """
    check_hints(prefer, require)
    inner = inner_max_num_threads
    if is_multiprocessing_context(backend):
        params = {**params, "context": backend}
        backend = "multiprocessing"
    if backend is None:
        if WORKER_STATE.in_worker():
            name = "sequential"  # nested in a process worker: do not oversubscribe
        elif require == "sharedmem" or prefer == "threads" or (prefer is None and gil_disabled()):
            name = "threading"
        else:
            name = REGISTRY.default
        backend = make_backend(name, inner_max_num_threads=inner, **params)
    elif isinstance(backend, str):
        backend = make_backend(backend, inner_max_num_threads=inner, **params)
    if require == "sharedmem" and not getattr(backend, "supports_sharedmem", False):
        if explicit:
            raise ValueError(
                f"require='sharedmem' needs a thread-based backend, got {type(backend).__name__}"
            )
        backend = make_backend("threading", inner_max_num_threads=inner)
    if getattr(backend, "nesting_level", 0) is None:
        backend.nesting_level = WORKER_STATE.nesting_level()
    return backend
