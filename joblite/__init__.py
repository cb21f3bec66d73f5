"""joblite: Parallel, Memory and dump/load, a faster and safer drop-in for joblib.

Example::

    >>> import joblite
    >>> joblite.hash([1, 2, 3]) == joblite.hash([1, 2, 3])
    True
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import exceptions as exceptions
from ._core.hashing import hash as hash
