"""What a memoized function hands out besides values: shelved results, pass-throughs.

Also the small helpers they share: loading an entry's output, the
``expires_after`` validation callback and bounded argument reprs.
"""

from __future__ import annotations

import functools
import os
import reprlib
import stat
import time
from collections.abc import Callable
from typing import Any

from ..exceptions import InvalidFileError
from ._entries import OUTPUT, delete_entry, read_metadata
from ._verbose import loading_line, say
from .stores.base import Store

__all__ = [
    "MemorizedResult",
    "NotMemorizedFunc",
    "NotMemorizedResult",
    "arg_reprs",
    "check_entry_file",
    "expires_after",
    "read_output",
    "short_repr",
    "write_output",
]

_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200
_PLAIN_REPR = frozenset({int, float, bool, type(None), complex})
_PLAIN_OR_STR = _PLAIN_REPR | {str}
_STR_ONLY = {str}
_MAX_STR = 200


def _all_plain(values: Any) -> bool:
    """Whether every item of ``values`` is a number, None or a str of at most 200 characters.

    The types are checked as one set, in C, not by a call per item: a miss
    reprs every argument (a 10-int list: ~1 µs less).
    """
    kinds = set(map(type, values))
    if kinds <= _PLAIN_REPR:
        return True
    if kinds == _STR_ONLY:  # a dict's keys: their lengths in C, not by a generator
        return max(map(len, values)) <= _MAX_STR
    return kinds <= _PLAIN_OR_STR and all(len(v) <= _MAX_STR for v in values if type(v) is str)


def arg_reprs(names: tuple[str, ...], values: tuple[Any, ...]) -> dict[str, str]:
    """``{name: short_repr(value)}``: a miss's ``input_args``.

    >>> arg_reprs(("x", "s"), (1, "a"))
    {'x': '1', 's': "'a'"}
    """
    return {name: short_repr(value) for name, value in zip(names, values, strict=True)}


def short_repr(value: Any) -> str:
    """A bounded repr for metadata: exact for scalars, abridged for big values."""
    kind = type(value)
    if kind in _PLAIN_REPR or (kind is str and len(value) <= _MAX_STR):
        return repr(value)
    if kind in (list, tuple) and len(value) <= 32 and _all_plain(value):
        return repr(value)
    if kind is dict and len(value) <= 32 and _all_plain(value) and _all_plain(value.values()):
        return repr(value)
    if kind.__module__ == "numpy" and kind.__name__ in ("ndarray", "memmap"):
        return f"{kind.__name__}(shape={value.shape}, dtype={value.dtype})"
    return _repr.repr(value)


def check_entry_file(path: str, st: os.stat_result, *, writable: bool = False) -> None:
    """Refuse an entry that joblite did not write: :class:`InvalidFileError` (it is recomputed).

    ``st`` is the ``lstat`` of ``path``. Entries are single-linked regular
    files: a link or a FIFO planted there must not be followed or hang the
    read, and an array mapped writable (``r+``, ``w+``) must not write
    through a hard link into a file outside the cache.
    """
    if not stat.S_ISREG(st.st_mode) or (writable and st.st_nlink > 1):
        raise InvalidFileError(f"{path} is not a cache entry file (a link or a special file)")


def read_output(store: Store, key: str, mmap_mode: str | None) -> Any:
    from .._core.fileformat import read_object

    path = store.local_path(key)
    if path is not None:
        try:
            st = os.lstat(path)
            check_entry_file(path, st, writable=mmap_mode in ("r+", "w+"))
            return read_object(path, mmap_mode=mmap_mode, entry=st)
        except (FileNotFoundError, NotADirectoryError):
            raise KeyError(key) from None
    with store.open_read(key) as f:
        return read_object(f)


# The file format is imported on the first write (it takes tens of ms, and a
# Memory may never write), then kept: an import statement per miss costs ~0.5 µs.
_write_object: Callable[..., None] | None = None


def write_output(
    store: Store, key: str, value: Any, compression: Any, lock: object, *, measure: bool
) -> int | None:
    """Write ``value`` to ``key`` in the core file format; with ``measure``, return its size.

    ``lock``: see ``Store.open_write``. The size is where the file was left
    (its end); None if the store's file cannot tell, or without ``measure``
    (telling may cost a system call).
    """
    global _write_object
    if _write_object is None:
        from .._core.fileformat import write_object

        _write_object = write_object
    with store.open_write(key, lock=lock) as f:
        _write_object(value, f, compression=compression)
        if not measure:
            return None
        try:
            return f.tell()
        except (OSError, ValueError, AttributeError):  # e.g. a stream to a remote store
            return None


