"""joblib's documented ``StoreBackendMixin`` methods, mapped onto joblite's stores.

For code written for joblib that calls them on ``memory.store_backend``
(``get_items()`` to size a cache, ``clear_item`` to drop one result, ...).
joblib names an entry by a ``call_id`` ``(func_id, args_id)`` and a function
by ``[func_id]``; joblite keeps an entry under ``func_id/version/args_id``,
so a two-part ``call_id`` means that ``args_id`` in whichever code version
holds it (three parts name one version's). joblib's writing methods
(``dump_item``, ``store_metadata``, ``store_cached_func_code``) are left
out: Memory writes its entries itself.

The methods need the entry layer that sits above the stores (what an entry's
files are, reading, deleting and evicting entries); rather than import it
upwards, they use the :class:`EntryOperations` that ``joblite.memory``
installs when it is imported (:mod:`joblite.memory._joblib_entries`).

Example::

    mem = Memory("cache")
    total = sum(item.size for item in mem.store_backend.get_items())
"""

from __future__ import annotations

import collections
import datetime
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast


class _Tree(Protocol):
    """The part of :class:`~.base.Store` these methods use (base.py mixes them in)."""

    location: str

    def stat(self, key: str) -> Any: ...
    def children(self, prefix: str) -> list[str]: ...
    def delete(self, prefix: str) -> bool: ...
    def read_bytes(self, key: str) -> bytes: ...


__all__ = ["CacheItemInfo", "EntryOperations", "JoblibStoreMethods", "install_entry_operations"]

# joblib's record of one cached item (``path`` is the entry's key below the store's location).
CacheItemInfo = collections.namedtuple("CacheItemInfo", "path size last_access")


@dataclass(frozen=True)
class EntryOperations:
    """The entry layer's operations these methods use, given by ``joblite.memory``."""

    output_suffix: str  # an entry's result is the key ``entry + output_suffix``
    function_info: str  # the name of a version directory's function record
    scan: Callable[[Any], list[Any]]  # entries with .key, .size, .last_access
    delete: Callable[[Any, str], object]
    metadata: Callable[[Any, str], dict[str, Any]]
    load: Callable[[Any, str], Any]  # the value stored under a result key
    enforce_limits: Callable[[Any, Any, Any, Any], None]


_operations: EntryOperations | None = None


def install_entry_operations(operations: EntryOperations) -> None:
    """Called once by ``joblite.memory`` (always imported before a store is used)."""
    global _operations
    _operations = operations


def _ops() -> EntryOperations:
    if _operations is None:  # only if joblite.memory was never imported: cannot happen
        raise RuntimeError("joblite.memory must be imported before joblib's store methods")
    return _operations


def _parts(call_id: Sequence[str], most: int) -> list[str]:
    """``call_id`` as key parts; :class:`ValueError` for anything that is not a plain name."""
    parts = [call_id] if isinstance(call_id, str) else list(call_id)
    if not 1 <= len(parts) <= most or not all(
        isinstance(p, str) and p and p not in (".", "..") and "/" not in p and os.sep not in p
        for p in parts
    ):
        raise ValueError(
            f"call_id must be a list of 1 to {most} names (func_id, args_id), got {call_id!r}"
        )
    return parts


class JoblibStoreMethods:
    """joblib's ``StoreBackendMixin`` interface on a :class:`Store` (its base class)."""

    def _joblib_location(self, parts: Sequence[str]) -> str:
        store = cast("_Tree", self)
        return os.path.join(store.location, *parts)

    def _entries(self, call_id: Sequence[str]) -> list[str]:
        store = cast("_Tree", self)
        output = _ops().output_suffix
        parts = _parts(call_id, 3)
        if len(parts) == 1:
            raise ValueError(f"call_id must name an entry (func_id, args_id), got {call_id!r}")
        if len(parts) == 3:
            candidates = ["/".join(parts)]
        else:
            func_id, args_id = parts
            candidates = [f"{func_id}/{v}/{args_id}" for v in store.children(func_id)]
        found = []
        for entry in candidates:
            try:
                store.stat(entry + output)
            except KeyError:
                continue
            found.append(entry)
        return found

    def get_items(self) -> list[CacheItemInfo]:
        """Every cached result: ``CacheItemInfo(path, size, last_access: datetime)``."""
        store = cast("_Tree", self)
        return [
            CacheItemInfo(
                self._joblib_location(e.key.split("/")),
                e.size,
                datetime.datetime.fromtimestamp(e.last_access),
            )
            for e in _ops().scan(store)
        ]

    def contains_item(self, call_id: Sequence[str]) -> bool:
        return bool(self._entries(call_id))

    def clear_item(self, call_id: Sequence[str]) -> None:
        """Delete the result of ``call_id`` (``(func_id, args_id)``), if there is one."""
        store = cast("_Tree", self)
        for entry in self._entries(call_id):
            _ops().delete(store, entry)

    def get_item_info(self, call_id: Sequence[str]) -> dict[str, str]:
        return {"location": self._joblib_location(_parts(call_id, 3))}

    def get_metadata(self, call_id: Sequence[str]) -> dict[str, Any]:
        """The call's metadata (``duration``, ``time``, ``input_args``); ``{}`` if none."""
        store = cast("_Tree", self)
        entries = self._entries(call_id)
        return _ops().metadata(store, entries[0]) if entries else {}

    def load_item(
        self,
        call_id: Sequence[str],
        verbose: int = 1,
        timestamp: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Any:
        """The stored result of ``call_id``; :class:`KeyError` if there is none."""
        store = cast("_Tree", self)
        entries = self._entries(call_id)
        if not entries:
            raise KeyError(f"no cached result for {call_id!r} (it may have been cleared)")
        return _ops().load(store, entries[0] + _ops().output_suffix)

    def contains_path(self, call_id: Sequence[str]) -> bool:
        store = cast("_Tree", self)
        return bool(store.children("/".join(_parts(call_id, 3))))

    def clear_path(self, call_id: Sequence[str]) -> None:
        """Delete everything below ``call_id`` (``[func_id]``: a function's results)."""
        store = cast("_Tree", self)
        store.delete("/".join(_parts(call_id, 3)))

    def get_cached_func_code(self, call_id: Sequence[str]) -> str:
        """The source of the cached function ``[func_id]`` (joblib adds a first-line comment).

        Raises :class:`FileNotFoundError` if none is stored, as joblib does.
        """
        store = cast("_Tree", self)
        info = _ops().function_info
        (func_id,) = _parts(call_id, 1)
        for version in store.children(func_id):
            try:
                source = json.loads(store.read_bytes(f"{func_id}/{version}/{info}"))
            except (KeyError, ValueError):
                continue
            if isinstance(source, dict) and isinstance(source.get("source"), str):
                return str(source["source"])
        raise FileNotFoundError(f"no source stored for {func_id!r} in {store.location}")

    def get_cached_func_info(self, call_id: Sequence[str]) -> dict[str, str]:
        return {"location": self._joblib_location(_parts(call_id, 3))}

    def clear(self) -> None:
        """Delete every entry."""
        store = cast("_Tree", self)
        store.delete("")

    def enforce_store_limits(
        self,
        bytes_limit: int | str | None,
        items_limit: int | None = None,
        age_limit: datetime.timedelta | None = None,
    ) -> None:
        """Evict least recently used entries until the store fits the limits."""
        store = cast("_Tree", self)
        _ops().enforce_limits(store, bytes_limit, items_limit, age_limit)
