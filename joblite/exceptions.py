"""Every error joblite raises on purpose, in one place.

Each subclasses :class:`JobliteError` and, where one fits, the builtin it
refines, so ``except ValueError`` keeps working for code written for joblib::

    JobliteError
    ├── InvalidFileError (ValueError)         not a joblite file, or unreadable
    │   ├── CorruptFileError                  checksum mismatch, truncated file
    │   ├── ForeignFileError                  a joblib or pickle file, not joblite's
    │   └── UnsupportedVersionError           written by a newer joblite
    ├── UnsafeLoadError (pickle.UnpicklingError)
    │                                         a global outside ``allowed``, or misused
    ├── UnpicklableObjectError (pickle.PicklingError, TypeError)
    │                                         hash() or a process worker's task got
    │                                         an object pickle cannot save
    ├── NestingTooDeepError (RecursionError)  hash() of containers nested too deep
    ├── MissingDependencyError (ImportError)  an optional extra is not installed
    ├── NoDaskClientError (ValueError)        backend="dask" with no distributed.Client
    ├── NoRayRuntimeError (RuntimeError)      backend="ray" before ray.init()
    ├── TaskTimeoutError (TimeoutError, multiprocessing.TimeoutError)
    │                                         a Parallel task ran past ``timeout``
    ├── WorkerCrashedError (RuntimeError)     a worker process died mid-task
    ├── StoreBackendError (TypeError, ValueError)
    │                                         an unknown or invalid Memory store backend
    └── CacheError (RuntimeError)             a Memory store could not be used
        ├── CacheLockTimeoutError (TimeoutError)
        └── UnsafeCachePathError (OSError)    a cache path leads through a planted link

Example::

    >>> from joblite.exceptions import CorruptFileError, JobliteError
    >>> issubclass(CorruptFileError, ValueError) and issubclass(CorruptFileError, JobliteError)
    True
"""

from __future__ import annotations

import errno
import pickle
import threading
from typing import TYPE_CHECKING, Any

__all__ = [
    "CacheError",
    "CacheLockTimeoutError",
    "CorruptFileError",
    "ForeignFileError",
    "InvalidFileError",
    "JobliteError",
    "MissingDependencyError",
    "NestingTooDeepError",
    "NoDaskClientError",
    "NoRayRuntimeError",
    "StoreBackendError",
    "TaskTimeoutError",
    "UnpicklableObjectError",
    "UnsafeCachePathError",
    "UnsafeLoadError",
    "UnsupportedVersionError",
    "WorkerCrashedError",
]


class JobliteError(Exception):
    """Base class of every error joblite raises on purpose."""


class InvalidFileError(JobliteError, ValueError):
    """The file is not a joblite file, or cannot be read as one."""


class CorruptFileError(InvalidFileError):
    """The file is a joblite file but truncated or altered (checksum mismatch)."""


class ForeignFileError(InvalidFileError):
    """The file looks like one written by joblib (or plain pickle), not by joblite."""


class UnsupportedVersionError(InvalidFileError):
    """The file was written in a format version this joblite does not know."""


class UnsafeLoadError(JobliteError, pickle.UnpicklingError):
    """``load(..., allowed=...)`` refused a global, or what a file did with one.

    ``global_name`` is the refused ``module.qualname``; ``fixable`` is false
    when listing it in ``allowed`` would not help (joblite never loads it, or
    the file used it in a way no pickle of real data does).
    """

    def __init__(
        self, global_name: str, reason: str = "it is not in `allowed`", *, fixable: bool = True
    ) -> None:
        hint = (
            "; add its module or 'module.qualname' to `allowed` if you trust the file"
            if fixable
            else ""
        )
        super().__init__(f"refusing to load global {global_name!r}: {reason}{hint}")
        self.global_name = global_name
        self.reason = reason
        self.fixable = fixable

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unsafe_load_error, (type(self), self.global_name, self.reason, self.fixable))


def _unsafe_load_error(
    cls: type[UnsafeLoadError], global_name: str, reason: str, fixable: bool
) -> UnsafeLoadError:
    return cls(global_name, reason, fixable=fixable)


