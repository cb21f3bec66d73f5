"""Hostile files against load(allowed=...): every payload, every allow-list shape.

Each payload is a pickle a plain load would let run code, write a file,
crash the process or allocate far more than the file holds. Under any
``allowed`` it must be refused with a joblite error, with no side effect.
Payloads that crash an unprotected process run in a subprocess.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import operator
import os
import pathlib
import pickle
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from joblite._core.pickling import _array_from_buffer, dumps, loads
from joblite.exceptions import InvalidFileError, UnsafeLoadError
from joblite.persistence import dump, load

REFUSED = (UnsafeLoadError, InvalidFileError)
ROOT = pathlib.Path(__file__).resolve().parents[2]


class R:
    """Pickles as ``fn(*args)`` (then ``__setstate__(state)``): a payload's building block."""

    def __init__(self, fn: Any, args: tuple[Any, ...], state: Any = None) -> None:
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self) -> Any:
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)

    def __call__(self) -> None:  # pickle only takes callables as the first item
        raise AssertionError("a payload is never called here")


class Blob(bytes):
    """A user subclass of bytes: ``Blob(n)`` is n zero bytes."""


class Grid(np.ndarray):
    """A user subclass of ndarray: ``Grid.__new__(Grid, shape)`` allocates."""


class Model:
    """A user class: allowed by the "user module" shape."""

    def __init__(self) -> None:
        self.weights = np.arange(3.0)


SHAPES: dict[str, list[str]] = {
    "none": [],
    "numpy": ["numpy"],
    "builtins": ["builtins"],
    "operator": ["operator"],
    "functools": ["functools"],
    "collections": ["collections"],
    "names": ["numpy.ndarray", "collections.OrderedDict", "datetime.datetime", "builtins.list"],
    "user module": [__name__],
}


def _object_dtype_state(fields: dict[str, Any] | None = None, subarray: Any = None) -> R:
    """A void dtype whose state declares object contents with flags 0 (issue 11, item 1)."""
    fields = {"a": (np.dtype("O"), 0)} if fields is None and subarray is None else fields
    names = None if fields is None else tuple(fields)
    return R(np.dtype, ("V8", False, True), (3, "|", subarray, names, fields, 8, 1, 0))


def _crafted(kind: str) -> Any:
    if kind == "array_from_buffer":
        return R(_array_from_buffer, (b"A" * 8, _object_dtype_state(), (1,), "C"))
    if kind == "frombuffer":
        _frombuffer = np.ones(1).__reduce_ex__(5)[0]  # numpy's own protocol-5 rebuilder
        return R(_frombuffer, (b"A" * 8, _object_dtype_state(), (1,), "C"))
    if kind == "scalar":
        scalar = np.float64(1).__reduce__()[0]
        return R(scalar, (_object_dtype_state(), b"A" * 8))
    if kind == "setstate":
        _reconstruct = np.ones(1).__reduce__()[0]
        state = (1, (1,), _object_dtype_state(), False, b"A" * 8)
        return R(_reconstruct, (np.ndarray, (0,), b"b"), state)
    if kind == "subarray":
        return R(
            _array_from_buffer,
            (b"A" * 8, _object_dtype_state(subarray=(np.dtype("O"), (1,))), (1,), "C"),
        )
    if kind == "object_dtype_raw":
        return R(_array_from_buffer, (b"A" * 8, np.dtype("O"), (1,), "C"))
    if kind in ("RandomState pos", "MT19937 pos", "Philox buffer_pos"):
        # numpy's own setters take these; the first draw then reads out of bounds.
        bits = np.random.Philox(0) if kind.startswith("Philox") else np.random.MT19937(0)
        state = bits.state
        if kind.startswith("Philox"):
            state["buffer_pos"] = 10**9
        else:
            state["state"]["pos"] = 10**6
        if kind.startswith("RandomState"):
            rs = np.random.RandomState(0)
            return R(*rs.__reduce__()[:2], {**state, "has_gauss": 0, "gauss": 0.0})
        ctor, args, _ = bits.__reduce__()
        from numpy.random._pickle import __generator_ctor

        return R(__generator_ctor, (R(ctor, args, (state, None)),))
    raise AssertionError(kind)


