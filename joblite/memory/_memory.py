"""``Memory``: a cache of function results in a directory (or any store)."""

from __future__ import annotations

import contextlib
import datetime
import functools
import inspect
import logging
import os
import pathlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .._core.fsutil import TEMP_PREFIX
from ._async import AsyncMemorizedFunc
from ._eviction import AutoEvictor, CacheLimits, evict
from ._memorized import MemorizedFunc
from ._results import NotMemorizedFunc
from ._settings import MMAP_MODES, CacheSettings, check_verbose
from ._verbose import say_warning
from .stores.base import Store, get_store_class
from .stores.fsspec import is_url
from .stores.local import FileStore

logger = logging.getLogger(__name__)

__all__ = ["Memory"]


class Memory:
    """Cache the results of functions in ``location`` (joblib's ``Memory``).

    Parameters (joblib's names, defaults and meanings):

    - ``location``: a directory (str or ``pathlib.Path``; entries go to its
      ``joblib`` subfolder, created 0o700 if missing), an fsspec URL
      (``"s3://bucket/cache"``: see docs/scaling.md), a :class:`Store`
      instance, or None to disable caching (calls go straight through).
    - ``backend``: the registered store name used for a path (``"local"``;
      ``"fsspec"`` for a URL or a path through fsspec).
    - ``mmap_mode``: None, ``"r+"``, ``"r"``, ``"w+"`` or ``"c"``: load
      numpy arrays in results as memory maps of the entry file.
    - ``compress``: joblib's forms (bool, 0-9, codec name, ``(name, level)``).
    - ``verbose``: 0 is silent; >= 1 logs computations, >= 10 also hits
      (through the ``joblite.memory`` loggers, at INFO level).
    - ``backend_options``: keyword arguments for the store class (for
      ``"fsspec"``: storage options such as ``endpoint_url``, and ``lease``).

    Beyond joblib (keyword-only): ``bytes_limit`` (int or ``"10G"``),
    ``items_limit`` and ``age_limit`` (timedelta, seconds or ``"30d"``) are
    enforced automatically after writes, least recently used first;
    ``lock=False`` lets concurrent identical calls all compute;
    ``lock_timeout`` bounds the wait for another caller computing the same
    call (then :class:`~joblite.exceptions.CacheLockTimeoutError`).

    Raises :class:`TypeError` for a ``location`` of another type or a
    ``verbose`` that is not a number, and :class:`ValueError` for an unknown
    ``backend``, ``mmap_mode`` or limit.

    Example::

        >>> mem = Memory(None)
        >>> mem.cache(abs)(-3)
        3
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | Store | None = None,
        backend: str = "local",
        mmap_mode: str | None = None,
        compress: bool | int | str | tuple[str, int] = False,
        verbose: int = 1,
        backend_options: dict[str, Any] | None = None,
        *,
        bytes_limit: int | str | None = None,
        items_limit: int | None = None,
        age_limit: datetime.timedelta | float | str | None = None,
        lock: bool = True,
        lock_timeout: float | None = None,
    ) -> None:
        from .._core.codecs import normalize_compress

        if mmap_mode not in MMAP_MODES:
            raise ValueError(f"mmap_mode must be one of {MMAP_MODES}, got {mmap_mode!r}")
        self.location = location
        self.backend = backend
        self.mmap_mode = mmap_mode
        self.compress = compress
        self._verbose = check_verbose(verbose)
        # The verbose "Loading" lines show the time since (joblib's attribute).
        self.timestamp: float | None = time.time()
        self.backend_options = dict(backend_options or {})
        self.limits = CacheLimits.parse(bytes_limit, items_limit, age_limit)
        compression = normalize_compress(compress)
        if compression.codec is not None and mmap_mode is not None:
            logger.warning("[Memory] compressed results cannot be memory-mapped; mmap_mode ignored")
        store = self._make_store(location, backend, self.backend_options)
        self._settings: CacheSettings | None = None
        if store is not None:
            self._settings = CacheSettings(
                store,
                compression,
                lock=bool(lock),
                lock_timeout=lock_timeout,
                evictor=AutoEvictor(store, self.limits) if self.limits else None,
            )

    @staticmethod
    def _make_store(
        location: str | os.PathLike[str] | Store | None, backend: str, options: dict[str, Any]
    ) -> Store | None:
        if location is None:
            return None
        if isinstance(location, Store):
            return location
        if not isinstance(location, (str, os.PathLike)):
            raise TypeError(
                "location must be None, a directory path (str or pathlib.Path) or a "
                f"joblite.memory.Store, got {type(location).__name__}"
            )
        path = os.fspath(location)
        if is_url(path):  # never a local directory named "s3:"
            backend = "fsspec" if backend == "local" else backend
        store_class: type[Any] = get_store_class(backend)
        if backend == "fsspec":
            return store_class(f"{path.rstrip('/')}/joblib", **options)  # type: ignore[no-any-return]
        directory = os.path.expanduser(path)
        store: Store = store_class(os.path.join(directory, "joblib"), **options)
        if issubclass(store_class, FileStore):
            _add_gitignore(directory)
        return store

    @property
    def store(self) -> Store | None:
        """The store entries live in (None when caching is disabled)."""
        return None if self._settings is None else self._settings.store

    # joblib's name for it, read by code written for joblib.
    store_backend = store

    @property
    def verbose(self) -> float:
        return self._verbose

    @classmethod
    @contextlib.contextmanager
    def temporary(cls, **kwargs: Any) -> Iterator[Memory]:
        """A ``Memory`` in a fresh temporary directory, removed on exit.

        Example::

            with Memory.temporary(verbose=0) as mem:
                features = mem.cache(compute_features)
        """
        directory = tempfile.mkdtemp(prefix="joblite-memory-")
        memory = None
        try:
            memory = cls(directory, **kwargs)
            yield memory
        finally:
            if memory is not None and memory._settings is not None:
                memory._settings.forget_checks()
            shutil.rmtree(directory, ignore_errors=True)

    def cache(
        self,
        func: Any = None,
        ignore: Iterable[str] | None = None,
        verbose: int | None = None,
        mmap_mode: str | bool | None = False,
        cache_validation_callback: Callable[[dict[str, Any]], bool] | None = None,
    ) -> Any:
        """Decorate ``func`` so its results are cached (usable with or without arguments).

        ``ignore`` lists parameters left out of the key; ``verbose`` and
        ``mmap_mode`` override the Memory's; ``cache_validation_callback``
        gets the entry's metadata and returns False to force a recomputation
        (see :func:`expires_after`). Static and class methods, bound methods,
        ``functools.partial`` objects and ``async def`` functions work.

        Raises :class:`TypeError` if ``func`` is not callable or ``ignore`` is
        not a list of names, :class:`ValueError` if ``ignore`` names a
        parameter ``func`` does not have or ``cache_validation_callback`` is
        not callable. Example::

            @mem.cache(ignore=["verbose"])
            def fit(X, y, verbose=0): ...
        """
        if cache_validation_callback is not None and not callable(cache_validation_callback):
            raise ValueError(
                f"cache_validation_callback needs to be callable, got {cache_validation_callback!r}"
            )
        if func is None:
            return functools.partial(
                self.cache,
                ignore=ignore,
                verbose=verbose,
                mmap_mode=mmap_mode,
                cache_validation_callback=cache_validation_callback,
            )
        if isinstance(func, (staticmethod, classmethod)):
            # Cache the plain function and wrap it again, so both decorator orders work.
            inner = self.cache(func.__func__, ignore, verbose, mmap_mode, cache_validation_callback)
            return type(func)(inner)
        if isinstance(func, (MemorizedFunc, NotMemorizedFunc)):
            func = func.func
        if not callable(func):
            raise TypeError(f"Memory.cache needs a callable, got {func!r}")
        if self._settings is None:
            return NotMemorizedFunc(func)
        cls = AsyncMemorizedFunc if inspect.iscoroutinefunction(func) else MemorizedFunc
        return cls(
            func,
            self._settings,
            ignore=ignore,
            verbose=self._verbose if verbose is None else verbose,
            mmap_mode=self.mmap_mode if mmap_mode is False else mmap_mode,  # type: ignore[arg-type]
            cache_validation_callback=cache_validation_callback,
            timestamp=self.timestamp,
        )

    def eval(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``func(*args, **kwargs)``, through the cache."""
        if self._settings is None:
            return func(*args, **kwargs)
        return self.cache(func)(*args, **kwargs)

    def clear(self, warn: bool = True) -> None:
        """Delete every entry of this cache."""
        if warn:
            say_warning(f"[{self!r}]: Flushing completely the cache")
        if self._settings is None:
            return
        self._settings.store.delete("")
        self._settings.forget_checks()

    def reduce_size(
        self,
        bytes_limit: int | str | None = None,
        items_limit: int | None = None,
        age_limit: datetime.timedelta | float | str | None = None,
    ) -> int:
        """Evict entries until the cache fits the limits; return how many were removed.

        Entries last accessed longer ago than ``age_limit`` go first, then the
        least recently used until the size is at most ``bytes_limit`` (int or
        ``"10M"``/``"1G"``) and the count at most ``items_limit``. Without
        arguments, the Memory's own limits apply. Raises :class:`ValueError`
        for malformed limits.
        """
        if self._settings is None:
            return 0
        limits = CacheLimits.parse(bytes_limit, items_limit, age_limit) or self.limits
        if not limits:
            return 0
        removed, _ = evict(self._settings.store, limits)
        return len(removed)

    def __repr__(self) -> str:
        # Where entries go, spelled as joblib spells "<str>/joblib" (which
        # scikit-learn's doctests show). joblib 1.6 prints a Path without the
        # subfolder it does not use for Paths (its issue #1684); joblite uses
        # the subfolder for both, and the repr says so.
        location: object = self.location
        if isinstance(location, (str, pathlib.Path)):
            location = os.path.expanduser(os.path.join(location, "joblib"))
        elif self._settings is not None:
            location = self._settings.store.location
        return f"{type(self).__name__}(location={location})"

    def __getstate__(self) -> dict[str, Any]:
        # As joblib: no timestamp, so that an object holding a Memory (an
        # estimator's ``memory=``) hashes alike in every process and run.
        return {**self.__dict__, "timestamp": None}


def _add_gitignore(directory: str) -> None:
    """A ``.gitignore`` of ``*`` in a cache directory that has none (as joblib 1.5+ does).

    Written beside and linked into place: an existing one (even one created
    meanwhile, or a symlink planted there) is never replaced or followed, and
    no reader sees it half-written. A failure (read-only directory, a file
    system without hard links) only leaves it out.
    """
    target = os.path.join(directory, ".gitignore")
    if os.path.lexists(target):
        return
    temp = os.path.join(directory, f"{TEMP_PREFIX}gitignore-{uuid.uuid4().hex}")
    try:
        with open(temp, "x", encoding="utf-8") as f:
            f.write("# Created by joblite automatically.\n*\n")
        os.link(temp, target)
    except FileExistsError:
        pass
    except OSError as exc:
        logger.debug("[Memory] no .gitignore written in %s: %s", directory, exc)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
