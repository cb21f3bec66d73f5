"""joblib's array record, as the joblib readers see it: ``NumpyArrayWrapper``.

joblib pickles each array as a ``joblib.numpy_pickle.NumpyArrayWrapper``
whose state names the array's layout; the array's bytes follow its BUILD
in the file. Both readers (:mod:`._joblib_read`, :mod:`._joblib_checked`)
put this class in its place and swap each instance for its array.

Example::

    >>> wrapper_class("joblib.numpy_pickle", "NumpyArrayWrapper") is NumpyArrayWrapper
    True
    >>> wrapper_class("collections", "OrderedDict") is None
    True
"""

from __future__ import annotations

from typing import Any

from joblite.exceptions import ForeignFileError, InvalidFileError

__all__ = ["NumpyArrayWrapper", "wrapper_class"]

_WRAPPER_MODULES = ("joblib.numpy_pickle", "joblib.numpy_pickle_compat")
_OLD_WRAPPERS = ("NDArrayWrapper", "ZNDArrayWrapper")


class NumpyArrayWrapper:
    """What joblib pickles in place of an array (its state names the array's layout).

    The reader replaces each one by the array that follows it in the file.
    """

    def __init__(
        self,
        subclass: type,
        shape: tuple[int, ...],
        order: str,
        dtype: Any,
        allow_mmap: bool = False,
        numpy_array_alignment_bytes: int | None = 16,
    ) -> None:
        self.__setstate__(
            {
                "subclass": subclass,
                "shape": shape,
                "order": order,
                "dtype": dtype,
                "allow_mmap": allow_mmap,
                "numpy_array_alignment_bytes": numpy_array_alignment_bytes,
            }
        )

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict):
            raise InvalidFileError(f"corrupt joblib file: an array header is {type(state)}")
        self.state = state


def wrapper_class(module: str, name: str) -> type[NumpyArrayWrapper] | None:
    """The class the reader puts for joblib's array wrapper ``module.name``, else None.

    Raises ``ForeignFileError`` for the wrappers of joblib < 0.10.
    """
    if module not in _WRAPPER_MODULES:
        return None
    if name in _OLD_WRAPPERS:
        raise ForeignFileError(
            "the file was written by joblib < 0.10 (arrays in companion files), "
            "which joblite does not read; load it with joblib.load and dump it again"
        )
    return NumpyArrayWrapper if name == "NumpyArrayWrapper" else None
