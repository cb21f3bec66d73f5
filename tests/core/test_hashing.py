"""Properties of joblite.hash that caching and users rely on."""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from joblite import hash as jhash
from joblite._core.hashing import HASH_NAMES


@dataclasses.dataclass
class Point:
    x: int
    y: list[int]


class Reducing:
    def __init__(self, value: int) -> None:
        self.value = value

    def __reduce__(self) -> tuple[type, tuple[int]]:
        return (Reducing, (self.value,))


def module_function(x: int) -> int:
    return x + 1


# Objects whose digests must not change between processes or hash seeds.
STABLE_OBJECTS_SOURCE = textwrap.dedent(
    """
    import collections, numpy as np
    from tests.core.test_hashing import Point, Reducing, module_function
    objects = {
        "set_of_str": {"alpha", "beta", "gamma", "delta"},
        "frozenset_mixed": frozenset([1, "a", b"b", (2, 3)]),
        "dict_mixed_keys": {1: "a", "b": 2, (3,): None, frozenset([4]): 5.0},
        "nested": [{"k": {"x", "y"}}, ({"z": [1, 2.5]},)],
        "dataclass": Point(1, [2, 3]),
        "reducing": Reducing(7),
        "function": module_function,
        "lambda": lambda x, y=2: x * y,
        "class": Point,
        "defaultdict": collections.defaultdict(list, {"b": [1], "a": [2]}),
        "array": np.arange(12, dtype=np.float32).reshape(3, 4),
        "object_array": np.array([{"a", "b"}, "s", 3], dtype=object),
        "structured": np.zeros(3, dtype=[("a", "<i4"), ("b", ">f8")]),
        "datetime": np.array(["2024-01-01", "2025-06-30"], dtype="datetime64[D]"),
        "scalar": np.float32(1.5),
        "dtype": np.dtype(">i2"),
    }
    """
)


def _digests_in_subprocess(seed: str) -> dict[str, str]:
    script = STABLE_OBJECTS_SOURCE + textwrap.dedent(
        """
        import json, joblite
        print(json.dumps({k: joblite.hash(v) for k, v in objects.items()}))
        """
    )
    env = {**os.environ, "PYTHONHASHSEED": seed}
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_digests_are_identical_across_processes_and_hash_seeds() -> None:
    first = _digests_in_subprocess("0")
    second = _digests_in_subprocess("12345")
    assert first == second
    assert len(set(first.values())) == len(first), "distinct objects must hash differently"


def test_dict_and_set_order_does_not_matter() -> None:
    assert jhash({"b": 2, "a": 1}) == jhash({"a": 1, "b": 2})
    assert jhash({1: "x", "y": 2, 3.5: None}) == jhash({3.5: None, "y": 2, 1: "x"})
    assert jhash({3, 1, 2}) == jhash({2, 3, 1})
    assert jhash(frozenset(["a", 1, (2,)])) == jhash(frozenset([(2,), 1, "a"]))
    assert jhash({frozenset([1, 2]): 1, frozenset([3]): 2}) == jhash(
        {frozenset([3]): 2, frozenset([2, 1]): 1}
    )
    assert jhash([{"b": {"d", "c"}, "a": 1}]) == jhash([{"a": 1, "b": {"c", "d"}}])


def test_ordered_dict_order_is_part_of_its_value() -> None:
    forward = collections.OrderedDict([("a", 1), ("b", 2)])
    backward = collections.OrderedDict([("b", 2), ("a", 1)])
    assert forward != backward  # OrderedDict equality is order-sensitive
    assert jhash(forward) != jhash(backward)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (1, 1.0),
        (1, True),
        (1.0, True),
        (0, False),
        ([1, 2], (1, 2)),
        ({1, 2}, frozenset([1, 2])),
        ({"a": 1}, [("a", 1)]),
        ("1", 1),
        (b"a", "a"),
        (None, 0),
        ([], ()),
        ({}, set()),
        ([1, [2]], [[1], 2]),
    ],
)
def test_different_types_and_shapes_hash_differently(left: object, right: object) -> None:
    assert jhash(left) != jhash(right)


def test_equal_values_hash_equal_whatever_their_identity() -> None:
    a = "x" * 40
    b = "".join(["x"] * 40)
    assert a is not b
    assert jhash((a, a)) == jhash((a, b))
    shared = [1, 2]
    assert jhash([shared, shared]) == jhash([[1, 2], [1, 2]])


def test_values_that_differ_hash_differently() -> None:
    digests = {jhash([i, str(i)]) for i in range(2000)}
    assert len(digests) == 2000


