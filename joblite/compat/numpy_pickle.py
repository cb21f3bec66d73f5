"""``joblib.numpy_pickle`` under :func:`joblite.compat.install`: dump, load and the array wrapper.

Example::

    >>> from joblite.compat.numpy_pickle import NumpyArrayWrapper, dump, load
"""

from __future__ import annotations

from joblite._core._joblib_read import NumpyArrayWrapper as NumpyArrayWrapper
from joblite.persistence import dump as dump
from joblite.persistence import load as load
from joblite.persistence import register_compressor as register_compressor

__all__ = ["NumpyArrayWrapper", "dump", "load", "register_compressor"]
