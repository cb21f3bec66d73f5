"""Whether an object can be found again by its ``module.qualname``.

Both the hasher and the serializer ask it: an object found by name is
saved as a reference; anything else (lambdas, closures, local classes)
must be saved by value.

Example::

    >>> import os
    >>> found_by_name(os.path.join), found_by_name(lambda: 0)
    (True, False)
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["found_by_name"]


def found_by_name(obj: Any) -> bool:
    """True if ``sys.modules[obj.__module__]`` reached by ``obj.__qualname__`` is ``obj``."""
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str) or "<" in qualname:
        return False
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is obj
