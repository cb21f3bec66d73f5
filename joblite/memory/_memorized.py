"""The memoized function's public face: its key for a call, its methods, pickling.

A call's key hashes its bound arguments below the function's id and code
version. The code version is checked against the store once per process
(see :mod:`._keys`), not on every call. How the call is then served (a hit
loaded, a miss computed and stored) is :mod:`._calls`.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import time
from collections.abc import Callable, Iterable
from typing import Any

from .._core._hash_flat import flat_digest
from .._core._hash_functions import ONE_SHOT
from .._core.hashing import hash as core_hash
from ._access import UNPICKLE
from ._calls import (
    ABSENT,
    FILE_TYPE,
    REGULAR,
    STALE,
    UNLOADABLE,
    VALID,
    CallMachinery,
    local_root,
)
from ._entries import OUTPUT, EntryInfo, delete_entry, entry_info
from ._keys import ArgumentBinder, code_version, identify, seed_version
from ._results import MemorizedResult, NotMemorizedResult
from ._settings import MMAP_MODES as MMAP_MODES
from ._settings import CacheSettings as CacheSettings
from ._settings import check_verbose
from ._verbose import say_warning
from .stores.base import Store

logger = logging.getLogger(__name__)

__all__ = ["BoundMemorizedFunc", "CacheSettings", "MemorizedFunc"]

# core_hash's own flat path, called without core_hash's frame and checks:
# the same bytes hashed by the same function, so the same key (1.1k of a hit's
# 41.8k instructions, callgrind).
_XXH3 = ONE_SHOT["xxh3_128"]
_monotonic = time.monotonic
_lstat = os.lstat


class MemorizedFunc(CallMachinery):
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
        timestamp: float | None = None,
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
        # When the Memory was made: the verbose "Loading" lines show the time since.
        self.timestamp = time.time() if timestamp is None else timestamp
        self._identity = identify(func)
        self._short_name = self._identity.name.rpartition(".")[2]
        self._binder = ArgumentBinder(self._identity.signature_of, ignore)
        self._prefix = ""
        # Never a version: the first call checks the version against the store.
        self._version = ""
        # What the common call reads (see __call__), looked up once here.
        self._checked = settings.checked
        self._func_id = self._identity.func_id
        self._local_root = local_root(settings.store)
        # Never replaced on the settings (an unpickled copy gets new ones and a new self).
        self._hot, self._access = settings.hot, settings.access
        plain = self._identity.implicit_self is None and not self._identity.bound_state
        self._as_is = self._binder.as_is if plain else -1
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
        if self._checked.get(self._func_id) != self._version:
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

    # -- public interface -------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        mmap_mode = self.mmap_mode
        if (
            not kwargs
            and len(args) == self._as_is
            and mmap_mode is None
            and self._checked.get(self._func_id) == self._version
        ):
            # The common call, keyed inline (~1 µs less than _entry_and_values):
            # positional arguments that are the bound values as they are, a
            # version already checked, no memmaps to coerce.
            digest = flat_digest(args, tuple, _XXH3, "xxh3_128")
            entry, values = self._prefix + (digest or core_hash(args)), args
        else:
            entry, values = self._entry_and_values(args, kwargs)
        root = self._local_root
        if (
            root is not None
            and mmap_mode is None
            and self.verbose <= 1
            and self.cache_validation_callback is None
        ):
            # A local store, no verbose line, no callback: _load without its
            # checks, tuple and calls, and _local_value's hit inline (its frame:
            # 0.4k of a hit's 40.7k instructions, callgrind).
            path = root + entry + OUTPUT
            try:
                st = _lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                return self._compute_and_store(entry, values, args, kwargs)[0]
            hot = self._hot
            item = hot.items.get(entry)
            # The held copy while its file is unchanged (_file_value's check);
            # anything else (no copy, a changed file, a link) goes the long way.
            try:
                if (
                    item is not None
                    and item[1]
                    and item[0]
                    == (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                    and st.st_mode & FILE_TYPE == REGULAR
                ):
                    hot.hits.add(entry)
                    value = item[2]
                    if value is UNPICKLE:
                        value = pickle.loads(item[1])
                else:
                    value = self._file_value(entry, path, st)
            except UNLOADABLE:  # the long way logs it and discards the entry
                value = self._file_value(entry, path, st)
            if value is ABSENT:
                return self._compute_and_store(entry, values, args, kwargs)[0]
            access = self._access
            # AccessTracker.hit's lock-free case, inline: a call less.
            counts = access.pending.get(entry)
            if counts is not None and _monotonic() < counts.due:
                next(counts.numbers)
            else:
                access.hit(entry)
            return value
        if self.verbose >= 20:
            self._report_query(entry, args, kwargs)
        validity, value = self._load(entry)
        if validity is VALID:
            return value
        return self._compute_and_store(entry, values, args, kwargs, stale=validity is STALE)[0]

    def call(self, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Always compute (and store) the result; return ``(output, metadata)``."""
        entry, values = self._entry_and_values(args, kwargs)
        value, metadata, stored = self._run_and_store(entry, values, args, kwargs)
        if stored:
            value = self._stored_value(entry, value)
        return value, metadata

    def call_and_shelve(self, *args: Any, **kwargs: Any) -> MemorizedResult | NotMemorizedResult:
        """Make sure the result is stored and return a handle on it instead of the value.

        Returns a :class:`NotMemorizedResult` holding the value if it could not be stored.
        """
        entry, values = self._entry_and_values(args, kwargs)
        if self.verbose >= 20:
            self._report_query(entry, args, kwargs)
        validity, metadata = self._validity(entry)
        if validity is not VALID:
            value, metadata = self._compute_and_store(
                entry, values, args, kwargs, stale=validity is STALE
            )
            # Not stored, or evicted at once (a tiny items_limit): hand out the value.
            if not self._exists(entry):
                return NotMemorizedResult(value)
        # The metadata just written or validated, when there is: reading it
        # back would fold the journal again.
        return self._shelved(entry, metadata)

    def _shelved(self, entry: str, metadata: dict[str, Any] | None) -> MemorizedResult:
        return MemorizedResult(
            self.store,
            entry,
            func=self._identity.name,
            mmap_mode=self.mmap_mode,
            metadata=metadata,
            verbose=self.verbose - 1,
            timestamp=self.timestamp,
        )

    def check_call_in_cache(self, *args: Any, **kwargs: Any) -> bool:
        """Whether a valid result for this call is stored (nothing is computed)."""
        return self._validity(self._entry(args, kwargs))[0] is VALID

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
        if warn and self.verbose > 0:
            say_warning(
                f"[{self!r}]: Clearing function cache identified by {self._identity.func_id}"
            )
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
        # drop this process's entries. It is checked against the store first (as
        # the first call would), so no copy needs to list the store for it. A
        # flag saying whether this process had checked it would make the pickle,
        # hence joblite.hash of anything holding the function, change at its
        # first call: a miss.
        version, source = code_version(self._identity.target)
        if self._settings.checked.get(self._identity.func_id) != version:
            self._entry_prefix()
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
                (version, source),
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
    version_state: tuple[str, str | None] | None = None,
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
        version, source = version_state
        seed_version(memorized._identity.target, version, source)
        # The sender checked this version against the store before pickling.
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