CRASHERS = [
    "array_from_buffer",
    "frombuffer",
    "scalar",
    "setstate",
    "subarray",
    "object_dtype_raw",
    "RandomState pos",
    "MT19937 pos",
    "Philox buffer_pos",
]


def _touch(where: pathlib.Path) -> str:
    return f"open({str(where)!r}, 'w').close()"


def _os_system_through_globals() -> R:
    """``_array_from_buffer.__globals__["sys"].modules["os"].system`` as operator calls."""
    value: Any = _array_from_buffer  # a global the old default set allowed
    for getter, step in (
        (operator.attrgetter, "__globals__"),
        (operator.itemgetter, "sys"),
        (operator.attrgetter, "modules"),
        (operator.itemgetter, "os"),
        (operator.attrgetter, "system"),
    ):
        value = R(R(getter, (step,)), (value,))
    return value


def _payloads(marker: pathlib.Path) -> dict[str, Any]:
    """name -> value whose pickle is the attack; ``marker`` must never appear."""
    from numpy.random._pickle import __generator_ctor

    _reconstruct = np.ones(1).__reduce__()[0]

    huge = 1 << 40
    return {
        "eval": R(eval, (_touch(marker),)),
        "exec": R(exec, (_touch(marker),)),
        "compile": R(compile, ("1", "f", "eval")),
        "getattr": R(getattr, (collections.OrderedDict, "fromkeys")),
        "__import__": R(__import__, ("os",)),
        "open for writing": R(open, (str(marker), "w")),
        "os.system": R(os.system, (f"touch {marker}",)),
        "subprocess": R(subprocess.call, (["touch", str(marker)],)),
        "numpy.testing.runstring": R(np.testing.runstring, (_touch(marker), {})),
        "numpy.savetxt": R(np.savetxt, (str(marker), np.zeros(1))),
        "numpy.load allow_pickle": R(np.load, (str(marker), None, True)),
        "numpy.memmap w+": R(np.memmap, (str(marker), np.uint8, "w+", 0, (1,))),
        "numpy.lib.format.open_memmap": R(np.lib.format.open_memmap, (str(marker), "w+")),
        "numpy.ctypeslib": R(np.ctypeslib.as_array, (0, (1,))),
        "numpy.lib.stride_tricks.as_strided": R(
            np.lib.stride_tricks.as_strided, (np.zeros(1), (1 << 20,), (8,))
        ),
        "numpy.fromfunction": R(np.fromfunction, (eval, (1,))),
        "operator chain to os.system": R(_os_system_through_globals(), (f"touch {marker}",)),
        "operator.attrgetter": R(R(operator.attrgetter, ("__globals__",)), (_touch,)),
        "operator.methodcaller": R(R(operator.methodcaller, ("__reduce__",)), (1,)),
        "operator.itemgetter": R(R(operator.itemgetter, ("k",)), ({"k": 1},)),
        "operator.mul": R(operator.mul, (b"A", huge)),
        "functools.partial": R(functools.partial, (exec, _touch(marker))),
        "functools.reduce": R(functools.reduce, (operator.add, [b"A"] * 2)),
        "defaultdict(eval)": R(collections.defaultdict, (eval,)),
        "collections.namedtuple": R(collections.namedtuple, ("T", "a b")),
        "pickle.loads nested": R(pickle.loads, (pickle.dumps(R(eval, (_touch(marker),))),)),
        "importlib": R(__import__("importlib").import_module, ("os",)),
        "builtins.type": R(type, ("X", (), {})),
        "sys.exit": R(sys.exit, (3,)),
        "joblite.dump": R(dump, (1, str(marker))),
        "bytearray(n)": R(bytearray, (huge,)),
        "bytes(n)": R(bytes, (huge,)),
        "list(range(n))": R(list, (range(huge),)),
        "numpy.zeros": R(np.zeros, ((huge,),)),
        "numpy.arange": R(np.arange, (huge,)),
        "numpy.empty of a 2-d shape": R(np.empty, ([1 << 20, 1 << 20],)),
        "repr of many references": R(repr, (["A" * 10_000] * 1000,)),
        "operator.mod formats": R(operator.mod, ("%100000000d", 1)),
        "numpy.ndarray(shape)": R(np.ndarray, ((huge,),)),
        "allowed bytes subclass(n)": R(__import__("copyreg")._reconstructor, (Blob, bytes, huge)),
        "_reconstruct(shape)": R(_reconstruct, (np.ndarray, (huge,), b"b")),
        "ndarray state longer than its data": R(
            _reconstruct, (np.ndarray, (0,), b"b"), (1, (huge,), np.dtype("f8"), False, b"A" * 8)
        ),
        "array_from_buffer(shape)": R(_array_from_buffer, (b"A" * 8, np.dtype("f8"), (huge,), "C")),
        "str of many references": R(str, (["A" * 10_000] * 1000,)),
        "Decimal of a huge int": R(__import__("decimal").Decimal, (7**200_000,)),
        "Fraction exponent": R(__import__("fractions").Fraction, ("1e1000000000",)),
        "generator ctor forwards a call": R(__generator_ctor, ("PCG64", list)),
        "copyreg._reconstructor": R(__import__("copyreg")._reconstructor, (Model, dict, {1: 2})),
        "copyreg.add_extension": R(__import__("copyreg").add_extension, ("os", "system", 99)),
        "BUILD sets a callable attribute": R(Model, (), {"weights": eval}),
        "BUILD sets __class__": R(Model, (), (None, {"__class__": Model})),
        "BUILD sets __array_interface__": R(
            Model, (), {"__array_interface__": {"data": (8, False), "shape": (9,), "version": 3}}
        ),
        "BUILD on a builtin object": R(collections.OrderedDict, (), {"x": 1}),
        "dtype state malformed": R(np.dtype, ("f8", False, True), (3, "<", None, None, None, -1)),
        "dtype field out of bounds": R(
            np.dtype,
            ("V8", False, True),
            (3, "|", None, ("a",), {"a": (np.dtype("i8"), 64)}, 8, 1, 0),
        ),
    }


