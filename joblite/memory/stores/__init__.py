"""Where Memory keeps its entries: the :class:`Store` interface and its implementations.

``"local"`` (:class:`FileStore`, the default), ``"memory"``
(:class:`InMemoryStore`) and ``"fsspec"`` (:class:`FsspecStore`, any fsspec
URL such as ``s3://bucket/prefix``) are registered; add more with
:func:`register_store_backend`.
"""

from __future__ import annotations

from .base import Store as Store
from .base import StoreStat as StoreStat
from .base import get_store_class as get_store_class
from .base import register_store_backend as register_store_backend
from .fsspec import FsspecStore as FsspecStore
from .local import FileStore as FileStore
from .memory import InMemoryStore as InMemoryStore

register_store_backend("local", FileStore)
register_store_backend("memory", InMemoryStore)
register_store_backend("fsspec", FsspecStore)
