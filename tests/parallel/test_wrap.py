"""wrap_non_picklable_objects: lambdas, closures and local classes through plain pickle."""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from joblite.parallel import Parallel, delayed, wrap_non_picklable_objects


def _make_closure(offset: int) -> Any:
    def shift(x: int) -> int:
        return x + offset

    return shift


def test_a_wrapped_lambda_survives_the_standard_pickle() -> None:
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(lambda x: x)
    wrapped = wrap_non_picklable_objects(lambda x: x * 3)
    clone = pickle.loads(pickle.dumps(wrapped))
    assert clone(4) == 12
    assert type(clone) is type(wrapped)  # keep_wrapper=True: it pickles again


def test_keep_wrapper_false_unwraps_after_unpickling() -> None:
    wrapped = wrap_non_picklable_objects(_make_closure(10), keep_wrapper=False)
    clone = pickle.loads(pickle.dumps(wrapped))
    assert clone.__name__ == "shift"  # the function itself, not a wrapper
    assert clone(1) == 11


def test_wrapped_objects_read_attributes_through() -> None:
    wrapped = wrap_non_picklable_objects(_make_closure(1))
    assert wrapped.__name__ == "shift"
    data = wrap_non_picklable_objects({"a": 1})
    assert pickle.loads(pickle.dumps(data)).get("a") == 1


def test_a_wrapped_local_class_builds_picklable_instances() -> None:
    class Counter:
        def __init__(self, start: int) -> None:
            self.start = start

        def next(self) -> int:
            return self.start + 1

    Wrapped = wrap_non_picklable_objects(Counter)
    assert Wrapped.__name__ == "Counter"
    clone = pickle.loads(pickle.dumps(Wrapped(41)))
    assert clone.next() == 42
    assert not callable(clone)


def test_bad_keep_wrapper_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="keep_wrapper"):
        wrap_non_picklable_objects(abs, keep_wrapper="yes")


def test_wrapped_closure_runs_in_a_plain_pickle_process_pool() -> None:
    # The standard library's pool pickles with `pickle`: without the wrapper
    # this closure could not be sent at all.
    shift = wrap_non_picklable_objects(_make_closure(100))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        assert list(pool.map(shift, [1, 2])) == [101, 102]


@pytest.mark.parametrize("backend", ["multiprocessing", "loky"])
def test_wrapped_lambda_runs_on_process_backends(backend: str) -> None:
    triple = wrap_non_picklable_objects(lambda x: x * 3)
    assert Parallel(n_jobs=2, backend=backend)(delayed(triple)(i) for i in range(5)) == [
        0,
        3,
        6,
        9,
        12,
    ]
