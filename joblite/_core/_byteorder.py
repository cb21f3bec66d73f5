"""Arrays in the byte order of the host: ``load(..., ensure_native_byte_order=True)``.

Example::

    >>> import numpy as np
    >>> to_native_byte_order(np.arange(3, dtype=">i4")).dtype.isnative
    True
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["check_native_byte_order_argument", "to_native_byte_order"]

_SWAPPED = ">" if sys.byteorder == "little" else "<"


def _is_swapped(dtype: Any) -> bool:
    # A structured dtype counts only when every field is swapped, as in joblib:
    # a record mixing byte orders was written that way on purpose.
    if dtype.fields:
        return all(field[0].byteorder == _SWAPPED for field in dtype.fields.values())
    return bool(dtype.byteorder == _SWAPPED)


def to_native_byte_order(array: Any) -> Any:
    """``array`` with the same values in the host's byte order (itself if already native)."""
    if not _is_swapped(array.dtype):
        return array
    return array.byteswap().view(array.dtype.newbyteorder("="))


def check_native_byte_order_argument(value: object, mmap_mode: str | None) -> bool:
    """Resolve joblib's ``ensure_native_byte_order`` ("auto", True or False) to a bool.

    "auto" means True without ``mmap_mode``: a mapped array keeps the file's
    byte order. Raises ``ValueError`` for other values, or True with ``mmap_mode``.
    """
    if value == "auto" and isinstance(value, str):
        return mmap_mode is None
    if not isinstance(value, bool):
        raise ValueError(f"`ensure_native_byte_order` must be 'auto', True or False, got {value!r}")
    if value and mmap_mode is not None:
        raise ValueError(
            "`ensure_native_byte_order=True` cannot be used with `mmap_mode`: a mapped array "
            f"keeps the file's byte order (got mmap_mode={mmap_mode!r})"
        )
    return value
