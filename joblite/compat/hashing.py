"""``joblib.hashing`` under :func:`joblite.compat.install`: joblite's ``hash``.

Example::

    >>> from joblite.compat.hashing import hash
    >>> hash([1, 2]) == hash([1, 2])
    True
"""

from __future__ import annotations

from joblite._core.hashing import hash as hash

__all__ = ["hash"]