class UnpicklableObjectError(JobliteError, pickle.PicklingError, TypeError):
    """An object that cannot be pickled (a lock, a generator, an open file) was given to
    ``hash()``, or in a task's arguments to ``Parallel``'s process workers.

    A ``pickle.PicklingError`` as joblib documents, and a ``TypeError`` as
    pickle itself raises for these objects.
    """


class NestingTooDeepError(JobliteError, RecursionError):
    """``hash()`` was given containers nested deeper than it follows.

    A ``RecursionError``, as ``joblib.hash`` raises for the same value.
    """


class MissingDependencyError(JobliteError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""

    def __init__(self, package: str, extra: str | None, feature: str) -> None:
        # No extra: a package joblite leaves to the user's choice (s3fs, gcsfs, ...).
        install = f'"joblite[{extra}]"' if extra else package
        super().__init__(
            f"{feature} needs the optional package {package!r}; "
            f"install it with: pip install {install}"
        )
        self.package = package
        self.extra = extra
        self.feature = feature

    def __reduce__(self) -> tuple[type, tuple[str, str | None, str]]:
        return (type(self), (self.package, self.extra, self.feature))


class NoDaskClientError(JobliteError, ValueError):
    """``backend="dask"`` was asked for but no ``distributed.Client`` is active.

    A ``ValueError``, as ``distributed.get_client()`` and joblib raise.
    """


class NoRayRuntimeError(JobliteError, RuntimeError):
    """``backend="ray"`` was asked for but ``ray.init()`` has not run in this process.

    A ``RuntimeError``: the runtime's state is wrong, not an argument.
    """


if TYPE_CHECKING:
    import multiprocessing

    class TaskTimeoutError(JobliteError, TimeoutError, multiprocessing.TimeoutError):
        """A task ran longer than the ``timeout`` given to ``Parallel``."""


_LAZY_LOCK = threading.Lock()


def _task_timeout_error() -> type[JobliteError]:
    """Build ``TaskTimeoutError`` once: it also is ``multiprocessing.TimeoutError``.

    That is what joblib raises and what its users catch. Importing
    ``multiprocessing`` costs ~6 ms (``python -X importtime``) that
    ``import joblite`` must not pay, so the class is made at its first use.
    """
    with _LAZY_LOCK:
        made = globals().get("TaskTimeoutError")
        if made is not None:
            return made  # type: ignore[no-any-return]
        import multiprocessing

        class TaskTimeoutError(JobliteError, TimeoutError, multiprocessing.TimeoutError):
            """A task ran longer than the ``timeout`` given to ``Parallel``.

            Both a ``TimeoutError`` and ``multiprocessing.TimeoutError`` (joblib's).
            Example::

                >>> issubclass(TaskTimeoutError, multiprocessing.TimeoutError)
                True
            """

        TaskTimeoutError.__module__ = __name__
        TaskTimeoutError.__qualname__ = "TaskTimeoutError"
        globals()["TaskTimeoutError"] = TaskTimeoutError
        return TaskTimeoutError


def __getattr__(name: str) -> Any:
    if name == "TaskTimeoutError":
        return _task_timeout_error()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class WorkerCrashedError(JobliteError, RuntimeError):
    """A worker process died (segfault, ``os._exit``, OOM kill) while running a task."""


class StoreBackendError(JobliteError, TypeError, ValueError):
    """``Memory(backend=...)`` names no registered store, or ``register_store_backend``
    was given a bad name or class.

    Both a ``TypeError`` (what joblib raises for an unknown backend) and a
    ``ValueError`` (what it raises for bad ``register_store_backend`` arguments).
    """


class CacheError(JobliteError, RuntimeError):
    """A Memory store could not be read or written."""


class CacheLockTimeoutError(CacheError, TimeoutError):
    """Waiting for another caller computing the same cache entry took too long."""


class UnsafeCachePathError(CacheError, OSError):
    """A path in a cache directory is a symbolic link (or a hard-linked file) joblite never makes.

    The cache refuses to write or delete through it, so that a link planted in
    a shared cache cannot make it act on files outside. An :class:`OSError`
    with ``errno`` ``ELOOP`` and the offending ``filename``.
    """

    def __init__(self, path: str, reason: str) -> None:
        OSError.__init__(self, errno.ELOOP, reason, path)

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (str(self.filename), str(self.strerror)))
