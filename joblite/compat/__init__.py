"""Run code written for joblib on joblite without editing it.

:func:`install` points ``sys.modules["joblib"]`` and the joblib submodules
such code imports (``joblib.parallel``, ``joblib.memory``,
``joblib.numpy_pickle``, ``joblib.hashing``, ``joblib.logger``) at joblite
modules exposing joblib's public names from them; ``python -m joblite run
script.py [args]`` does that, then runs the script as ``__main__``.

Example::

    >>> install()
    >>> import joblib
    >>> joblib.Parallel.__module__.startswith("joblite")
    True
    >>> from joblib.numpy_pickle import dump, load
    >>> uninstall()
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
import threading
from collections.abc import Sequence
from types import ModuleType

__all__ = ["ALIASES", "install", "run_path", "uninstall"]

# joblib module name -> the joblite module that stands in for it
ALIASES = {
    "joblib": "joblite.compat._joblib",
    "joblib.parallel": "joblite.parallel",
    "joblib.memory": "joblite.memory",
    "joblib.numpy_pickle": "joblite.compat.numpy_pickle",
    "joblib.hashing": "joblite.compat.hashing",
    "joblib.logger": "joblite.logger",
}

_lock = threading.Lock()
# What sys.modules held under the aliased names before install(), for uninstall().
_saved: dict[str, ModuleType | None] = {}


def install() -> None:
    """Make ``import joblib`` (and its aliased submodules) give joblite from now on.

    Call it before anything imports joblib: modules that already hold the real
    joblib keep it. Idempotent; :func:`uninstall` undoes it.
    """
    modules = {name: importlib.import_module(target) for name, target in ALIASES.items()}
    with _lock:
        for name, module in modules.items():
            if name not in _saved:
                _saved[name] = sys.modules.get(name)
            sys.modules[name] = module


def uninstall() -> None:
    """Put back what ``sys.modules`` held under joblib's names before :func:`install`."""
    with _lock:
        for name, previous in _saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
        _saved.clear()


def run_path(script: str, argv: Sequence[str] = ()) -> None:
    """Run ``script`` as ``__main__`` with ``sys.argv = [script, *argv]``, joblite as joblib.

    Like ``python script.py``, the script's directory goes first on ``sys.path``.
    Raises ``FileNotFoundError`` naming ``script`` when it does not exist.
    """
    if not os.path.isfile(script):
        raise FileNotFoundError(f"`script` {script!r} is not a file")
    install()
    sys.argv = [script, *argv]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
