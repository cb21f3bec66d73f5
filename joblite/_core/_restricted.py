"""The restricted unpickler: a pickle interpreter that checks every step.

``pickle.Unpickler.find_class`` only decides which globals a stream may
name; what the stream then does with them (call them with any arguments,
``__setstate__`` any object, ``__setitem__`` into it, ``__new__`` a class)
happens inside the C unpickler, out of reach. Here every opcode is
interpreted by this module (decoded by :func:`pickletools.genops`), so:

* a global is resolved under the rules of :mod:`._restricted_rules`: denied
  names never, the safe default set always, the caller's ``allowed`` names
  as listed;
* a call (REDUCE, NEWOBJ) goes through the rule of the global being called;
  an object that was not resolved as a global cannot be called;
* BUILD (``__setstate__``) is only applied to dtypes (parsed, never given to
  ``dtype.__setstate__``), arrays (state checked first), numpy random
  generators, and instances of classes the caller allowed;
* items are only added to builtin containers, ``collections``' types and
  instances of allowed classes; extension codes and persistent ids are refused.

It costs 1-2 µs per opcode, 10-35 times the C unpickler: a protocol-5
file of arrays has a few dozen opcodes (its data stays out-of-band), while a
list of 100,000 floats takes 210 ms instead of 6 ms.

Example::

    >>> import pickle
    >>> load_restricted(pickle.dumps({"a": [1, 2.5]}), (), [])
    {'a': [1, 2.5]}
"""

from __future__ import annotations

import _compat_pickle
import io
import math
import pickle
import pickletools
import sys
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Iterable, Sequence
from typing import Any

from joblite.exceptions import JobliteError, UnsafeLoadError

from ._restricted_globals import BY_VALUE_LOADER, TRUSTED, allowed_by_name, canonical, resolve
from ._restricted_numpy import PendingDtype, check_array_state, check_random_state
from ._restricted_rules import Rule

__all__ = ["BY_VALUE_LOADER", "Interpreter", "load_restricted", "run"]

# Hashing a tuple recurses in C without a depth check: a key of tuples nested
# 10**6 deep (2 bytes a level) crashes the process. Data nests far less.
MAX_NESTING = 1000
_HASHED_BY_ITEMS = (tuple, frozenset, slice)
_CONTAINERS = (list, dict, set, OrderedDict, defaultdict, Counter, deque)


