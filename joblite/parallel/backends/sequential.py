"""``SequentialBackend``'s former home, kept for imports that name it.

The class lives in :mod:`.base`, next to the protocol whose
``get_nested_backend`` returns it.
"""

from __future__ import annotations

from .base import SequentialBackend as SequentialBackend

__all__ = ["SequentialBackend"]
