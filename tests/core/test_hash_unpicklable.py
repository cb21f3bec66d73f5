"""hash() of what pickle cannot save raises pickle.PicklingError, as joblib documents."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import pytest

from joblite import hash
from joblite.exceptions import JobliteError, UnpicklableObjectError


@pytest.mark.parametrize(
    "value",
    [threading.Lock(), (i for i in range(3)), {"nested": [memoryview(b"x")]}],
    ids=["lock", "generator", "nested-memoryview"],
)
def test_hash_of_an_unpicklable_object_is_a_pickling_error(value: Any) -> None:
    with pytest.raises(pickle.PicklingError, match="cannot hash") as raised:
        hash(value)
    # still the TypeError pickle itself raises for these, and one of joblite's errors
    assert isinstance(raised.value, TypeError)
    assert isinstance(raised.value, JobliteError)


class ByMissingName:
    def __reduce__(self) -> str:
        return "no_such_global"  # saved by a name its module does not have


class Holder:
    pass


def test_an_unpicklable_object_beside_a_cycle_is_a_pickling_error() -> None:
    # The cycle (attribute "a", pickled first) sends hash() to its second try,
    # with a memo, whose PicklingError came out raw.
    holder = Holder()
    holder.a = holder  # type: ignore[attr-defined]
    holder.b = ByMissingName()  # type: ignore[attr-defined]
    with pytest.raises(UnpicklableObjectError, match="cannot hash object: Can't pickle"):
        hash(holder)