PAYLOAD_NAMES = list(_payloads(pathlib.Path("/nonexistent")))


@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_hostile_payloads_are_refused_under_every_allow_list(
    tmp_path: pathlib.Path, name: str
) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.jl"
    dump({"x": [1, _payloads(marker)[name]]}, path)
    for shape, allowed in SHAPES.items():
        with pytest.raises(REFUSED):
            load(path, allowed=allowed)
        assert not marker.exists(), (name, shape)


def test_code_payloads_do_run_without_allowed(tmp_path: pathlib.Path) -> None:
    # The control: the same files through a plain load do what they say.
    marker = tmp_path / "pwned"
    names = ("eval", "numpy.testing.runstring", "numpy.memmap w+", "operator chain to os.system")
    for name in (*names, "functools.partial"):
        dump(_payloads(marker)[name], tmp_path / "evil.jl")
        value = load(tmp_path / "evil.jl")
        if callable(value):
            value()
        assert marker.exists(), name
        marker.unlink()


def _run_crasher(kind: str, path: str) -> None:
    """In a subprocess: load a crafted file under every shape, use it, print what happened."""
    for shape, allowed in SHAPES.items():
        try:
            value: Any = load(path, allowed=allowed)["x"]
            # Using the value is what crashes.
            if isinstance(value, np.random.RandomState):
                value.rand(3)
            elif isinstance(value, np.random.Generator):
                value.random(3)
            else:
                repr(value)
            print(shape, "loaded")
        except REFUSED as error:
            print(shape, type(error).__name__)


