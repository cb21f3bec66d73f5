"""Sizes given the way people write them: ``"1M"``, ``"10G"``, ``"512KiB"``.

Example::

    >>> parse_bytes("10M", name="bytes_limit")
    10485760
"""

from __future__ import annotations

import re

__all__ = ["parse_bytes"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([kmgtp]?)(i?b)?\s*$", re.IGNORECASE)
# Powers of 1024, as joblib's "1M" for max_nbytes and bytes_limit.
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def parse_bytes(value: object, *, name: str) -> int | None:
    """Bytes from ``None`` (no limit), an int >= 0, or a string like ``"1.5G"``.

    Units are K, M, G, T, P (powers of 1024), optionally followed by ``B`` or
    ``iB``. Raises ``TypeError`` for other types (bools included) and
    ``ValueError`` for negative or unreadable values, both naming ``name``.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(
            f"{name} must be a number of bytes, a string like '10M' or '1G', or None; got {value!r}"
        )
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name} must be >= 0 bytes, got {value!r}")
        return value
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(
            f"{name} must look like '500K', '10M' or '1.5G' (powers of 1024), got {value!r}"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
