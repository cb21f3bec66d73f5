"""The memoized function: look the call up, else compute it once and store it.

A hit costs one hash of the arguments, one ``stat`` of the entry's file (and
a read of it unless this process holds an unchanged copy, see :mod:`._access`)
and an in-memory hit count. A miss takes the entry's lock, computes, writes
one file and appends one journal line. The function's code version is
checked against the store once per process (see :mod:`._keys`), not on
every call.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import pickle
import time
from collections.abc import Callable, Iterable
from typing import Any

from .._core.hashing import hash as core_hash
from ..exceptions import CacheError, CacheLockTimeoutError, InvalidFileError
from ._access import MAX_HOT_FILE_SIZE
from ._eviction import (
    FUNCTION_INFO,
    OUTPUT,
    EntryInfo,
    delete_entry,
    entry_info,
    read_metadata,
)
from ._journal import append_store
from ._keys import ArgumentBinder, code_version, identify, seed_version
from ._results import (
    MemorizedResult,
    NotMemorizedResult,
    check_entry_file,
    read_output,
    short_repr,
    write_output,
)
from ._settings import MMAP_MODES as MMAP_MODES
from ._settings import CacheSettings as CacheSettings
from ._settings import check_verbose
from .stores.base import Store

logger = logging.getLogger(__name__)

__all__ = ["BoundMemorizedFunc", "CacheSettings", "MemorizedFunc"]

# Unpickling an entry written by other code can fail in these ways besides a
# corrupt file (a class that moved, a module that is gone): all mean "recompute".
_UNLOADABLE = (InvalidFileError, pickle.UnpicklingError, EOFError, ImportError, AttributeError)
# Storing a result can fail without the computation being wrong (an
# unpicklable value, a full disk): the value is returned, uncached, with a log.
# These are the expected ways; any other error is logged with its traceback.
_UNSTORABLE = (pickle.PicklingError, TypeError, OSError, CacheError)

# What _load returns beside False when an entry exists but the callback rejected it
# (and _validity, beside _VALID and _ABSENT).
_STALE = object()
_VALID = object()
_ABSENT = object()
# What _load_file returns when there is no file.
_MISSING = object()


class MemorizedFunc:
    """A function whose results are cached in a store; built by ``Memory.cache``.

    Calling it returns the cached result for these arguments or computes and
    stores it. Errors raised by the function propagate unchanged and store
    nothing. Decorating a method caches per instance (``self`` is hashed
    like any argument; add ``"self"`` to ``ignore`` to share across instances).
    """

    def __init__(
        self,
        func: Callable[..., Any],
        settings: CacheSettings,
        *,
        ignore: Iterable[str] | None = None,
        verbose: float = 1,
        mmap_mode: str | None = None,
        cache_validation_callback: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        if not callable(func):
            raise TypeError(f"Memory.cache needs a callable, got {func!r}")
        if cache_validation_callback is not None and not callable(cache_validation_callback):
            raise ValueError(
                f"cache_validation_callback needs to be callable, got {cache_validation_callback!r}"
            )
        if mmap_mode not in MMAP_MODES:
            raise ValueError(f"mmap_mode must be one of {MMAP_MODES}, got {mmap_mode!r}")
        self.func = func
        self.ignore = list(ignore) if ignore is not None else []
        self.verbose = check_verbose(verbose)
        self.mmap_mode = mmap_mode
        self.cache_validation_callback = cache_validation_callback
        self._settings = settings
        self._identity = identify(func)
        self._binder = ArgumentBinder(self._identity.signature_of, ignore)
        self._prefix: str | None = None
        self._version: str | None = None
        functools.update_wrapper(self, func, updated=())
        self.__wrapped__ = func

    @property
    def store(self) -> Store:
        return self._settings.store

    # joblib's name for it, read by code written for joblib.
    store_backend = store

    @property
    def func_id(self) -> str:
        return self._identity.func_id

    # -- keys -------------------------------------------------------------

    def _entry_prefix(self) -> str:
        settings = self._settings
        func_id = self._identity.func_id
        version, source = code_version(self._identity.target)
        if settings.checked.get(func_id) != version:
            # A version from compiled code (no source) is not comparable across
            # processes: another one on the store does not mean the code changed.
            if source is not None:
                self._drop_other_versions(version)
            settings.checked[func_id] = version
        self._version = version
        prefix = self._prefix = f"{func_id}/{version}/"
        return prefix

    def _drop_other_versions(self, version: str) -> None:
        store = self._settings.store
        func_id = self._identity.func_id
        old = [v for v in store.children(func_id) if v != version]
        try:
            for other in old:
                store.delete(f"{func_id}/{other}")
        except OSError as exc:  # a read-only cache: the old entries stay, unused
            logger.warning("[Memory] cannot remove old entries of %s: %s", self._identity.name, exc)
            return
        if old:
            logger.warning(
                "[Memory] function %s has changed since its results were cached: "
                "its old entries in %s were removed",
                self._identity.name,
                store.location,
            )

    def _entry(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        return self._entry_and_values(args, kwargs)[0]

    def _entry_and_values(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, tuple[Any, ...]]:
        """The entry key and the bound argument values it hashes (for the metadata)."""
        prefix = self._prefix
        if prefix is None or self._settings.checked.get(self._identity.func_id) != self._version:
            prefix = self._entry_prefix()
        identity = self._identity
        if identity.implicit_self is not None:
            args = (identity.implicit_self, *args)
        values = self._binder.bind(args, kwargs)
        # As joblib: with mmap_mode, a memmap argument (e.g. a cached result
        # passed on) hits the entry of the equal in-memory array.
        hashed = (identity.bound_state, values) if identity.bound_state else values
        return prefix + core_hash(hashed, coerce_mmap=self.mmap_mode is not None), values

    def __cache_key__(self, *args: Any, **kwargs: Any) -> str:
        """The store key of this call's entry (``func_id/version/args_hash``)."""
        return self._entry(args, kwargs)

    # -- loading ----------------------------------------------------------

    def _load(self, entry: str) -> tuple[bool, Any]:
        """``(True, value)`` on a valid hit, else ``(False, None | _STALE)``."""
        settings = self._settings
        store = settings.store
        output = entry + OUTPUT
        path = store.local_path(output)
        try:
            if path is not None and self.mmap_mode is None:
                value = self._load_file(path)
                if value is _MISSING:
                    return False, None
            else:
                value = read_output(store, output, self.mmap_mode)
        except KeyError:
            return False, None
        except _UNLOADABLE as exc:
            logger.warning(
                "[Memory] cached result %s of %s could not be loaded (%s: %s); "
                "deleting it and recomputing",
                entry,
                self._identity.name,
                type(exc).__name__,
                exc,
            )
            self._discard(entry)
            return False, None
        callback = self.cache_validation_callback
        if callback is not None and not callback(read_metadata(store, entry)):
            return False, _STALE
        settings.access.hit(entry)
        if self.verbose >= 10:
            logger.info("[Memory] loaded %s from %s", self._identity.name, entry)
        return True, value

    def _load_file(self, path: str) -> Any:
        """Load ``path``, from the in-process copy while the file is unchanged.

        Returns ``_MISSING`` (cheaper than raising, on every miss) if there is no file.
        """
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return _MISSING
        check_entry_file(path, st)
        hot = self._settings.hot
        identity = (st.st_ino, st.st_size, st.st_mtime_ns)
        data = hot.get(path, identity)
        if data:
            return pickle.loads(data)
        from .._core.fileformat import read_object  # after the hot path: imports cost ~0.5 µs

        try:
            value = read_object(path)
        except (FileNotFoundError, NotADirectoryError):
            return _MISSING
        if data is None and st.st_size <= MAX_HOT_FILE_SIZE:
            hot.put(path, identity, value)
        return value

    # -- computing and storing ------------------------------------------

    def _metadata(self, values: tuple[Any, ...], start: float, duration: float) -> dict[str, Any]:
        # ``values`` are the bound, non-ignored arguments already hashed for the key.
        names = self._binder.kept_names
        return {
            "duration": duration,
            "time": start,
            "input_args": {name: short_repr(v) for name, v in zip(names, values, strict=True)},
            "func": self._identity.name,
        }

    def _run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, float, float]:
        if self.verbose > 0:
            logger.info("[Memory] calling %s", self._identity.name)
        start = time.time()
        started = time.perf_counter()
        value = self.func(*args, **kwargs)
        duration = time.perf_counter() - started
        if self.verbose > 0:
            logger.info("[Memory] %s computed in %.3fs", self._identity.name, duration)
        return value, start, duration

    def _write_function_info(self, entry: str) -> None:
        settings = self._settings
        version_dir = entry.rsplit("/", 1)[0]
        if version_dir in settings.info_written:
            return
        _, source = code_version(self._identity.target)
        info = {"name": self._identity.name, "source": source}
        settings.store.write_bytes(f"{version_dir}/{FUNCTION_INFO}", json.dumps(info).encode())
        settings.info_written.add(version_dir)

    def _store(self, entry: str, value: Any, metadata: dict[str, Any], lock: object = None) -> bool:
        """Write the entry; log and return False if the value cannot be stored."""
        settings = self._settings
        store, evictor = settings.store, settings.evictor
        output, measure = entry + OUTPUT, evictor is not None
        try:
            self._write_function_info(entry)
            size = write_output(store, output, value, settings.compression, lock, measure=measure)
            append_store(store, entry, metadata)
        # Pickling runs the value's own code (__reduce__, __getstate__), which
        # may raise anything: the value is computed and must not be lost.
        except Exception as exc:
            logger.warning(
                "[Memory] the result of %s could not be cached (%s: %s); returning it uncached",
                self._identity.name,
                type(exc).__name__,
                exc,
                exc_info=not isinstance(exc, _UNSTORABLE),
            )
            self._discard(entry)
            return False
        if evictor is not None:
            if size is None:
                try:
                    size = store.stat(output).size
                except KeyError:  # evicted or cleared by someone else already
                    size = 0
            try:
                evictor.after_write(size)
            except OSError as exc:  # the value is stored; only trimming the cache failed
                logger.warning("[Memory] could not evict entries from %s: %s", store.location, exc)
        return True

    def _discard(self, entry: str) -> None:
        """Delete a damaged or half-stored entry, if the cache can be written to."""
        with contextlib.suppress(OSError):  # read-only: it stays, and is recomputed each time
            delete_entry(self._settings.store, entry)

    def _stored_value(self, entry: str, value: Any) -> Any:
        """With ``mmap_mode``, the stored value reloaded as hits load it; else ``value``."""
        if self.mmap_mode is None:
            return value
        try:
            return read_output(self._settings.store, entry + OUTPUT, self.mmap_mode)
        except (KeyError, *_UNLOADABLE):  # evicted or replaced meanwhile
            return value

    def _compute_and_store(
        self,
        entry: str,
        values: tuple[Any, ...],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        stale: bool = False,
    ) -> tuple[Any, dict[str, Any] | None]:
        """``(value, metadata stored by this call)``; metadata None if it stored nothing."""
        settings = self._settings
        if not settings.lock:
            value, start, duration = self._run(args, kwargs)
            metadata = self._metadata(values, start, duration)
            if self._store(entry, value, metadata):
                return self._stored_value(entry, value), metadata
            return value, None
        with contextlib.ExitStack() as stack:
            try:
                lock = stack.enter_context(
                    settings.store.lock(entry + OUTPUT, timeout=settings.lock_timeout)
                )
            except CacheLockTimeoutError:
                raise
            except OSError as exc:  # read-only mount, another user's directory, planted link
                logger.warning(
                    "[Memory] cannot write to the cache in %s (%s); %s computes uncached",
                    settings.store.location,
                    exc,
                    self._identity.name,
                )
                return self._run(args, kwargs)[0], None
            # Another caller may have computed it while we waited for the lock
            # (a stale entry was seen by the callback already: do not ask it twice).
            if not stale:
                found, value = self._load(entry)
                if found:
                    return value, None
            value, start, duration = self._run(args, kwargs)
            metadata = self._metadata(values, start, duration)
            stored = self._store(entry, value, metadata, lock)
        if stored:
            return self._stored_value(entry, value), metadata
        return value, None

    def _exists(self, entry: str) -> bool:
        try:
            self._settings.store.stat(entry + OUTPUT)
        except KeyError:
            return False
        return True

    # -- public interface -------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        entry, values = self._entry_and_values(args, kwargs)
        found, value = self._load(entry)
        if found:
            return value
        return self._compute_and_store(entry, values, args, kwargs, stale=value is _STALE)[0]

    def call(self, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Always compute (and store) the result; return ``(output, metadata)``."""
        entry, values = self._entry_and_values(args, kwargs)
        value, start, duration = self._run(args, kwargs)
        metadata = self._metadata(values, start, duration)
        if self._store(entry, value, metadata):
            value = self._stored_value(entry, value)
        return value, metadata

    def call_and_shelve(self, *args: Any, **kwargs: Any) -> MemorizedResult | NotMemorizedResult:
        """Make sure the result is stored and return a handle on it instead of the value.

        Returns a :class:`NotMemorizedResult` holding the value if it could not be stored.
        """
        entry, values = self._entry_and_values(args, kwargs)
        validity, metadata = self._validity(entry)
        if validity is not _VALID:
            value, metadata = self._compute_and_store(
                entry, values, args, kwargs, stale=validity is _STALE
            )
            # Not stored, or evicted at once (a tiny items_limit): hand out the value.
            if not self._exists(entry):
                return NotMemorizedResult(value)
        # The metadata just written or validated, when there is: reading it
        # back would fold the journal again.
        return MemorizedResult(
            self.store, entry, func=self._identity.name, mmap_mode=self.mmap_mode, metadata=metadata
        )

    def _validity(self, entry: str) -> tuple[object, dict[str, Any] | None]:
        """``(_VALID | _STALE | _ABSENT, metadata the callback was given, if it ran)``."""
        if not self._exists(entry):
            return _ABSENT, None
        callback = self.cache_validation_callback
        if callback is None:
            return _VALID, None
        metadata = read_metadata(self.store, entry)
        return (_VALID if callback(metadata) else _STALE), metadata

    def check_call_in_cache(self, *args: Any, **kwargs: Any) -> bool:
        """Whether a valid result for this call is stored (nothing is computed)."""
        return self._validity(self._entry(args, kwargs))[0] is _VALID

    def lookup(self, *args: Any, **kwargs: Any) -> EntryInfo | None:
        """This call's entry (size, creation, last access, hit count, metadata) or None."""
        entry = self._entry(args, kwargs)
        self._settings.access.flush()
        return entry_info(self.store, entry)

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Drop this call's entry; return whether there was one."""
        return delete_entry(self.store, self._entry(args, kwargs))

    def put(self, value: Any, *args: Any, **kwargs: Any) -> None:
        """Store ``value`` as the result of this call, without calling the function."""
        entry, values = self._entry_and_values(args, kwargs)
        self._store(entry, value, self._metadata(values, time.time(), 0.0))

    def clear(self, warn: bool = True) -> None:
        """Delete every stored result of this function."""
        if warn:
            logger.warning("[Memory] clearing the cache of %s", self._identity.name)
        self.store.delete(self._identity.func_id)
        self._settings.checked.pop(self._identity.func_id, None)
        self._settings.info_written.clear()
        self._settings.access.forget(self._identity.func_id + "/")

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return BoundMemorizedFunc(self, instance)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(func={self.func!r}, location={self.store.location})"

    def __reduce__(self) -> tuple[Any, ...]:
        # The code version travels with the function: a copy rebuilt elsewhere
        # (by value, without readable source) would compute a different one and
        # drop this process's entries. So does whether this process already
        # checked it against the store, sparing the copy a listing of it.
        version, source = code_version(self._identity.target)
        checked = self._settings.checked.get(self._identity.func_id) == version
        return (
            _rebuild,
            (
                type(self),
                self.func,
                self._settings,
                self.ignore,
                self.verbose,
                self.mmap_mode,
                self.cache_validation_callback,
                (version, source, checked),
            ),
        )


def _rebuild(
    cls: type[MemorizedFunc],
    func: Callable[..., Any],
    settings: CacheSettings,
    ignore: list[str],
    verbose: float,
    mmap_mode: str | None,
    callback: Callable[[dict[str, Any]], bool] | None,
    version_state: tuple[str, str | None, bool] | None = None,
) -> MemorizedFunc:
    memorized = cls(
        func,
        settings,
        ignore=ignore,
        verbose=verbose,
        mmap_mode=mmap_mode,
        cache_validation_callback=callback,
    )
    if version_state is not None:
        version, source, checked = version_state
        seed_version(memorized._identity.target, version, source)
        if checked:
            settings.checked.setdefault(memorized.func_id, version)
    return memorized


class BoundMemorizedFunc:
    """A memoized method seen through an instance: the instance is the first argument."""

    __slots__ = ("__func__", "__self__")

    def __init__(self, memorized: MemorizedFunc, instance: Any) -> None:
        self.__func__ = memorized
        self.__self__ = instance

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__func__(self.__self__, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.__func__, name)
        if name in _PER_CALL_METHODS:
            return functools.partial(attribute, self.__self__)
        if name == "put":
            return lambda value, *a, **kw: attribute(value, self.__self__, *a, **kw)
        return attribute

    def __cache_key__(self, *args: Any, **kwargs: Any) -> str:
        return self.__func__.__cache_key__(self.__self__, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<bound {self.__func__!r} of {self.__self__!r}>"


_PER_CALL_METHODS = frozenset(
    {"call", "call_and_shelve", "check_call_in_cache", "lookup", "invalidate"}
)
