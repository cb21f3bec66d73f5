"""What the restricted loader resolves, and how each resolved global may be used.

Three lists decide, in this order:

* ``DENIED``: globals that run code, reach attributes, touch files, processes
  or the interpreter, forward calls to other callables, or multiply sizes.
  They are refused whatever ``allowed`` says, also under another name.
* ``SAFE``: the default set (builtin data types, ``collections``' data types,
  ``datetime``, ``Decimal``, ``Fraction``, numpy arrays, dtypes, scalars and
  random generators). Each has a rule: a value the file may only name, or a
  checked call that refuses sizes and collections longer than the file.
* the caller's ``allowed`` patterns: those globals are called as the file says.

Example::

    >>> denied_reason("builtins.eval")
    'it runs code or reaches attributes'
    >>> denied_reason("collections.OrderedDict") is None
    True
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joblite.exceptions import UnsafeLoadError

from . import _restricted_numpy as npr

__all__ = ["DENIED", "SAFE", "Rule", "denied_reason"]


@dataclass(frozen=True)
class Rule:
    """How a resolved global may be used: ``call`` is None for a value only."""

    call: Callable[[Any, Any, tuple[Any, ...]], Any] | None


# The loader's context, as a rule sees it (the VM in _restricted.py).
Context = Any

# Module prefixes and exact names never resolved. Grouped by why.
_DENIED_GROUPS: dict[str, tuple[str, ...]] = {
    "it runs code or reaches attributes": (
        "builtins.eval", "builtins.exec", "builtins.compile", "builtins.getattr",
        "builtins.setattr", "builtins.delattr", "builtins.hasattr", "builtins.__import__",
        "builtins.__build_class__", "builtins.globals", "builtins.locals", "builtins.vars",
        "builtins.dir", "builtins.type", "builtins.breakpoint", "builtins.help",
        "builtins.input", "builtins.exit", "builtins.quit", "builtins.copyright",
        "builtins.credits", "builtins.license",
        "importlib", "_frozen_importlib", "_frozen_importlib_external", "_imp", "imp",
        "types", "code", "codeop", "runpy", "pdb", "bdb", "timeit", "trace", "profile",
        "cProfile", "doctest", "unittest", "inspect", "gc", "marshal", "pickle", "_pickle",
        "pickletools", "copyreg", "cloudpickle", "dill", "joblib", "pydoc", "site",
        "operator.attrgetter", "operator.methodcaller", "operator.itemgetter",
        "operator.getitem", "operator.call", "collections.namedtuple", "ctypes", "_ctypes",
        "cffi", "_functools", "_operator", "numpy.ctypeslib", "numpy.testing", "numpy.f2py",
        "numpy.distutils",
        "numpy._pytesttester", "numpy._core._internal", "numpy.core._internal",
        "numpy.lib.stride_tricks", "numpy.lib._stride_tricks_impl", "numpy.lib.utils",
        "numpy.lib._utils_impl", "numpy.info", "numpy.show_config", "numpy.show_runtime",
        "logging",
    ),
    "it forwards calls to another callable": (
        "builtins.map", "builtins.filter", "builtins.iter", "functools",
        "numpy.vectorize", "numpy.frompyfunc", "numpy.apply_along_axis",
        "numpy.apply_over_axes", "numpy.piecewise", "numpy.fromfunction", "atexit",
        "threading", "_thread", "sched", "signal", "asyncio", "concurrent", "multiprocessing",
    ),
    "it reads or writes files, runs processes or opens connections": (
        "builtins.open", "builtins.print", "os", "posix", "nt", "sys", "subprocess", "pty",
        "_posixsubprocess", "shutil", "tempfile", "io", "_io", "codecs", "_codecs", "fileinput",
        "linecache",
        "tokenize", "pathlib.Path.open", "mmap", "socket", "ssl", "http", "urllib",
        "ftplib", "smtplib", "poplib", "imaplib", "telnetlib", "webbrowser", "xml",
        "zipfile", "tarfile", "gzip", "bz2", "lzma", "zipimport", "shelve", "dbm",
        "sqlite3", "fcntl", "resource", "faulthandler", "numpy.load", "numpy.save",
        "numpy.savez", "numpy.savez_compressed", "numpy.savetxt", "numpy.loadtxt",
        "numpy.genfromtxt", "numpy.fromfile", "numpy.fromregex", "numpy.memmap",
        "numpy.DataSource", "numpy.lib.format", "numpy.lib.npyio", "numpy.lib._npyio_impl",
        "numpy.lib._datasource", "numpy.rec.fromfile", "numpy._core.records.fromfile",
        "numpy.core.records.fromfile", "numpy._core.memmap", "numpy.core.memmap",
        "joblite",
    ),
    "it multiplies the sizes it is given": (
        "builtins.pow", "builtins.sum", "builtins.format", "builtins.repr", "builtins.ascii",
        "operator.mod", "operator.imod", "operator.add", "operator.iadd",
        "operator.concat", "operator.iconcat", "operator.mul", "operator.imul",
        "operator.pow", "operator.ipow", "operator.lshift", "operator.ilshift",
        "operator.matmul", "operator.imatmul", "operator.setitem", "operator.delitem",
        "math.factorial", "math.comb", "math.perm", "math.prod", "math.lcm",
    ),
}  # fmt: skip

DENIED: dict[str, str] = {
    name: reason for reason, names in _DENIED_GROUPS.items() for name in names
}
# Exceptions to the joblite entry: its array helper is in SAFE, its by-value
# loader needs an exact opt-in (see _restricted.py), its errors are data.
_JOBLITE_DATA = ("joblite._core.pickling._array_from_buffer", "joblite.exceptions")
_DUNDER = re.compile(r"__\w+__")


def denied_reason(full: str) -> str | None:
    """Why ``module.qualname`` is never loaded, or None."""
    if full in SAFE:
        return None
    if any(full == name or full.startswith(name + ".") for name in _JOBLITE_DATA):
        return None
    name = full
    while True:
        if name in DENIED:
            return DENIED[name]
        name, dot, _ = name.rpartition(".")
        if not dot:
            break
    last = full.rpartition(".")[2]
    if _DUNDER.fullmatch(last):
        return "a dunder name reaches an object's or module's internals"
    return None


def _refuse(full: str, reason: str) -> UnsafeLoadError:
    return UnsafeLoadError(full, reason, fixable=False)


def _check_sizes(ctx: Context, full: str, args: tuple[Any, ...], *, sizes: bool) -> None:
    """Refuse arguments that would make a constructor allocate more than the file holds.

    A collection, string or bytes the stream built is no longer than the
    stream; a range, an out-of-band buffer or array, or a size (``sizes``:
    bytes(n)) can claim any length, and ``tuple(buffer)`` makes an int per byte.
    """
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool):
            if sizes and arg > ctx.budget:
                raise _refuse(full, f"a size of {arg} is more than the file holds")
        elif hasattr(arg, "__len__"):
            try:
                length = len(arg)
            except (TypeError, OverflowError):
                length = ctx.budget + 1
            if length > ctx.budget:
                raise _refuse(full, f"a collection of {length} items is more than the file holds")
        elif hasattr(arg, "__iter__") and not isinstance(arg, (dict, set, frozenset)):
            raise _refuse(full, f"a lazy {type(arg).__name__} argument could yield anything")


def _sized(ctx: Context, obj: Any, args: tuple[Any, ...]) -> Any:
    _check_sizes(ctx, ctx.name_of(obj), args, sizes=obj in (bytes, bytearray))
    if obj is slice:
        return ctx.hashable(obj(*args), args)
    if obj in (tuple, frozenset) and args:
        items = list(args[0])
        return ctx.hashable(obj(items), items)
    return obj(*args)


_CHEAP_TO_PRINT = (str, int, float, complex, bool, type(None))


def _str(ctx: Context, obj: Any, args: tuple[Any, ...]) -> Any:
    # str(a_list) prints every item: a list of one string referenced 10**5
    # times (5 bytes each) prints 10**5 copies. Only text, decoding and numbers.
    decoding = (
        1 < len(args) <= 3
        and isinstance(args[0], (bytes, bytearray))
        and all(isinstance(a, str) for a in args[1:])
    )
    if not (decoding or (len(args) <= 1 and all(type(a) in _CHEAP_TO_PRINT for a in args))):
        raise _refuse("builtins.str", "only str(text), str(number) or str(bytes, encoding)")
    return obj(*args)


def _decimal(ctx: Context, obj: Any, args: tuple[Any, ...]) -> Any:
    # Decimal of a huge int converts in quadratic time; pickles hold a string.
    if len(args) > 2 or (args and not isinstance(args[0], (str, tuple))):
        raise _refuse("decimal.Decimal", "only Decimal('digits') or its tuple form")
    _check_sizes(ctx, "decimal.Decimal", args, sizes=False)
    return obj(*args)


def _latin1(ctx: Context, obj: Any, args: tuple[Any, ...]) -> Any:
    # Protocols 0-2 pickle bytes as _codecs.encode(text, "latin1"): only that.
    if len(args) != 2 or not isinstance(args[0], str) or args[1] not in ("latin1", "latin-1"):
        raise _refuse("_codecs.encode", "only encode(text, 'latin1') is allowed")
    return codecs.encode(args[0], "latin1")


def _fraction(ctx: Context, obj: Any, args: tuple[Any, ...]) -> Any:
    # Pickles hold (numerator, denominator). Fraction("1e999999999") computes a
    # huge power of ten and gcd() of huge ints takes quadratic time: neither.
    if not (
        len(args) == 2 and all(type(a) is int and a.bit_length() <= _FRACTION_BITS for a in args)
    ) and not (len(args) == 1 and isinstance(args[0], str) and _RATIO.fullmatch(args[0])):
        raise _refuse("fractions.Fraction", "only Fraction(n, d) or Fraction('n/d') is allowed")
    return obj(*args)


_FRACTION_BITS = 16384  # gcd of two random such ints: 0.4 ms (65536 bits: 11 ms)
_RATIO = re.compile(r"-?\d{1,4300}(/\d{1,4300})?")


def _defaultdict(ctx: Context, obj: Any, args: tuple[Any, ...]) -> Any:
    if args and args[0] is not None and not ctx.is_global(args[0]):
        raise _refuse("collections.defaultdict", "its default factory must be a loaded global")
    _check_sizes(ctx, "collections.defaultdict", args[1:], sizes=False)
    return obj(*args)


def _reconstructor(ctx: Context, obj: Any, args: tuple[Any, ...]) -> Any:
    # Protocols 0-1 pickle instances as _reconstructor(cls, base, state).
    if len(args) != 3 or not isinstance(args[0], type) or not ctx.trusts_type(args[0]):
        raise _refuse("copyreg._reconstructor", "its class must be in `allowed`")
    cls, base, state = args
    if base is object and state is None:
        return obj(cls, base, state)
    plain = (dict, list, set, frozenset, tuple, int, float, complex, str, bytes)
    if base in plain and issubclass(cls, base):
        _check_sizes(ctx, "copyreg._reconstructor", (state,), sizes=base is bytes)
        return obj(cls, base, state)
    raise _refuse("copyreg._reconstructor", f"{base!r} is not a plain base")


def _newobj(ctx: Context, obj: Any, args: tuple[Any, ...]) -> Any:
    if not args:
        raise _refuse("copyreg.__newobj__", "it needs a class")
    return ctx.new(args[0], args[1:], {})


def _newobj_ex(ctx: Context, obj: Any, args: tuple[Any, ...]) -> Any:
    if len(args) != 3 or not isinstance(args[1], tuple) or not isinstance(args[2], dict):
        raise _refuse("copyreg.__newobj_ex__", "it takes (cls, args, kwargs)")
    return ctx.new(*args)


def _numpy_call(which: str) -> Callable[[Context, Any, tuple[Any, ...]], Any]:
    def call(ctx: Context, obj: Any, args: tuple[Any, ...]) -> Any:
        if which == "dtype":
            return npr.PendingDtype(*args[:3]) if len(args) <= 3 else npr.PendingDtype(None)
        if which == "reconstruct":
            return npr.reconstruct(obj, args, bool(args) and ctx.trusts_type(args[0]))
        if which == "scalar":
            return npr.scalar(obj, args)
        return npr.array_from_buffer(obj, args, ctx.name_of(obj))

    return call


def _random_call(ctx: Context, obj: Any, args: tuple[Any, ...]) -> Any:
    # __generator_ctor(name, ctor) would call any ctor: one argument only,
    # a bit generator's name, class or instance.
    from numpy.random import bit_generator
    from numpy.random._pickle import BitGenerators

    full = ctx.name_of(obj)
    if len(args) > 1:
        raise _refuse(full, "it takes one bit generator")
    if args:
        arg = args[0]
        named = isinstance(arg, str) and arg in BitGenerators
        if (
            not named
            and not isinstance(arg, bit_generator.BitGenerator)
            and not (isinstance(arg, type) and issubclass(arg, bit_generator.BitGenerator))
        ):
            raise _refuse(full, f"{type(arg).__name__} is not a numpy bit generator")
        if isinstance(arg, type) and not full.endswith("__bit_generator_ctor"):
            raise _refuse(full, "it takes a bit generator's name or instance")
    return obj(*args)


def _string_dtype(ctx: Context, obj: Any, args: tuple[Any, ...]) -> Any:
    # numpy.dtypes.StringDType(coerce=..., na_object=...): its pickle.
    if not 1 <= len(args) <= 2 or type(args[0]) not in (bool, int):
        raise _refuse(ctx.name_of(obj), "it takes (coerce, na_object)")
    return obj(*args)


def _seed_sequence(ctx: Context, obj: Any, args: tuple[Any, ...]) -> Any:
    from numpy.random.bit_generator import SeedSequence

    # A state here would skip the checks BUILD makes: numpy passes None.
    if len(args) != 3 or args[0] is not SeedSequence or args[2] is not None:
        raise _refuse("numpy.random.bit_generator.__pyx_unpickle_SeedSequence", "bad arguments")
    return obj(*args)


VALUE = Rule(None)
_SIZED = Rule(_sized)
_NUMPY_CORE = ("numpy._core", "numpy.core")
_RANDOM_TYPES = (
    "numpy.random._pcg64.PCG64", "numpy.random._pcg64.PCG64DXSM",
    "numpy.random._mt19937.MT19937", "numpy.random._philox.Philox",
    "numpy.random._sfc64.SFC64", "numpy.random.bit_generator.SeedSequence",
    "numpy.random._generator.Generator", "numpy.random.mtrand.RandomState",
)  # fmt: skip

_BUILTIN_TYPES = (
    "bool", "int", "float", "complex", "bytes", "bytearray", "tuple", "list", "dict",
    "set", "frozenset", "slice", "range",
)  # fmt: skip
SAFE: dict[str, Rule] = {
    **{f"builtins.{name}": _SIZED for name in _BUILTIN_TYPES},
    "builtins.Ellipsis": VALUE,
    "builtins.NotImplemented": VALUE,
    "builtins.object": VALUE,  # the base copyreg._reconstructor names (protocols 0-1)
    **{f"collections.{name}": _SIZED for name in ("OrderedDict", "deque", "Counter")},
    "collections.defaultdict": Rule(_defaultdict),
    **{
        f"datetime.{name}": _SIZED for name in ("date", "datetime", "time", "timedelta", "timezone")
    },
    "builtins.str": Rule(_str),
    "decimal.Decimal": Rule(_decimal),
    "fractions.Fraction": Rule(_fraction),
    "_codecs.encode": Rule(_latin1),
    "copyreg._reconstructor": Rule(_reconstructor),
    "copyreg.__newobj__": Rule(_newobj),
    "copyreg.__newobj_ex__": Rule(_newobj_ex),
    "numpy.dtype": Rule(_numpy_call("dtype")),
    "numpy.ndarray": VALUE,
    "joblite._core.pickling._array_from_buffer": Rule(_numpy_call("buffer")),
    **{f"{core}.multiarray._reconstruct": Rule(_numpy_call("reconstruct")) for core in _NUMPY_CORE},
    **{f"{core}.multiarray.scalar": Rule(_numpy_call("scalar")) for core in _NUMPY_CORE},
    **{f"{core}.numeric._frombuffer": Rule(_numpy_call("buffer")) for core in _NUMPY_CORE},
    "numpy._core._internal._convert_to_stringdtype_kwargs": Rule(_string_dtype),
    **{
        f"numpy.random._pickle.{name}": Rule(_random_call)
        for name in ("__generator_ctor", "__bit_generator_ctor", "__randomstate_ctor")
    },
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence": Rule(_seed_sequence),
    **dict.fromkeys(_RANDOM_TYPES, VALUE),
}