class Interpreter:
    """One restricted load: the stack, the memo and the globals resolved so far.

    ``stream`` is read opcode by opcode (``read``, ``readline``), never past
    STOP, so a reader can take raw bytes from it between opcodes (joblib's
    arrays: see :mod:`._joblib_checked`); ``size`` is how many bytes it holds.
    """

    def __init__(
        self, stream: Any, buffers: Iterable[object], patterns: Sequence[str], size: int
    ) -> None:
        self._stream = stream
        self._size = size
        self._buffers = iter(buffers)
        self._patterns = patterns
        self._stack: list[Any] = []
        self._marks: list[int] = []
        self._memo: dict[int, Any] = {}
        self._proto = 0
        # id -> (object, rule, name) of every global resolved in this load.
        self._globals: dict[int, tuple[Any, Rule, str]] = {}
        # id -> (object, depth) of the tuples and frozensets holding others.
        self._nesting: dict[int, tuple[Any, int]] = {}

    # The context rules see -------------------------------------------------

    @property
    def budget(self) -> int:
        """The longest collection, or largest size, the stream can spell."""
        return self._size + 64

    def name_of(self, obj: object) -> str:
        entry = self._globals.get(id(obj))
        return entry[2] if entry is not None and entry[0] is obj else type(obj).__qualname__

    def is_global(self, obj: object) -> bool:
        entry = self._globals.get(id(obj))
        return entry is not None and entry[0] is obj

    def trusts_type(self, cls: object) -> bool:
        """Whether ``cls`` is a class the caller allowed (not a SAFE one)."""
        if not isinstance(cls, type):
            return False
        entry = self._globals.get(id(cls))
        if entry is not None and entry[0] is cls:
            return entry[1] is TRUSTED
        return allowed_by_name(cls, self._patterns)

    def check_trusted_args(self, obj: object, args: tuple[Any, ...]) -> None:
        """Refuse ranges, and for numpy sizes and shapes, larger than the stream."""
        full = self.name_of(obj)
        # numpy functions and classes take sizes and shapes (zeros, arange, ...),
        # and so do subclasses of ndarray and bytes.
        numpy = sys.modules.get("numpy")
        bases = (bytes, bytearray) if numpy is None else (bytes, bytearray, numpy.ndarray)
        sized = full.startswith("numpy.") or (isinstance(obj, type) and issubclass(obj, bases))
        for arg in args:
            if isinstance(arg, range):
                size = _range_length(arg)
            elif not sized:
                continue
            elif _is_int(arg):
                size = arg
            elif isinstance(arg, (tuple, list)) and arg and all(_is_int(n) for n in arg):
                size = math.prod(arg)
            else:
                continue
            if size > self.budget:
                raise UnsafeLoadError(
                    full, f"a size of {size} is more than the file holds", fixable=False
                )

    def new(self, cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``cls.__new__(cls, *args, **kwargs)``, for classes the caller allowed."""
        if not self.trusts_type(cls):
            raise UnsafeLoadError(
                canonical(cls) or type(cls).__qualname__,
                "only classes listed in `allowed` are created without a call",
            )
        self.check_trusted_args(cls, args + tuple(kwargs.values()))
        return cls.__new__(cls, *args, **kwargs)

    # Globals ----------------------------------------------------------------

    def find_class(self, module: str, name: str) -> Any:
        if self._proto < 3:  # Python 2 names, as pickle's fix_imports maps them
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        found, rule, full = resolve(module, name, self._patterns)
        self._globals.setdefault(id(found), (found, rule, full))
        return found

    # The interpreter ----------------------------------------------------------

    def load(self) -> Any:
        for opcode, arg, _ in pickletools.genops(self._stream):
            name = opcode.name
            if name == "STOP":
                return self._pop()
            step = _STEPS.get(name)
            if step is None:
                raise UnsafeLoadError(
                    f"<{name} opcode>", "it is never used for data", fixable=False
                )
            step(self, arg)
        raise pickle.UnpicklingError("the pickle stream has no STOP")

    def hashable(self, value: Any, items: Iterable[Any]) -> Any:
        """``value`` (a tuple, frozenset or slice of ``items``), refused if nested too deep."""
        depth = 0
        for item in items:
            if type(item) in _HASHED_BY_ITEMS:
                depth = max(depth, self._nesting.get(id(item), (None, 1))[1])
        if depth:
            if depth >= MAX_NESTING:
                raise UnsafeLoadError(
                    f"builtins.{type(value).__name__}",
                    f"nested over {MAX_NESTING} deep, which crashes hashing",
                    fixable=False,
                )
            self._nesting[id(value)] = (value, depth + 1)
        return value

    def _pop(self) -> Any:
        if not self._stack or (self._marks and self._marks[-1] == len(self._stack)):
            raise pickle.UnpicklingError("pickle stack underflow")
        return _settle(self._stack.pop())

    def _pop_mark(self) -> list[Any]:
        if not self._marks:
            raise pickle.UnpicklingError("pickle stream is missing a MARK")
        start = self._marks.pop()
        items = [_settle(item) for item in self._stack[start:]]
        del self._stack[start:]
        return items

    def _top(self) -> Any:
        if not self._stack or (self._marks and self._marks[-1] == len(self._stack)):
            raise pickle.UnpicklingError("pickle stack underflow")
        return self._stack[-1]

    def _call(self, func: Any, args: Any) -> Any:
        entry = self._globals.get(id(func))
        if entry is None or entry[0] is not func:
            raise UnsafeLoadError(
                f"{type(func).__module__}.{type(func).__qualname__}",
                "only a global can be called",
                fixable=False,
            )
        _, rule, full = entry
        if rule.call is None:
            raise UnsafeLoadError(full, "the file may name it, not call it", fixable=False)
        if not isinstance(args, tuple):
            raise pickle.UnpicklingError("REDUCE arguments must be a tuple")
        return rule.call(self, func, args)

    def _check_not_global(self, target: object) -> None:
        # A global is shared by the whole process: numpy.sctypeDict, numpy's
        # global RandomState. A file only changes what it created.
        if self.is_global(target):
            raise UnsafeLoadError(
                self.name_of(target), "a file may not change a module's objects", fixable=False
            )

    def _build(self, state: Any) -> None:
        target = self._top()
        self._check_not_global(target)
        if type(target) is PendingDtype:
            target.build(state)
            return
        numpy = sys.modules.get("numpy")
        cls = type(target)
        if numpy is not None and isinstance(target, numpy.ndarray):
            if cls.__setstate__ is numpy.ndarray.__setstate__:
                check_array_state(state)
            elif not self.trusts_type(cls):
                raise UnsafeLoadError(canonical(cls) or "?", "it sets its own state")
            target.__setstate__(state)
            return
        if numpy is not None and _is_numpy_random(target, numpy):
            check_random_state(target, state)
            target.__setstate__(state)
            return
        if not self.trusts_type(cls):
            raise UnsafeLoadError(
                canonical(cls) or cls.__qualname__,
                "a file may only set the state of classes listed in `allowed`",
            )
        _default_build(target, state)

    def _add(self, items: list[Any], pairs: bool) -> None:
        target = self._top()
        self._check_not_global(target)
        if not isinstance(target, _CONTAINERS) and not self.trusts_type(type(target)):
            raise UnsafeLoadError(
                canonical(type(target)) or "?",
                "items are only added to containers and classes listed in `allowed`",
            )
        if pairs:
            if len(items) % 2:
                raise pickle.UnpicklingError("odd number of items for SETITEMS")
            for index in range(0, len(items), 2):
                target[items[index]] = items[index + 1]
        elif isinstance(target, set) or (not isinstance(target, list) and hasattr(target, "add")):
            for item in items:
                target.add(item)
        elif isinstance(target, list) or hasattr(target, "extend"):
            target.extend(items)
        else:
            for item in items:
                target.append(item)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _range_length(value: range) -> int:
    try:
        return len(value)
    except OverflowError:  # longer than sys.maxsize
        return sys.maxsize


def _settle(item: Any) -> Any:
    """A value leaving the stack: a pending dtype becomes a real one, frozen."""
    if type(item) is PendingDtype:
        return item.settle()
    return item


def _is_numpy_random(target: object, numpy: Any) -> bool:
    random = sys.modules.get("numpy.random")
    if random is None:
        return False
    from numpy.random.bit_generator import BitGenerator, SeedSequence

    return isinstance(target, (BitGenerator, SeedSequence, random.RandomState, random.Generator))


def _default_build(target: Any, state: Any) -> None:
    """BUILD as pickle does it, for an instance of an allowed class."""
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
    for part in parts:
        if isinstance(part, dict):
            for key in part:
                # Looked up on instances: __array_interface__ makes numpy read
                # any address, and setattr(obj, "__class__", ...) swaps classes.
                if isinstance(key, str) and key.startswith("__") and key.endswith("__"):
                    raise UnsafeLoadError(
                        canonical(type(target)) or "?", f"the file sets its {key!r}"
                    )
    setstate = getattr(target, "__setstate__", None)
    if setstate is not None:
        setstate(state)
        return
    slots = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slots = state
    if state:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("state is not a dictionary")
        for key, value in state.items():
            target.__dict__[sys.intern(key) if isinstance(key, str) else key] = value
    if slots:
        if not isinstance(slots, dict):
            raise pickle.UnpicklingError("slot state is not a dictionary")
        for key, value in slots.items():
            setattr(target, key, value)


def _push(value: Any) -> Any:
    return lambda vm, arg: vm._stack.append(value() if callable(value) else value)


def _push_arg(vm: Interpreter, arg: Any) -> None:
    vm._stack.append(arg)


def _global(vm: Interpreter, arg: Any) -> None:
    module, _, name = arg.partition(" ")
    vm._stack.append(vm.find_class(module, name))


def _stack_global(vm: Interpreter, arg: Any) -> None:
    name = vm._pop()
    module = vm._pop()
    if not isinstance(module, str) or not isinstance(name, str):
        raise pickle.UnpicklingError("STACK_GLOBAL requires str")
    vm._stack.append(vm.find_class(module, name))


def _pop_op(vm: Interpreter, arg: Any) -> None:
    if vm._marks and vm._marks[-1] == len(vm._stack):
        vm._marks.pop()
    else:
        vm._pop()


def _tuple_n(count: int) -> Any:
    def step(vm: Interpreter, arg: Any) -> None:
        items = [vm._pop() for _ in range(count)]
        items.reverse()
        vm._stack.append(vm.hashable(tuple(items), items))

    return step


def _tuple(vm: Interpreter, items: list[Any]) -> tuple[Any, ...]:
    return vm.hashable(tuple(items), items)  # type: ignore[no-any-return]


def _frozenset(vm: Interpreter, items: list[Any]) -> frozenset[Any]:
    return vm.hashable(frozenset(items), items)  # type: ignore[no-any-return]


def _dict(vm: Interpreter, arg: Any) -> None:
    items = vm._pop_mark()
    if len(items) % 2:
        raise pickle.UnpicklingError("odd number of items for DICT")
    vm._stack.append({items[i]: items[i + 1] for i in range(0, len(items), 2)})


def _memo_put(vm: Interpreter, arg: Any) -> None:
    vm._memo[len(vm._memo) if arg is None else arg] = vm._top()


def _memo_get(vm: Interpreter, arg: Any) -> None:
    try:
        vm._stack.append(vm._memo[arg])
    except KeyError:
        raise pickle.UnpicklingError(f"memo key {arg} not found") from None


def _proto(vm: Interpreter, arg: Any) -> None:
    if not 0 <= arg <= pickle.HIGHEST_PROTOCOL:
        raise pickle.UnpicklingError(f"unsupported pickle protocol: {arg}")
    vm._proto = arg


def _next_buffer(vm: Interpreter, arg: Any) -> None:
    try:
        vm._stack.append(next(vm._buffers))
    except StopIteration:
        raise pickle.UnpicklingError("not enough out-of-band buffers") from None


def _readonly_buffer(vm: Interpreter, arg: Any) -> None:
    view = memoryview(vm._top())
    if not view.readonly:
        vm._stack[-1] = view.toreadonly()


def _reduce(vm: Interpreter, arg: Any) -> None:
    args = vm._pop()
    func = vm._pop()
    vm._stack.append(vm._call(func, args))


def _newobj(vm: Interpreter, arg: Any) -> None:
    args = vm._pop()
    cls = vm._pop()
    if not isinstance(args, tuple):
        raise pickle.UnpicklingError("NEWOBJ arguments must be a tuple")
    vm._stack.append(vm.new(cls, args, {}))


def _newobj_ex(vm: Interpreter, arg: Any) -> None:
    kwargs = vm._pop()
    args = vm._pop()
    cls = vm._pop()
    if not isinstance(args, tuple) or not isinstance(kwargs, dict):
        raise pickle.UnpicklingError("NEWOBJ_EX arguments must be a tuple and a dict")
    vm._stack.append(vm.new(cls, args, kwargs))


def _build(vm: Interpreter, arg: Any) -> None:
    vm._build(vm._pop())


def _mark(vm: Interpreter, arg: Any) -> None:
    vm._marks.append(len(vm._stack))


def _nothing(vm: Interpreter, arg: Any) -> None:
    pass


# Opcodes that push the value genops decoded.
_LITERALS = (
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
    "BYTEARRAY8", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
)  # fmt: skip
_STEPS: dict[str, Any] = {
    **dict.fromkeys(_LITERALS, _push_arg),
    "NONE": _push(None),
    "NEWTRUE": _push(True),
    "NEWFALSE": _push(False),
    "EMPTY_LIST": _push(list),
    "EMPTY_TUPLE": _push(()),
    "EMPTY_DICT": _push(dict),
    "EMPTY_SET": _push(set),
    "MARK": _mark,
    "POP": _pop_op,
    "POP_MARK": lambda vm, arg: vm._pop_mark(),
    "DUP": lambda vm, arg: vm._stack.append(vm._top()),
    "APPEND": lambda vm, arg: vm._add([vm._pop()], pairs=False),
    "APPENDS": lambda vm, arg: vm._add(vm._pop_mark(), pairs=False),
    "LIST": lambda vm, arg: vm._stack.append(vm._pop_mark()),
    "TUPLE": lambda vm, arg: vm._stack.append(_tuple(vm, vm._pop_mark())),
    "TUPLE1": _tuple_n(1),
    "TUPLE2": _tuple_n(2),
    "TUPLE3": _tuple_n(3),
    "DICT": _dict,
    "SETITEM": lambda vm, arg: vm._add(list(reversed([vm._pop(), vm._pop()])), pairs=True),
    "SETITEMS": lambda vm, arg: vm._add(vm._pop_mark(), pairs=True),
    "ADDITEMS": lambda vm, arg: vm._add(vm._pop_mark(), pairs=False),
    "FROZENSET": lambda vm, arg: vm._stack.append(_frozenset(vm, vm._pop_mark())),
    "GLOBAL": _global,
    "STACK_GLOBAL": _stack_global,
    "REDUCE": _reduce,
    "NEWOBJ": _newobj,
    "NEWOBJ_EX": _newobj_ex,
    "BUILD": _build,
    "PUT": _memo_put,
    "BINPUT": _memo_put,
    "LONG_BINPUT": _memo_put,
    "MEMOIZE": _memo_put,
    "GET": _memo_get,
    "BINGET": _memo_get,
    "LONG_BINGET": _memo_get,
    "PROTO": _proto,
    "FRAME": _nothing,
    "NEXT_BUFFER": _next_buffer,
    "READONLY_BUFFER": _readonly_buffer,
}


def load_restricted(data: bytes, buffers: Iterable[object], patterns: Sequence[str]) -> Any:
    """Unpickle ``data`` under the rules above; see ``pickling.loads``."""
    return run(Interpreter(io.BytesIO(data), buffers, patterns, len(data)))


def run(interpreter: Interpreter) -> Any:
    """The value ``interpreter`` loads; a malformed stream raises ``pickle.UnpicklingError``."""
    try:
        return interpreter.load()
    except (JobliteError, pickle.UnpicklingError, EOFError):
        raise
    except (
        ValueError,
        TypeError,
        LookupError,
        AttributeError,
        ArithmeticError,
        RecursionError,
        BufferError,
        pickle.PickleError,
    ) as error:
        # A malformed stream, or an allowed constructor rejecting what the file gave it.
        raise pickle.UnpicklingError(f"{type(error).__name__}: {error}") from error
