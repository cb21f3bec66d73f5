"""Sizes and ages given the way people write them: ``"1M"``, ``"512KiB"``, ``"30d"``.

Example::

    >>> parse_bytes("10M", name="bytes_limit")
    10485760
    >>> parse_age("12h")
    43200.0
"""

from __future__ import annotations

import datetime
import re

__all__ = ["parse_age", "parse_bytes"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([kmgtp]?)(i?b)?\s*$", re.IGNORECASE)
# Powers of 1024, as joblib's "1M" for max_nbytes and bytes_limit.
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_AGE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


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


def parse_age(
    value: datetime.timedelta | float | str | None, *, name: str = "age_limit"
) -> float | None:
    """Seconds from a timedelta, a number of seconds or a string like ``"30d"``, ``"12h"``.

    Raises :class:`ValueError` naming ``name`` for negative or malformed values.

    >>> parse_age("2h")
    7200.0
    """
    if value is None:
        return None
    seconds: float | None = None
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = _AGE.match(value)
        if match:
            seconds = float(match.group(1)) * _AGE_UNITS[match.group(2).lower()]
    if seconds is None or seconds < 0:
        raise ValueError(
            f"{name} must be a non-negative timedelta, number of seconds or a string "
            f"like '30d', got {value!r}"
        )
    return seconds
