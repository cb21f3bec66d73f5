"""joblib's files under ``allowed=``: the restricted interpreter, taught joblib's arrays.

A joblib file is one pickle stream with each array's bytes written after its
``NumpyArrayWrapper``'s BUILD (see :mod:`._joblib_read`). Here that stream is
run by :class:`._restricted.Interpreter`, which reads it opcode by opcode
from the file, so every global, call, state and size is checked as for a
joblite file. The wrapper is the one name the interpreter learns: it may be
created (not called), and its BUILD reads the array that follows, with the
dtype the interpreter rebuilt from a parsed state (never one given to
``dtype.__setstate__``); an object array's nested stream runs in a fresh
interpreter on the same file. Sizes are bounded by what the file holds
(compressed: what it has delivered so far).

Arrays cost what they cost the plain reader; other opcodes cost the
interpreter's 1-2 µs each: a joblib file of a list of 100,000 floats loads
in 110-260 ms instead of 70-120 ms (a shared 2-core machine, best of 3).

Example::

    >>> import io, pickle
    >>> from joblite._core._joblib_read import read_joblib
    >>> read_joblib(io.BytesIO(pickle.dumps({"a": 1}, protocol=4)), allowed=[])
    {'a': 1}
"""

from __future__ import annotations

from typing import Any, Protocol

from ._joblib_wrapper import NumpyArrayWrapper, wrapper_class
from ._restricted import Interpreter, run
from ._restricted_rules import Rule

__all__ = ["ArrayReader", "load_checked"]

# A dumped numpy.memmap records its class; restricted, it loads as an array.
_MEMMAP_MODULES = ("numpy", "numpy.core.memmap", "numpy._core.memmap")
# The file may name the wrapper, and create it without a call (NEWOBJ).
_WRAPPER_RULE = Rule(None)


class ArrayReader(Protocol):
    """What a load needs from the joblib reader (``_joblib_read._Reader``)."""

    source: Any  # read(n), readline() and budget(), checked against the file
    patterns: list[str] | None

    def array(self, wrapper: NumpyArrayWrapper) -> Any: ...


class _JoblibInterpreter(Interpreter):
    def __init__(self, reader: ArrayReader) -> None:
        super().__init__(reader.source, (), reader.patterns or (), 0)
        self._reader = reader

    @property
    def budget(self) -> int:
        budget: int = self._reader.source.budget()
        return budget

    def find_class(self, module: str, name: str) -> Any:
        wrapper = wrapper_class(module, name)
        if wrapper is not None:
            full = f"{module}.{name}"
            self._globals.setdefault(id(wrapper), (wrapper, _WRAPPER_RULE, full))
            return wrapper
        if name == "memmap" and module in _MEMMAP_MODULES:
            module, name = "numpy", "ndarray"
        return super().find_class(module, name)

    def trusts_type(self, cls: object) -> bool:
        return cls is NumpyArrayWrapper or super().trusts_type(cls)

    def _build(self, state: Any) -> None:
        target = self._top()
        if type(target) is not NumpyArrayWrapper:
            super()._build(state)
            return
        target.__setstate__(state)
        self._stack[-1] = self._reader.array(target)


def load_checked(reader: ArrayReader) -> Any:
    """The next pickle stream of ``reader``'s source, run by the restricted interpreter.

    Raises ``UnsafeLoadError`` for what ``reader.patterns`` do not allow,
    ``pickle.UnpicklingError`` or ``InvalidFileError`` for a malformed file.
    """
    return run(_JoblibInterpreter(reader))
