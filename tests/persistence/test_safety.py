"""Untrusted files: inspect never unpickles, and allowed= refuses unknown globals."""

from __future__ import annotations

import json
import pathlib
import pickle
import sys
from typing import Any

import numpy as np
import pytest

from joblite.exceptions import UnsafeLoadError
from joblite.persistence import dump, inspect, load

from .helpers import assert_same

MARKER: list[str] = []


def _side_effect(marker: str) -> str:
    MARKER.append(marker)
    return marker


class Payload:
    """Unpickling this calls _side_effect: our stand-in for a malicious pickle."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_side_effect, ("executed",))


class Model:
    def __init__(self) -> None:
        self.weights = np.arange(3.0)


@pytest.fixture(autouse=True)
def _clear_marker() -> None:
    MARKER.clear()


@pytest.mark.parametrize("compress", [0, True])
def test_inspect_never_executes_pickle_code(tmp_path: pathlib.Path, compress: object) -> None:
    path = tmp_path / "evil.jl"
    dump({"payload": Payload(), "w": np.ones(4)}, path, compress=compress)
    manifest = inspect(path)
    assert MARKER == []
    assert manifest["object_type"] == "builtins.dict"
    arrays: Any = manifest["arrays"]
    assert [{k: a[k] for k in ("dtype", "shape", "order", "nbytes")} for a in arrays] == [
        {"dtype": "<f8", "shape": [4], "order": "C", "nbytes": 32}
    ]
    with pytest.raises(UnsafeLoadError) as refused:
        load(path, allowed=[])
    assert refused.value.global_name == f"{__name__}._side_effect"
    assert MARKER == []
    # The control: a plain load does run the payload, so the checks above mean something.
    assert load(path)["payload"] == "executed"  # type: ignore[index]
    assert MARKER == ["executed"]


def test_allowed_accepts_builtins_and_numpy_without_listing_them(tmp_path: pathlib.Path) -> None:
    value = {
        "arrays": [np.arange(3), np.array([1, None], dtype=object), np.array(2.0, dtype=">f4")],
        "scalars": [np.float32(1), np.int64(2), np.datetime64("2020-01-01")],
        "dtypes": [np.dtype([("a", "<i4")]), np.dtype("M8[ns]")],
        "builtins": [1, 2.5, 3j, "s", b"b", bytearray(b"x"), {1}, frozenset(), (1,), slice(1, 2)],
    }
    dump(value, tmp_path / "v.jl")
    assert_same(load(tmp_path / "v.jl", allowed=[]), value)


@pytest.mark.parametrize("pattern", [__name__, f"{__name__}.Model", "tests.persistence", "tests.*"])
def test_allowed_patterns_accept_listed_globals(tmp_path: pathlib.Path, pattern: str) -> None:
    dump(Model(), tmp_path / "m.jl")
    loaded: Any = load(tmp_path / "m.jl", allowed=[pattern])
    assert loaded.weights.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        (Model(), f"{__name__}.Model"),
        # The refused name is the one in the file: pathlib._local.PurePosixPath from 3.13.
        (pathlib.PurePosixPath("a"), f"{pathlib.PurePosixPath.__module__}.PurePosixPath"),
        (lambda: 1, "joblite._core.pickling._load_by_value"),
    ],
)
def test_allowed_refuses_unlisted_globals(
    tmp_path: pathlib.Path, value: object, refused: str
) -> None:
    dump(value, tmp_path / "x.jl")
    with pytest.raises(UnsafeLoadError) as raised:
        load(tmp_path / "x.jl", allowed=["numpy", f"{__name__}.Other"])
    assert raised.value.global_name == refused
    assert refused in str(raised.value)
    assert isinstance(raised.value, pickle.UnpicklingError)


@pytest.mark.parametrize(
    ("value", "listed"),
    [
        # Pickle writes json.encoder.JSONEncoder; users know it as json.JSONEncoder.
        (json.JSONEncoder, "json.JSONEncoder"),
        # pathlib._local.PurePosixPath in the file from Python 3.13 on.
        (pathlib.PurePosixPath("a/b"), "pathlib.PurePosixPath"),
    ],
)
def test_allowed_accepts_an_object_listed_under_its_public_name(
    tmp_path: pathlib.Path, value: object, listed: str
) -> None:
    dump(value, tmp_path / "x.jl")
    assert load(tmp_path / "x.jl", allowed=[listed]) == value


def test_a_public_name_does_not_allow_other_objects_of_its_module(
    tmp_path: pathlib.Path,
) -> None:
    dump(json.decoder.JSONArray, tmp_path / "x.jl")  # another global of json.decoder
    with pytest.raises(UnsafeLoadError, match=r"json\.decoder\.JSONArray"):
        load(tmp_path / "x.jl", allowed=["json.JSONEncoder"])


def test_a_refused_global_runs_no_module_getattr(monkeypatch: pytest.MonkeyPatch) -> None:
    # Lazy packages import submodules in a module __getattr__: a name chosen by
    # the file must not get to run it, even on the way to being refused.
    import types

    from joblite._core.pickling import loads

    lazy = types.ModuleType("lazy_pkg_for_test")
    asked: list[str] = []

    def module_getattr(name: str) -> object:
        asked.append(name)
        raise AttributeError(name)

    lazy.__getattr__ = module_getattr  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "lazy_pkg_for_test", lazy)
    with pytest.raises(UnsafeLoadError, match=r"lazy_pkg_for_test\.submodule"):
        loads(_global_then_call("lazy_pkg_for_test", "submodule"), allowed=["json.JSONEncoder"])
    assert asked == []


def test_by_value_functions_need_an_exact_opt_in(tmp_path: pathlib.Path) -> None:
    dump(lambda: 7, tmp_path / "f.jl")
    with pytest.raises(UnsafeLoadError):
        load(tmp_path / "f.jl", allowed=["joblite"])  # a module pattern is not enough
    loaded: Any = load(tmp_path / "f.jl", allowed=["joblite._core.pickling._load_by_value"])
    assert loaded() == 7


def test_dangerous_builtins_are_refused() -> None:
    from joblite._core.pickling import loads

    evil = pickle.dumps(getattr, protocol=5)
    with pytest.raises(UnsafeLoadError, match=r"builtins\.getattr"):
        loads(evil, allowed=["numpy"])
    with pytest.raises(ValueError, match="allowed"):
        loads(evil, allowed="numpy")  # a bare string is a common mistake


def _global_then_call(module: str, name: str, *calls: tuple[object, ...]) -> bytes:
    """A hand-made protocol-4 stream: GLOBAL module name, then REDUCE per call."""
    stream = b"\x80\x04c" + module.encode() + b"\n" + name.encode() + b"\n"
    for args in calls:
        stream += pickle.dumps(args, protocol=0)[:-1] + b"R"
    return stream + b"."


def test_dotted_paths_cannot_walk_to_builtins(tmp_path: pathlib.Path) -> None:
    from joblite._core.pickling import loads

    marker = tmp_path / "pwned"
    attack = _global_then_call(
        "numpy.dtypes",
        "_add_dtype_helper.__builtins__.get",
        ("eval",),
        (f"open({str(marker)!r}, 'w').close()",),
    )
    with pytest.raises(UnsafeLoadError, match="dotted attribute path"):
        loads(attack, allowed=[])
    with pytest.raises(UnsafeLoadError):
        loads(attack, allowed=["numpy"])
    assert not marker.exists()
    # The same stream through plain pickle does run the code: the test is real.
    pickle.loads(attack)
    assert marker.exists()


def test_allowed_module_does_not_extend_to_what_it_imports() -> None:
    from joblite._core.pickling import loads

    reexported = _global_then_call(__name__, "load")  # joblite.persistence.load
    with pytest.raises(UnsafeLoadError, match=r"defined in 'joblite\.persistence'"):
        loads(reexported, allowed=["tests.persistence"])
    module = _global_then_call(__name__, "pickle")
    with pytest.raises(UnsafeLoadError, match="is a module"):
        loads(module, allowed=["tests"])
    with pytest.raises(UnsafeLoadError, match="only numpy's dtype classes"):
        loads(_global_then_call("numpy.dtypes", "_add_dtype_helper"), allowed=[])