def test_containers_with_cycles_hash_deterministically() -> None:
    first: list[object] = [1]
    first.append(first)
    second: list[object] = [1]
    second.append(second)
    assert jhash(first) == jhash(second)

    class Node:
        pass

    a, b = Node(), Node()
    a.self, a.data = a, {"z": 1, "a": 2}  # type: ignore[attr-defined]
    b.self, b.data = b, {"a": 2, "z": 1}  # type: ignore[attr-defined]
    assert jhash(a) == jhash(b)


def test_recursive_local_functions_hash_by_content() -> None:
    # A nested helper that calls itself holds itself in its closure.
    def make(step: int):  # type: ignore[no-untyped-def]
        def even(n: int) -> bool:
            return n == 0 or odd(n - 1)

        def odd(n: int) -> bool:
            return n != 0 and even(n - step)

        def fact(n: int) -> int:
            return 1 if n <= 1 else n * fact(n - step)

        return even, fact

    assert jhash(make(1)) == jhash(make(1))
    assert jhash(make(1)[0]) != jhash(make(2)[0]), "mutual recursion keeps closure values"
    assert jhash(make(1)[1]) != jhash(make(2)[1])


def test_an_object_whose_reduction_contains_itself_is_a_type_error() -> None:
    class Loop:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (Loop, (self,))

    with pytest.raises(TypeError, match="cannot hash Loop object"):
        jhash(Loop())


def test_functions_lambdas_and_classes_hash_by_content() -> None:
    assert jhash(module_function) == jhash(module_function)
    assert jhash(lambda x: x + 1) == jhash(lambda x: x + 1)
    assert jhash(lambda x: x + 1) != jhash(lambda x: x + 2)

    def make(offset: int):  # type: ignore[no-untyped-def]
        return lambda x: x + offset

    assert jhash(make(1)) == jhash(make(1))
    assert jhash(make(1)) != jhash(make(2)), "closure values are part of the hash"
    assert jhash(functools.partial(module_function, 3)) == jhash(
        functools.partial(module_function, 3)
    )
    assert jhash(Point(1, [2])) == jhash(Point(1, [2]))
    assert jhash(Point(1, [2])) != jhash(Point(1, [3]))
    assert jhash(Reducing(3)) != jhash(Reducing(4))


def test_hash_name_choices_and_errors() -> None:
    assert set(HASH_NAMES) == {"xxh3_128", "md5", "sha1", "sha256", "blake2b"}
    lengths = {name: len(jhash({"a": [1]}, hash_name=name)) for name in HASH_NAMES}
    assert lengths == {"xxh3_128": 32, "md5": 32, "sha1": 40, "sha256": 64, "blake2b": 128}
    assert jhash([1], hash_name="md5") != jhash([1], hash_name="xxh3_128")
    with pytest.raises(ValueError, match=r"hash_name must be one of 'xxh3_128'.*'md5'.*got 'crc'"):
        jhash([1], hash_name="crc")


def test_unpicklable_objects_raise_type_error() -> None:
    with pytest.raises(TypeError, match="lock"):
        jhash([threading.Lock()])
    with pytest.raises(TypeError):
        jhash({"gen": (i for i in range(3))})


def test_hashing_is_thread_safe() -> None:
    values = [{"k": i, "v": list(range(i % 7))} for i in range(200)]
    expected = [jhash(v) for v in values]
    results: list[list[str]] = []

    def work() -> None:
        results.append([jhash(v) for v in values])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 4


# --- numpy ---------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype", ["f8", ">f8", "i1", "u8", "c16", "bool", "M8[ns]", "m8[s]", "U5", "S3", "f2"]
)
def test_arrays_hash_by_dtype_shape_and_content(dtype: str) -> None:
    base = np.zeros(6, dtype=dtype)
    assert jhash(base) == jhash(base.copy())
    assert jhash(base) != jhash(base.reshape(2, 3)), "shape is part of the hash"
    other = np.ones(6, dtype=dtype) if dtype not in ("U5", "S3") else np.array(["a"] * 6, dtype)
    assert jhash(base) != jhash(other)


def test_dtype_and_byte_order_are_part_of_the_hash() -> None:
    assert jhash(np.zeros(4, "<i4")) != jhash(np.zeros(4, "<u4"))
    assert jhash(np.arange(4, dtype="<i4")) != jhash(np.arange(4, dtype=">i4"))
    assert jhash(np.dtype("f8")) != jhash(np.dtype("f4"))
    assert jhash(np.float64(1.0)) != jhash(1.0)
    assert jhash(np.float64(1.0)) != jhash(np.float32(1.0))
    assert jhash(np.int64(3)) == jhash(np.int64(3))


