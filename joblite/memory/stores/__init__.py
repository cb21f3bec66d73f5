"""Where Memory keeps its entries: the :class:`Store` interface and its implementations.

``"local"`` (:class:`FileStore`, the default) and ``"memory"``
(:class:`InMemoryStore`) are registered; add more with
:func:`register_store_backend`.
"""

from __future__ import annotations

from .base import Store as Store
from .base import StoreStat as StoreStat
from .base import get_store_class as get_store_class
from .base import register_store_backend as register_store_backend
from .local import FileStore as FileStore
from .memory import InMemoryStore as InMemoryStore

register_store_backend("local", FileStore)
register_store_backend("memory", InMemoryStore)
