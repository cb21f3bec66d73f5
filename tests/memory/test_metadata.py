"""The argument reprs a miss records: exact for small plain values, bounded otherwise."""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

import pytest

from joblite.memory import Memory

LONG = "x" * 201


def record(a: Any) -> Any:
    return None


@pytest.mark.parametrize(
    "value",
    [
        1,
        2.5,
        None,
        True,
        1j,
        "a" * 200,
        [1, 2.0, None, "s", True],
        (1, "b" * 200),
        {"a": 1, "b": "c", 3: None},
        {1.5: 2, None: "z"},
        [],
        {},
        list(range(32)),
    ],
)
def test_small_plain_arguments_are_recorded_exactly(tmp_path: Path, value: Any) -> None:
    f = Memory(tmp_path, verbose=0).cache(record)
    _, metadata = f.call(value)
    assert metadata["input_args"] == {"a": repr(value)}


@pytest.mark.parametrize(
    "value",
    [
        LONG,
        [1, LONG],
        (LONG,),
        {"a": LONG},
        {LONG: 1},
        list(range(33)),
        [[1, 2]],
        {"a": [1]},
        [1, b"bytes"],
        {1, 2},
    ],
)
def test_other_arguments_are_recorded_abridged(tmp_path: Path, value: Any) -> None:
    abridged = reprlib.Repr()
    abridged.maxstring = abridged.maxother = 200
    f = Memory(tmp_path, verbose=0).cache(record)
    _, metadata = f.call(value)
    assert metadata["input_args"] == {"a": abridged.repr(value)}