@pytest.mark.parametrize("kind", CRASHERS)
def test_values_that_crash_when_used_are_refused(tmp_path: pathlib.Path, kind: str) -> None:
    """Crafted dtypes and random states: the old loader returned them, touching them segfaulted."""
    path = tmp_path / "evil.jl"
    dump({"x": _crafted(kind)}, path)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from {__name__} import _run_crasher; _run_crasher({kind!r}, {str(path)!r})",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    lines = result.stdout.splitlines()
    assert len(lines) == len(SHAPES)
    assert all(line.endswith(("UnsafeLoadError", "InvalidFileError")) for line in lines), lines


def _stream(*parts: bytes) -> bytes:
    return b"\x80\x02" + b"".join(parts) + b"."


def test_a_dtype_cannot_be_changed_after_it_is_used() -> None:
    # dtype('V8') is put in a list, then BUILD gives the same object an object field.
    dtype = b"cnumpy\ndtype\n(U\x02V8\x89\x88tR"  # numpy.dtype('V8', False, True)
    state = pickle.dumps(_object_dtype_state().state, protocol=2)[2:-1]
    attack = _stream(dtype, b"q\x00", b"]q\x01h\x00a", b"h\x00", state, b"b0h\x01")
    with pytest.raises(UnsafeLoadError, match=r"numpy\.dtype"):
        loads(attack, allowed=[])


@pytest.mark.parametrize(
    ("stream", "what"),
    [
        (_stream(b"\x82\x01"), "EXT1"),  # an extension code names a global in copyreg's registry
        (_stream(b"U\x01xQ"), "BINPERSID"),
        (_stream(b"](K\x01K\x02tR"), "only a global can be called"),
        (_stream(b"cbuiltins\n__dict__\n"), "dunder"),
        (_stream(b"ctypes\nFunctionType\n(U\x01xtR"), "never loads it"),
        (_stream(b"ctypes\nCodeType\n)R"), "never loads it"),
        (_stream(b"cnumpy\nndarray\n)R"), "name it, not call it"),
        (_stream(b"cbuiltins\nbytes\nJ\xff\xff\xff\x7f\x85\x81"), "created without a call"),
    ],
)
def test_streams_that_no_data_pickle_uses_are_refused(stream: bytes, what: str) -> None:
    for allowed in SHAPES.values():
        with pytest.raises(UnsafeLoadError, match=what):
            loads(stream, allowed=allowed)


def test_allowed_subclasses_of_ndarray_and_bytes_get_no_huge_size() -> None:
    grid = f"c{__name__}\nGrid\n".encode()
    for args in (b"\x8a\x06\x00\x00\x00\x00\x00\x01\x85", b"K\x01\x8a\x05\x00\x00\x00\x00\x01\x86"):
        newobj = _stream(grid, args, b"\x85\x81")  # Grid.__new__(Grid, shape)
        with pytest.raises(UnsafeLoadError, match="more than the file holds"):
            loads(newobj, allowed=[__name__])
    assert loads(_stream(grid, b"K\x02\x85\x85\x81"), allowed=[__name__]).shape == (2,)  # type: ignore[attr-defined]


def test_out_of_band_buffers_are_not_iterated_into_objects() -> None:
    # tuple(buffer): an int object per byte of a buffer as big as the file.
    stream = _stream(b"cbuiltins\ntuple\n\x97\x98\x85R")
    with pytest.raises(UnsafeLoadError, match="more than the file holds"):
        loads(stream, [bytearray(10**6)], allowed=[])


def test_a_file_cannot_change_objects_of_a_module() -> None:
    # numpy's global RandomState (re-seeding it would make np.random predictable)
    # and numpy's type registry, reachable by name once "numpy" is allowed.
    reseed = _stream(b"cnumpy.random.mtrand\n_rand\n}b")
    register = _stream(b"cnumpy\nsctypeDict\nU\x0cjoblite_testK\x01s")
    try:
        for stream in (reseed, register):
            with pytest.raises(UnsafeLoadError, match="may not change a module's objects"):
                loads(stream, allowed=["numpy"])
        assert "joblite_test" not in np.sctypeDict
    finally:
        np.sctypeDict.pop("joblite_test", None)


