"""Gives joblib's store methods (:mod:`.stores._joblib`) the entry layer they use.

The stores sit below the entries (an entry is several keys of a store), so
the store methods joblib documents on ``memory.store_backend`` get the entry
operations handed down here, at import, instead of importing upwards.
"""

from __future__ import annotations

from typing import Any

from ._entries import FUNCTION_INFO, OUTPUT, delete_entry, read_metadata, scan_entries
from ._eviction import CacheLimits, evict
from ._results import read_output
from .stores._joblib import EntryOperations, install_entry_operations
from .stores.base import Store

__all__: list[str] = []


def _load(store: Store, key: str) -> Any:
    return read_output(store, key, None)


def _enforce_limits(store: Store, bytes_limit: Any, items_limit: Any, age_limit: Any) -> None:
    limits = CacheLimits.parse(bytes_limit, items_limit, age_limit)
    if limits:
        evict(store, limits)


install_entry_operations(
    EntryOperations(
        output_suffix=OUTPUT,
        function_info=FUNCTION_INFO,
        scan=scan_entries,
        delete=delete_entry,
        metadata=read_metadata,
        load=_load,
        enforce_limits=_enforce_limits,
    )
)
