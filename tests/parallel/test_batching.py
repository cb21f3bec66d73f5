"""Packed batches: the compact form shipped to process workers and its C-level run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import pytest

from joblite.parallel import Parallel, delayed
from joblite.parallel._batching import (
    TAKE_CHUNK,
    PackedTasks,
    pack_tasks,
    run_packed,
    run_tasks,
    take_tasks,
)

from ._tasks import add, fail_on, square


def _raises_stop_iteration(x: int) -> int:
    if x == 2:
        raise StopIteration("no more")
    return x


def test_one_function_without_kwargs_is_packed() -> None:
    single = [delayed(square)(i) for i in range(4)]
    assert pack_tasks(single) == (square, [0, 1, 2, 3], False)
    pairs = [delayed(pow)(i, 2) for i in range(3)]
    assert pack_tasks(pairs) == (pow, [(0, 2), (1, 2), (2, 2)], True)


@pytest.mark.parametrize(
    "tasks",
    [
        [],
        [delayed(add)(1, y=2), delayed(add)(2)],  # keywords
        [delayed(square)(1), delayed(add)(2)],  # two functions
        [delayed(square)(1), (square, (2,))],  # not a triple
        [delayed(square)(1), 3],  # no len()
        [(square, (1,), MappingProxyType({}))],  # keywords not in a dict: left to the call
        [(square, [1], {}), (square, [2], {})],  # args not a tuple: f(*args) iterates them
        [(pow, iter((2, 3)), {})],  # args without len()
        [[square, (1,), {}]],  # a triple that is not a tuple
    ],
)
def test_anything_else_is_left_as_triples(tasks: list[Any]) -> None:
    assert pack_tasks(tasks) is tasks


class _NoLen:
    """A task item that unpacks like a triple but whose ``__len__`` raises."""

    def __init__(self, x: int) -> None:
        self.x = x

    def __len__(self) -> int:
        raise RuntimeError("no len() for this item")

    def __iter__(self) -> Any:
        return iter((square, (self.x,), {}))


def test_items_with_a_failing_len_are_not_packed() -> None:
    tasks = [_NoLen(1), _NoLen(2)]
    assert pack_tasks(tasks) is tasks


@pytest.mark.parametrize("backend", ["loky", "multiprocessing", "threading"])
def test_a_call_on_items_with_a_failing_len_runs_like_joblib(backend: str) -> None:
    # Items past the first chunk go through the per-task path: cover both.
    n = TAKE_CHUNK + 44
    results = Parallel(n_jobs=2, backend=backend)(_NoLen(i) for i in range(n))
    assert results == [i * i for i in range(n)]


def test_args_of_other_types_run_as_the_call_would() -> None:
    tasks = [(square, [3], {}), (pow, iter((2, 5)), {}), (square, {4: "a"}, {})]
    assert Parallel(n_jobs=2, backend="loky")(iter(tasks)) == [9, 32, 16]


def test_the_same_function_under_another_object_is_not_merged() -> None:
    class Twin:
        def __init__(self, label: str) -> None:
            self.label = label

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Twin)

        __hash__ = object.__hash__

        def __call__(self, x: int) -> str:
            return f"{self.label}{x}"

    tasks = [(Twin("a"), (1,), {}), (Twin("b"), (2,), {})]
    assert pack_tasks(tasks) is tasks


@pytest.mark.parametrize("stop_on_error", [True, False])
@pytest.mark.parametrize("retries", [0, 2])
def test_packed_run_matches_the_plain_run(stop_on_error: bool, retries: int) -> None:
    tasks = [delayed(fail_on)(i, 3) for i in range(6)]
    function, values, star = pack_tasks([delayed(fail_on)(i, 3) for i in range(6)])
    plain = run_tasks(tasks, retries, stop_on_error, remote=False)
    packed = run_packed(function, values, star, retries, stop_on_error, remote=False)
    assert packed[0] == plain[0]
    assert packed[1] is not None
    assert plain[1] is not None
    assert [f.position for f in packed[1]] == [f.position for f in plain[1]] == [3]
    assert str(packed[1][0].exception) == str(plain[1][0].exception) == "task 3 is bad"


def test_packed_run_keeps_going_after_several_failures() -> None:
    values = [(i, i if i in (0, 3, 5) else -1) for i in range(6)]
    results, failures, _ = run_packed(fail_on, values, True, 0, False, remote=False)
    assert results == [None, 1, 2, None, 4, None]
    assert failures is not None
    assert [f.position for f in failures] == [0, 3, 5]


def test_a_task_raising_stop_iteration_fails_its_own_slot() -> None:
    # `map` would take the StopIteration for its own end and drop the rest.
    results, failures, _ = run_packed(
        _raises_stop_iteration, [0, 1, 2, 3], False, 0, False, remote=False
    )
    assert results == [0, 1, None, 3]
    assert failures is not None
    assert failures[0].position == 2
    assert isinstance(failures[0].exception, StopIteration)


@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_failures_in_packed_batches_land_in_their_slots(backend: str) -> None:
    out = Parallel(n_jobs=2, backend=backend, on_error="collect", batch_size=5)(
        delayed(fail_on)(i, 7) for i in range(10)
    )
    assert out[:7] == list(range(7))
    assert out[8:] == [8, 9]
    assert isinstance(out[7], ValueError)


@pytest.mark.parametrize(
    "n_items", [TAKE_CHUNK - 1, TAKE_CHUNK, 2 * TAKE_CHUNK, 2 * TAKE_CHUNK + 3]
)
def test_taking_a_uniform_batch_packs_it_and_leaves_the_rest(n_items: int) -> None:
    size = 2 * TAKE_CHUNK
    source = (delayed(square)(i) for i in range(n_items))
    taken = take_tasks(source, size, pack=True)
    assert isinstance(taken, PackedTasks)
    assert taken.packed() == (square, list(range(min(n_items, size))), False)
    assert next(source, None) == (delayed(square)(size) if n_items > size else None)


@pytest.mark.parametrize("switch_at", [1, TAKE_CHUNK, TAKE_CHUNK + 5])
def test_taking_a_mixed_batch_gives_its_triples_in_order(switch_at: int) -> None:
    size = 2 * TAKE_CHUNK
    items = [delayed(square)(i) for i in range(switch_at)]
    items += [delayed(pow)(i, 2) for i in range(switch_at, size + 1)]
    source = iter(items)
    taken = take_tasks(source, size, pack=True)
    assert isinstance(taken, list)
    assert [(f, tuple(args), kwargs) for f, args, kwargs in taken] == items[:size]
    assert next(source) is items[size]


# Each builds a fresh task (an iterator can be read once).
_MISFITS: dict[str, Callable[[], Any]] = {
    "keywords": lambda: (add, (5,), {"y": 1}),
    "another function": lambda: (add, (5,), {}),
    "two arguments": lambda: (pow, (5, 2), {}),
    "a list of arguments": lambda: (square, [5], {}),
    "an iterator": lambda: iter((add, (5,), {"y": 1})),
    "a pair": lambda: (square, (5,)),
    "not a sequence": lambda: 5,
}


def _as_call(task: Any) -> Any:
    try:
        function, args, kwargs = task
    except (TypeError, ValueError):
        return task
    return (function, tuple(args), dict(kwargs))


@pytest.mark.parametrize("misfit", list(_MISFITS), ids=list(_MISFITS))
def test_a_task_past_the_first_chunk_that_does_not_fit_keeps_its_call(misfit: str) -> None:
    # Past the first chunk the batch is packed task by task: the first task
    # that does not fit, and all after it, must still read as their calls.
    size = TAKE_CHUNK + 10
    items: list[Any] = [delayed(square)(i) for i in range(size + 1)]
    items[TAKE_CHUNK + 3] = _MISFITS[misfit]()
    expected = [_as_call(item) for item in items[:size]]
    items[TAKE_CHUNK + 3] = _MISFITS[misfit]()
    source = iter(items)
    taken = take_tasks(source, size, pack=True)
    assert [_as_call(task) for task in taken] == expected
    assert next(source) is items[size]


def test_processes_run_every_kind_of_task_after_a_packed_start() -> None:
    def kinds() -> list[Any]:
        items: list[Any] = [delayed(square)(i) for i in range(2 * TAKE_CHUNK)]
        # Two that fit a packed batch, then each misfit, past the first chunk.
        fitting = [iter((square, (7,), {})), [square, (8,), {}]]
        items[TAKE_CHUNK + 1 : TAKE_CHUNK + 1] = fitting
        for offset, misfit in enumerate(_MISFITS.values()):
            items.insert(TAKE_CHUNK + 50 * (offset + 1), misfit())
        return items

    expected = [_as_call(item) for item in kinds()]
    out = Parallel(n_jobs=2, batch_size=len(expected), on_error="collect")(kinds())
    for position, (call, result) in enumerate(zip(expected, out, strict=True)):
        if call in (5, (square, (5,))):
            assert isinstance(result, TypeError), position
            assert "(callable, args, kwargs)" in str(result)
        else:
            function, args, kwargs = call
            assert result == function(*args, **kwargs), position
    assert out[TAKE_CHUNK + 1 : TAKE_CHUNK + 3] == [49, 64]


class NotAMapping:
    """Passed as a task's keywords: comparing it fails the comparison's caller."""

    def __eq__(self, other: object) -> bool:
        raise AssertionError("compared")

    __ne__ = __eq__
    __hash__ = None  # type: ignore[assignment]


def test_packing_runs_no_code_of_the_tasks_objects() -> None:
    # Keywords that are not a mapping fail their own task, as in a plain loop,
    # however far into the batch they come.
    for position in (3, TAKE_CHUNK + 3):
        items: list[Any] = [delayed(square)(i) for i in range(TAKE_CHUNK + 10)]
        items[position] = (square, (5,), NotAMapping())
        out = Parallel(n_jobs=2, batch_size=len(items), on_error="collect")(items)
        assert isinstance(out[position], TypeError)
        assert "must be a mapping" in str(out[position])
        del out[position]
        assert out == [i * i for i in range(TAKE_CHUNK + 10) if i != position]


def test_packed_tasks_read_back_as_the_calls_they_stand_for() -> None:
    assert list(PackedTasks(square, [1, 2], False)) == [(square, (1,), {}), (square, (2,), {})]
    assert PackedTasks(pow, [(2, 3)], True)[0] == (pow, (2, 3), {})
    assert len(PackedTasks(pow, [(2, 3)], True)) == 1


def test_processes_run_batches_that_switch_function_mid_chunk() -> None:
    tasks = [delayed(square)(i) if i % 700 < 600 else delayed(add)(i, y=1) for i in range(3000)]
    out = Parallel(n_jobs=2, batch_size=1000)(tasks)
    assert out == [function(*args, **kwargs) for function, args, kwargs in tasks]


def test_delayed_caches_per_function_without_mixing_them_up() -> None:
    calls = [delayed(square)(1), delayed(add)(1), delayed(square)(2), delayed(add)(2, y=1)]
    assert [task[0] for task in calls] == [square, add, square, add]
    assert delayed(square).__wrapped__ is square  # type: ignore[attr-defined]


def test_worker_start_up_imports_only_what_runs_a_batch() -> None:
    code = (
        "import sys, joblite.parallel._batching\n"
        "caller_side = ['joblite.parallel._parallel', 'joblite.parallel._dispatch',"
        " 'joblite.parallel._memmap', 'joblite.parallel._adapter',"
        " 'joblite.parallel.backends.base', 'traceback']\n"
        "print([name for name in caller_side if name in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
