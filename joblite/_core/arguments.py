"""Arguments the feature packages check the same way: one rule each, joblib's.

Example::

    >>> check_verbose(2.5)
    2.5
    >>> "r+" in MMAP_MODES
    True
"""

from __future__ import annotations

import numbers
from typing import Final

__all__ = ["MMAP_MODES", "check_verbose"]

# joblib's documented set and order: {None, 'r+', 'r', 'w+', 'c'}.
MMAP_MODES: Final = (None, "r+", "r", "w+", "c")


def check_verbose(verbose: object) -> int | float:
    """``verbose`` as a number; ``TypeError`` naming it otherwise.

    joblib only ever compares ``verbose`` by size (``verbose > 10``), so any
    int or float counts, numpy's integers and floats included (scikit-learn
    passes them through). numpy's bool and arrays are refused.
    """
    if isinstance(verbose, (int, float)):
        return verbose
    if isinstance(verbose, numbers.Integral):
        return int(verbose)
    if isinstance(verbose, numbers.Real):
        return float(verbose)
    raise TypeError(f"verbose must be a number (0 is silent), got {verbose!r}")
