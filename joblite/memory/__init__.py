"""Memory: cache the results of expensive functions on disk (joblib's ``Memory``).

Example::

    >>> from joblite.memory import Memory
    >>> with Memory.temporary(verbose=0) as mem:
    ...     square = mem.cache(lambda x: x * x)
    ...     square(4), square(4)
    (16, 16)
"""

from __future__ import annotations

# Imported for its effect: hands joblib's store methods the entry operations.
from . import _joblib_entries  # noqa: F401
from ._async import AsyncMemorizedFunc as AsyncMemorizedFunc
from ._entries import EntryInfo as EntryInfo
from ._eviction import CacheLimits as CacheLimits
from ._memorized import MemorizedFunc as MemorizedFunc
from ._memory import Memory as Memory
from ._results import MemorizedResult as MemorizedResult
from ._results import NotMemorizedFunc as NotMemorizedFunc
from ._results import NotMemorizedResult as NotMemorizedResult
from ._results import expires_after as expires_after
from .stores import FileStore as FileStore
from .stores import FsspecStore as FsspecStore
from .stores import InMemoryStore as InMemoryStore
from .stores import Store as Store
from .stores import Store as StoreBackendBase
from .stores import StoreStat as StoreStat
from .stores import register_store_backend as register_store_backend

__all__ = [
    "AsyncMemorizedFunc",
    "CacheLimits",
    "EntryInfo",
    "FileStore",
    "FsspecStore",
    "InMemoryStore",
    "MemorizedFunc",
    "MemorizedResult",
    "Memory",
    "NotMemorizedFunc",
    "NotMemorizedResult",
    "Store",
    "StoreBackendBase",
    "StoreStat",
    "expires_after",
    "register_store_backend",
]