def expires_after(
    days: float = 0,
    seconds: float = 0,
    microseconds: float = 0,
    milliseconds: float = 0,
    minutes: float = 0,
    hours: float = 0,
    weeks: float = 0,
) -> Callable[[dict[str, Any]], bool]:
    """A ``cache_validation_callback`` treating entries older than the duration as stale.

    Example::

        @mem.cache(cache_validation_callback=expires_after(hours=1))
        def fetch(url): ...
    """
    import datetime

    limit = datetime.timedelta(
        days=days,
        seconds=seconds,
        microseconds=microseconds,
        milliseconds=milliseconds,
        minutes=minutes,
        hours=hours,
        weeks=weeks,
    ).total_seconds()

    def cache_validation_callback(metadata: dict[str, Any]) -> bool:
        return bool(time.time() - metadata.get("time", 0.0) < limit)

    return cache_validation_callback


class MemorizedResult:
    """A handle on one stored call result: ``get()`` loads it, ``clear()`` deletes it.

    Picklable (it holds the store and the entry key), so it can be sent to
    another process sharing the cache. ``get()`` raises :class:`KeyError` if
    the entry was cleared meanwhile. joblib's attributes are there:
    ``store_backend``, ``func_id``, ``args_id``, ``mmap_mode``, ``metadata``,
    ``duration``, ``verbose`` (``get()`` reports loads above 1) and ``timestamp``.

    Example::

        result = square.call_and_shelve(4)
        result.args_id, result.get()
    """

    def __init__(
        self,
        store: Store,
        entry: str,
        *,
        func: str,
        mmap_mode: str | None = None,
        metadata: dict[str, Any] | None = None,
        verbose: float = 0,
        timestamp: float | None = None,
    ) -> None:
        self.store = store
        self.entry = entry
        self.func = func
        self.mmap_mode = mmap_mode
        self.metadata = metadata if metadata is not None else read_metadata(store, entry)
        self.verbose = verbose
        self.timestamp = timestamp

    @property
    def store_backend(self) -> Store:
        """joblib's name for :attr:`store`."""
        return self.store

    @property
    def func_id(self) -> str:
        """The function's folder in the store (its identifier made safe as a file name)."""
        return self.entry.split("/", 1)[0]

    @property
    def args_id(self) -> str:
        return self.entry.rsplit("/", 1)[-1]

    @property
    def duration(self) -> float | None:
        value = self.metadata.get("duration")
        return float(value) if value is not None else None

    def get(self) -> Any:
        """Load the stored value; :class:`KeyError` if it is gone."""
        key = self.entry + OUTPUT
        if self.verbose > 1:
            arguments = ", ".join(
                f"{k}={v}" for k, v in self.metadata.get("input_args", {}).items()
            )
            where = self.store.local_path(key) or f"{self.store.location}/{self.entry}"
            name = self.func.rpartition(".")[2]
            say(loading_line(f"{name}({arguments})", self.timestamp, self.verbose, where))
        try:
            return read_output(self.store, key, self.mmap_mode)
        except KeyError:
            raise KeyError(
                f"the cached result {self.entry!r} no longer exists (it may have been cleared)"
            ) from None

    def clear(self) -> None:
        """Delete the stored value."""
        delete_entry(self.store, self.entry)

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(location="{self.store.location}", func="{self.func}", '
            f'args_id="{self.args_id}")'
        )

    def __getstate__(self) -> dict[str, Any]:
        # As joblib: no timestamp, so that an object holding this one hashes
        # alike in every process and run.
        return {**self.__dict__, "timestamp": None}


class NotMemorizedResult:
    """What ``call_and_shelve`` returns when caching is off: the value, held in memory."""

    __slots__ = ("valid", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.valid = True

    def get(self) -> Any:
        if not self.valid:
            raise KeyError("no value: the result was cleared")
        return self.value

    def clear(self) -> None:
        self.valid = False
        self.value = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.value!r})"
            if self.valid
            else "NotMemorizedResult(cleared)"
        )


class NotMemorizedFunc:
    """The result of ``Memory(None).cache(f)``: calls go straight to ``f``."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.__wrapped__ = func
        functools.update_wrapper(self, func, updated=())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def call(self, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        return self.func(*args, **kwargs), {}

    def call_and_shelve(self, *args: Any, **kwargs: Any) -> NotMemorizedResult:
        return NotMemorizedResult(self.func(*args, **kwargs))

    def check_call_in_cache(self, *args: Any, **kwargs: Any) -> bool:
        return False

    def clear(self, warn: bool = True) -> None:
        """Nothing to clear (``warn`` is accepted for joblib compatibility)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(func={self.func!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.func,))