def test_non_contiguous_views_hash_like_their_contiguous_copy() -> None:
    a = np.arange(60, dtype=np.int16).reshape(6, 10)
    view = a[::2, 1::3]
    assert not view.flags.c_contiguous
    assert jhash(view) == jhash(np.ascontiguousarray(view))
    assert jhash(view) != jhash(a)


def test_memory_order_is_part_of_the_hash() -> None:
    c = np.arange(12.0).reshape(3, 4)
    f = np.asfortranarray(c)
    assert jhash(f) == jhash(np.asfortranarray(c.copy()))
    assert jhash(c) != jhash(f)


def test_ufuncs_and_copyreg_registered_types_hash_like_pickle_sees_them() -> None:
    assert jhash(np.square) == jhash(np.square)
    assert jhash(np.square) != jhash(np.sqrt)
    assert jhash([np.add, {"f": np.multiply}]) == jhash([np.add, {"f": np.multiply}])


def test_structured_object_and_empty_arrays() -> None:
    rec = np.array([(1, 2.0), (3, 4.0)], dtype=[("a", "i4"), ("b", "f8")])
    assert jhash(rec) == jhash(rec.copy())
    renamed = rec.copy().view([("c", "i4"), ("b", "f8")])
    assert jhash(rec) != jhash(renamed), "field names are part of the dtype"
    objects = np.array([{"b": 1, "a": 2}, [1, 2], None], dtype=object)
    same = np.array([{"a": 2, "b": 1}, [1, 2], None], dtype=object)
    assert jhash(objects) == jhash(same)
    assert jhash(np.empty((0, 3))) != jhash(np.empty((3, 0)))
    assert jhash(np.array(5.0)) != jhash(np.array([5.0]))


def test_memmap_hashes_like_array_only_with_coerce_mmap(tmp_path: Path) -> None:
    data = np.arange(100, dtype=np.float64)
    mm = np.memmap(tmp_path / "a.dat", dtype=np.float64, mode="w+", shape=(100,))
    mm[:] = data
    assert jhash(mm, coerce_mmap=True) == jhash(data, coerce_mmap=True)
    assert jhash(mm) != jhash(data)
    del mm


def test_contiguous_arrays_are_hashed_without_a_copy() -> None:
    big = np.ones(20_000_000, dtype=np.uint8)  # 20 MB
    jhash(big)  # warm up the pickler pool
    tracemalloc.start()
    try:
        jhash({"features": big, "labels": [1, 2, 3]})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"hashing allocated {peak} bytes for a 20 MB array"


def test_numpy_is_not_imported_by_hashing() -> None:
    script = (
        "import sys, joblite\n"
        "joblite.hash({'a': [1, 2.0, 'x'], 'b': {1, 2}})\n"
        "print('numpy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


DEEP_VALUES_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import joblite
    from joblite.exceptions import NestingTooDeepError

    wrap = {"tuple": lambda v: (v,), "list": lambda v: [v], "dict": lambda v: {"k": v},
            "frozenset": lambda v: frozenset([v])}

    def nest(kind, depth):
        value = ()
        for _ in range(depth):
            value = wrap[kind](value)
        return value

    outcome = {}
    for limit in (1000, 10**7):  # the default, and one raised far above the C stack
        sys.setrecursionlimit(limit)
        for kind in ("tuple", "list", "dict", "frozenset"):
            try:
                joblite.hash(nest(kind, 3 * 10**5))
                outcome[f"{kind}@{limit}"] = "hashed"
            except NestingTooDeepError as error:
                assert isinstance(error, RecursionError)
                outcome[f"{kind}@{limit}"] = str(error)
    outcome["shallow"] = joblite.hash(nest("tuple", 3000)) == joblite.hash(nest("tuple", 3000))
    print(json.dumps(outcome))
    """
)


@pytest.mark.slow
def test_values_nested_too_deep_raise_a_clear_error_instead_of_crashing() -> None:
    # 10^5 nested tuples already overflowed the C stack inside the pickler
    # (SIGSEGV) once the recursion limit was raised: run it in a subprocess.
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", DEEP_VALUES_SCRIPT],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    outcome = json.loads(run.stdout)
    assert outcome.pop("shallow") is True, "3,000 levels hash under a raised limit"
    for case, message in outcome.items():
        if case.endswith("@1000"):
            assert "recursion limit (1000)" in message, case
        else:
            assert "follows at most 5000 levels" in message, case
        assert message.startswith("cannot hash a value nested more than"), case