def test_deny_list_wins_over_an_exact_listing() -> None:
    attack = pickle.dumps(R(eval, ("1",)), protocol=4)
    with pytest.raises(UnsafeLoadError, match="never loads it") as raised:
        loads(attack, allowed=["builtins.eval"])
    assert not raised.value.fixable
    assert "add its module" not in str(raised.value)
    copy = pickle.loads(pickle.dumps(raised.value))  # errors cross process boundaries
    assert (copy.global_name, copy.fixable, str(copy)) == (
        "builtins.eval",
        False,
        str(raised.value),
    )


def test_allowing_a_whole_package_logs_what_it_opens(caplog: pytest.LogCaptureFixture) -> None:
    from joblite._core import pickling

    pickling._WARNED.discard("collections")
    with caplog.at_level("WARNING", logger="joblite"):
        loads(pickle.dumps([1]), allowed=["collections"])
        loads(pickle.dumps([1]), allowed=["collections.OrderedDict"])
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "'collections'" in messages[0]
    assert "every class and function" in messages[0]


def _legitimate() -> dict[str, Any]:
    import datetime
    import decimal
    import fractions

    dtypes = [
        *(np.dtype(c) for c in "?bBhHiIlLqQefdgFDG"),
        *(np.dtype(s) for s in ("S3", "U2", "V4", ">i4", "<f8", "M8[ns]", "m8[2s]", "M8")),
    ]
    structured = np.dtype([("a", "<i4"), ("b", ">f8", (2,)), ("c", "S2")])
    return {
        "arrays": [
            np.arange(4).astype(d) if d.kind not in "SUVMm" else np.zeros(3, dtype=d)
            for d in dtypes
        ],
        "dtypes": [
            *dtypes,
            structured,
            np.dtype([("a", "i1"), ("b", "<i8")], align=True),
            np.dtype([(("Title A", "a"), "<i4"), ("b", "f8")]),
        ],
        "structured": np.zeros(2, dtype=structured),
        "subarray dtype": np.zeros(2, dtype=("f4", (2, 3))),
        "offsets": np.zeros(
            2, dtype={"names": ["a"], "formats": ["<i4"], "offsets": [4], "itemsize": 12}
        ),
        "metadata": np.dtype("f8", metadata={"unit": "m"}),
        "objects": np.array([1, None, "s"], dtype=object),
        "strings": [  # numpy >= 2.0
            np.array(["a", None], dtype=string_dtype(**kwargs))
            for string_dtype in [getattr(getattr(np, "dtypes", None), "StringDType", None)]
            if string_dtype is not None
            for kwargs in ({}, {"na_object": None})
        ],
        "scalars": [np.float32(1.5), np.int64(-2), np.datetime64("2024-01-01"), np.bool_(True)],
        "generators": [
            np.random.default_rng(1),
            *(np.random.Generator(bits(2)) for bits in (np.random.MT19937, np.random.Philox)),
            np.random.Generator(np.random.SFC64(4)),
            np.random.RandomState(5),
        ],
        "datetime": [datetime.datetime(2024, 2, 29, 1, 2, 3, 4, tzinfo=datetime.timezone.utc),
                     datetime.date(2020, 1, 1), datetime.time(1, 2), datetime.timedelta(days=-3)],
        "numbers": [decimal.Decimal("-1.25e-7"), fractions.Fraction(-7, 3), 3 + 4j, 2**100],
        "collections": [collections.OrderedDict(a=1), collections.defaultdict(list, b=[2]),
                        collections.deque([1, 2], maxlen=5), collections.Counter("abca")],
        "sets": [{1, "a"}, frozenset({(1, 2)})],
        "builtins": [range(1, 10**12, 7), slice(1, None, 2), bytearray(b"ba"), b"b", Ellipsis],
    }  # fmt: skip


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, np.random.Generator):
        return bool(a.random() == b.random())
    if isinstance(b, np.random.RandomState):
        return bool(a.rand() == b.rand())
    if isinstance(b, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and repr(a.tolist()) == repr(b.tolist())
    if isinstance(b, dict) and not isinstance(b, collections.Counter):
        return type(a) is type(b) and list(a) == list(b) and all(_same(a[k], b[k]) for k in b)
    if isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(b, np.dtype):  # 'q' comes back as 'l': numpy pickles both as 'i8'
        return a == b and a.metadata == b.metadata
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("compress", [0, True])
def test_legitimate_data_loads_under_the_default_set(
    tmp_path: pathlib.Path, protocol: int, compress: object
) -> None:
    dump(_legitimate(), tmp_path / "ok.jl", protocol=protocol, compress=compress)
    restricted: Any = load(tmp_path / "ok.jl", allowed=[])
    plain: Any = load(tmp_path / "ok.jl")  # numpy's protocol-2 pickles lose byte order
    for key, value in plain.items():
        assert _same(restricted[key], value), key


@pytest.mark.parametrize("protocol", [0, 1, 2, 5])
def test_allowed_user_classes_still_load(tmp_path: pathlib.Path, protocol: int) -> None:
    dump([Model(), Model()], tmp_path / "m.jl", protocol=protocol)
    loaded: Any = load(tmp_path / "m.jl", allowed=[f"{__name__}.Model"])
    assert [m.weights.tolist() for m in loaded] == [[0.0, 1.0, 2.0]] * 2


def _nested(kind: str, depth: int) -> bytes:
    """A list holding one value nested ``depth`` deep, as a protocol-2 stream."""
    prefix, before, after = {
        "tuple": (b"", b"", b"\x85"),
        "frozenset": (b"", b"(", b"\x91"),
        "tuple(list)": (b"cbuiltins\ntuple\nq\x000", b"h\x00]", b"a\x85R"),
        "slice": (b"cbuiltins\nslice\nq\x000", b"h\x00", b"\x85R"),
    }[kind]
    return _stream(prefix, b"]", before * depth, b"N", after * depth, b"a")


@pytest.mark.parametrize("kind", ["tuple", "frozenset", "tuple(list)", "slice"])
def test_keys_nested_too_deep_to_hash_are_refused(kind: str) -> None:
    # Hashing nested tuples recurses in C with no limit: a value 10**6 levels
    # deep (2 bytes each) crashes the process when used as a key (slices are
    # hashable from Python 3.12). 3000 levels show the limit without a crash.
    with pytest.raises(UnsafeLoadError, match="nested over 1000 deep"):
        loads(_nested(kind, 3000), allowed=[])
    assert len(loads(_nested(kind, 100), allowed=[])) == 1  # type: ignore[arg-type]


def _fuzz(seed: int, rounds: int) -> None:
    """In a subprocess: mutated streams of real data raise only the documented errors."""
    import random

    data, buffers = dumps(
        {"a": [1, 2.5, "s", b"b", (1, 2)], "w": np.arange(6.0).reshape(2, 3),
         "d": np.dtype([("x", "<i4"), ("y", "O")]), "o": np.array([1, None], dtype=object),
         "rng": np.random.default_rng(0), "f": 0.5}
    )  # fmt: skip
    rng = random.Random(seed)
    for _ in range(rounds):
        stream = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(stream))
            if rng.random() < 0.8:
                stream[at] = rng.randrange(256)
            else:
                del stream[at:]
                stream += b"."
        with contextlib.suppress(UnsafeLoadError, pickle.UnpicklingError, EOFError):
            loads(bytes(stream), list(buffers), allowed=[])
    print("ok")


def test_mutated_streams_raise_only_documented_errors() -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"from {__name__} import _fuzz; _fuzz(11, 3000)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr[-3000:]
