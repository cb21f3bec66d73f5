"""The serialization layer: out-of-band buffers, cloudpickle fallback, restricted loads."""

from __future__ import annotations

import io
import pickle
import pickletools
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from joblite._core.pickling import dump_parts, dumps, loads

from .helpers import assert_same


def module_level_function(x: int) -> int:
    return x + 1


def _globals_in(data: bytes) -> list[str]:
    names: list[str] = []
    strings: list[str] = []
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(str(argument))
        elif opcode.name == "STACK_GLOBAL":
            names.append(".".join(strings[-2:]))
        elif opcode.name == "GLOBAL":
            names.append(str(argument).replace(" ", "."))
    return names


def test_contiguous_arrays_go_out_of_band_without_copy() -> None:
    array = np.arange(1000.0)
    fortran = np.asfortranarray(np.ones((4, 5)))
    data, buffers = dumps({"a": array, "f": fortran})
    assert len(buffers) == 2
    assert len(data) < 1000  # the 8 KB of data are not in the stream
    assert np.shares_memory(np.frombuffer(buffers[0], dtype=np.uint8), array)
    loaded: Any = loads(data, buffers)
    assert np.shares_memory(loaded["a"], array)  # in-process: zero copy both ways
    assert loaded["f"].flags.f_contiguous


def test_array_metadata_describes_each_buffer() -> None:
    parts = dump_parts([np.zeros((2, 3), dtype=">i2"), np.arange(4.0)[::2]])
    assert [(info.dtype.str, info.shape, info.order) for info in parts.arrays] == [
        (">i2", (2, 3), "C"),
        ("<f8", (2,), "C"),
    ]
    assert [info.nbytes for info in parts.arrays] == [12, 16]


def test_object_arrays_and_foreign_buffers_stay_in_band() -> None:
    foreign = pickle.PickleBuffer(bytearray(b"abc"))
    data, buffers = dumps({"o": np.array([1, "x"], dtype=object), "pb": foreign})
    assert buffers == []
    loaded: Any = loads(data, buffers)
    assert bytes(loaded["pb"]) == b"abc"


def test_protocol_below_5_pickles_arrays_in_band() -> None:
    data, buffers = dumps(np.arange(5), protocol=4)
    assert buffers == []
    assert_same(loads(data), np.arange(5))


def test_importable_functions_are_pickled_by_reference() -> None:
    data, _ = dumps([module_level_function, np.add, len])
    assert f"{__name__}.module_level_function" in _globals_in(data)
    assert "cloudpickle" not in " ".join(_globals_in(data))
    assert loads(data)[0] is module_level_function  # type: ignore[index]


def test_lambdas_closures_and_local_classes_go_by_value() -> None:
    factor = 3

    class Local:
        value = 5

    data, buffers = dumps([lambda x: x * factor, Local])
    assert _globals_in(data)[0] == "joblite._core.pickling._load_by_value"
    function, cls = loads(data, buffers)  # type: ignore[misc]
    assert function(2) == 6
    assert cls.value == 5


def test_bad_protocol_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="protocol"):
        dumps(1, protocol=6)
    with pytest.raises(ValueError, match="protocol"):
        dumps(1, protocol="5")  # type: ignore[arg-type]


class _FailsHalfway:
    def __reduce__(self) -> Any:
        raise RuntimeError("cannot pickle this")


def test_reused_picklers_start_each_dump_afresh() -> None:
    # Picklers are reused between calls: neither the memo of a previous dump
    # nor the partial stream and buffers of a failed one may leak into the next.
    shared = [1, 2, 3]
    for fail in (False, False, True, False, False):
        if fail:
            with pytest.raises(RuntimeError):
                dump_parts([shared, np.arange(4), _FailsHalfway()])
        pickled = dump_parts({"a": shared, "b": shared})
        assert pickled.buffers == []
        assert loads(pickled.data, pickled.buffers) == {"a": [1, 2, 3], "b": [1, 2, 3]}


@pytest.mark.parametrize(
    "value", [0, -7, 2**70, 1.5, float("nan"), "", "é" * 300, b"\x00" * 70000, True, None]
)
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_scalars_pickle_as_the_full_pickler_writes_them(value: object, protocol: int) -> None:
    # dump_parts hands scalars to plain pickle.dumps: the stream must not change.
    from joblite._core.pickling import _Pickler

    stream = io.BytesIO()
    _Pickler(stream, protocol).dump(value)
    pickled = dump_parts(value, protocol=protocol)
    assert pickled.data == stream.getvalue()
    assert (pickled.buffers, pickled.arrays) == ([], [])


def test_concurrent_dumps_from_threads_do_not_mix() -> None:
    values = [{"i": i, "a": np.full(3, i)} for i in range(200)]
    with ThreadPoolExecutor(4) as pool:
        dumped = list(pool.map(dumps, values))
    for value, (data, buffers) in zip(values, dumped, strict=True):
        assert_same(loads(data, buffers), value)


def test_arrays_go_out_of_band_when_numpy_is_imported_after_a_first_dump() -> None:
    code = (
        "import sys\n"
        "from joblite._core.pickling import dump_parts\n"
        "dump_parts([1])\n"  # a list, not a scalar: it goes through a pooled pickler
        "assert 'numpy' not in sys.modules\n"
        "import numpy\n"
        "assert len(dump_parts(numpy.arange(3)).buffers) == 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_failed_dump_frees_the_values_arrays_on_return() -> None:
    # The pickler of a failed dump is discarded: it must hold no reference cycle
    # (through its buffer callback) keeping what it had pickled, the user's big
    # arrays included, alive until the next garbage collection.
    import gc
    import weakref

    array = np.arange(1000.0)
    alive = weakref.ref(array)
    gc.disable()
    try:
        with pytest.raises(RuntimeError):
            dump_parts({"a": array, "bad": _FailsHalfway()})
        del array
        assert alive() is None
    finally:
        gc.enable()


def test_picklers_are_freed_without_the_garbage_collector() -> None:
    # The same for a pickler dropped after a successful dump (a full pool, a thread).
    import gc
    import weakref

    from joblite._core.pickling import _Pickler

    gc.disable()
    try:
        pickler = _Pickler(io.BytesIO(), 5)
        pickler.dump({"a": np.arange(3.0)})
        alive = weakref.ref(pickler)
        del pickler
        assert alive() is None
    finally:
        gc.enable()
