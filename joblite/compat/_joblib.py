"""What ``import joblib`` gives after :func:`joblite.compat.install`.

joblite's public names, plus joblib's submodules as attributes (the import
system does not set those when it finds them already in ``sys.modules``).
``__version__`` is the joblib version whose API joblite follows, so version
checks in libraries pass; ``__joblite_version__`` is joblite's own.
"""

from __future__ import annotations

import importlib
from typing import Any

import joblite

__version__ = "1.6.0"
__joblite_version__ = joblite.__version__
__all__ = list(joblite.__all__)

_SUBMODULES = {
    "parallel": "joblite.parallel",
    "memory": "joblite.memory",
    "numpy_pickle": "joblite.compat.numpy_pickle",
    "hashing": "joblite.compat.hashing",
    "logger": "joblite.logger",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(_SUBMODULES[name])
    return getattr(joblite, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
