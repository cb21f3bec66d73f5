"""joblite: Parallel, Memory and dump/load, a faster and safer drop-in for joblib.

The feature modules load on first use of one of their names, so
``import joblite`` stays cheap: ``joblite.Parallel`` imports only the
parallel package, ``joblite.dump`` only persistence.

Example::

    >>> import joblite
    >>> joblite.hash([1, 2, 3]) == joblite.hash([1, 2, 3])
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import exceptions as exceptions
from ._core.hashing import hash as hash

# the one place the version is written: pyproject.toml reads it when building
__version__ = "0.1.0"

if TYPE_CHECKING:
    from . import logger as logger
    from . import parallel as parallel
    from .logger import Logger as Logger
    from .logger import PrintTime as PrintTime
    from .memory import MemorizedResult as MemorizedResult
    from .memory import Memory as Memory
    from .memory import StoreBackendBase as StoreBackendBase
    from .memory import expires_after as expires_after
    from .memory import register_store_backend as register_store_backend
    from .parallel import Parallel as Parallel
    from .parallel import ParallelBackendBase as ParallelBackendBase
    from .parallel import cpu_count as cpu_count
    from .parallel import delayed as delayed
    from .parallel import effective_n_jobs as effective_n_jobs
    from .parallel import parallel_backend as parallel_backend
    from .parallel import parallel_config as parallel_config
    from .parallel import register_parallel_backend as register_parallel_backend
    from .parallel import wrap_non_picklable_objects as wrap_non_picklable_objects
    from .persistence import dump as dump
    from .persistence import inspect as inspect
    from .persistence import load as load
    from .persistence import register_compressor as register_compressor

# public name -> the module that defines it
_LAZY: dict[str, str] = {
    "Logger": "joblite.logger",
    "PrintTime": "joblite.logger",
    "dump": "joblite.persistence",
    "load": "joblite.persistence",
    "inspect": "joblite.persistence",
    "register_compressor": "joblite.persistence",
    "Memory": "joblite.memory",
    "MemorizedResult": "joblite.memory",
    "StoreBackendBase": "joblite.memory",
    "expires_after": "joblite.memory",
    "register_store_backend": "joblite.memory",
    "Parallel": "joblite.parallel",
    "ParallelBackendBase": "joblite.parallel",
    "cpu_count": "joblite.parallel",
    "delayed": "joblite.parallel",
    "effective_n_jobs": "joblite.parallel",
    "parallel_backend": "joblite.parallel",
    "parallel_config": "joblite.parallel",
    "register_parallel_backend": "joblite.parallel",
    "wrap_non_picklable_objects": "joblite.parallel",
}

# public submodule name -> its module, for code that does `from joblib import logger`
# or reads `joblib.parallel.mp` after `import joblib`
_LAZY_MODULES: dict[str, str] = {
    "logger": "joblite.logger",
    "parallel": "joblite.parallel",
}

__all__ = ["__version__", "exceptions", "hash", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        value: Any = importlib.import_module(_LAZY_MODULES[name])
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'joblite' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_LAZY_MODULES))
