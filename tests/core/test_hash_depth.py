"""hash() bounds how deep it follows instances, whatever the recursion limit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from joblite import hash as jhash
from joblite._core import _hash_depth
from joblite.exceptions import NestingTooDeepError

from .hash_values import Mapping, Node, Sequence, instance_cycles

ROOT = Path(__file__).resolve().parents[2]
# Digests of instance_cycles() computed before the depth count changed.
INSTANCE_CYCLE_DIGESTS = {
    "attribute is itself": "2f99951d2053d4a373abc34f8eacf49a",
    "holds a list in itself": "1eb63786800507d4927bd2b0a388a1e8",
    "two instances": "fd96da8c140fd987bff914d598e86263",
    "list subclass in itself": "89c7a7595e5843d9980b47cbd3c578d1",
    "dict subclass in itself": "2e45a0b4197125b32ba57784d9e48cc9",
    "through a list subclass": "2265c966862284710393c204f45b676d",
}

DEEP_INSTANCES_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import joblite
    from joblite.exceptions import NestingTooDeepError

    class Node:
        def __init__(self, child):
            self.child = child

    sys.setrecursionlimit(10**6)
    chain = None
    for _ in range(10**5):
        chain = Node(chain)
    try:
        joblite.hash(chain)
        outcome = "hashed"
    except NestingTooDeepError as error:
        assert isinstance(error, RecursionError)
        outcome = str(error)
    print(json.dumps(outcome))
    """
)


@pytest.mark.slow
def test_a_deep_chain_of_instances_raises_instead_of_crashing() -> None:
    # The pickler reduces instances as it goes, one C stack level each: under
    # a raised recursion limit 10^5 of them overflowed the C stack (SIGSEGV).
    run = subprocess.run(
        [sys.executable, "-c", DEEP_INSTANCES_SCRIPT],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"exit status {run.returncode}: {run.stderr[-2000:]}"
    message = json.loads(run.stdout)
    assert message.startswith("cannot hash a value nested more than"), message
    assert "follows at most 5000 levels" in message


class Link:
    def __init__(self, child: object) -> None:
        self.child = child


def test_counting_the_nesting_does_not_change_digests() -> None:
    values = [
        Link(Link({"b": Link(None), "a": [Link(1), (Link(2.5),)]})),
        [Link(i) for i in range(50)],
    ]
    chain: object = None
    for _ in range(300):
        chain = Link(chain)
    values.append(chain)
    plain = [jhash(v) for v in values]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_hash_depth.SAFE_RECURSION_LIMIT + 1)
    try:
        counted = [jhash(v) for v in values]
    finally:
        sys.setrecursionlimit(limit)
    assert counted == plain


def test_note_children_records_depths_through_containers() -> None:
    leaf, other = Link(None), Link(None)
    depths: dict[int, int] = {}
    _hash_depth.note_children(depths, (Link, (leaf,), {"k": [other]}), 4)
    # One level per nesting: the reduction's parts are the object's own.
    assert depths[id(leaf)] == 5
    assert depths[id(other)] == 6
    with pytest.raises(RecursionError, match="follows at most 5000 levels"):
        _hash_depth.note_children({}, (Link, (leaf,)), _hash_depth.MAX_DEPTH)


def test_note_children_follows_the_items_of_list_and_dict_subclasses() -> None:
    # A reduction hands the items of a list or dict subclass over as iterators.
    leaf, other = Link(None), Link(None)
    items = iter([leaf])
    depths: dict[int, int] = {}
    _hash_depth.note_children(depths, (Link, (), None, items, iter([("k", other)])), 0)
    assert depths[id(leaf)] == 1
    assert depths[id(other)] == 2
    assert list(items) == [leaf], "the pickler still reads every item"


def _chain(wrap: object, length: int) -> object:
    value: object = None
    for _ in range(length):
        value = wrap(value)  # type: ignore[operator]
    return value


CHAINS = {
    "instances": lambda v: Node(v),
    "list subclasses": lambda v: Sequence([v]),
    "dict subclasses": lambda v: Mapping(k=v),
    "instances holding subclasses": lambda v: Node(Sequence([Mapping(k=v)])),
}


@pytest.mark.parametrize("kind", sorted(CHAINS))
def test_a_deep_chain_at_the_default_limit_is_nesting_too_deep(kind: str) -> None:
    # It was a TypeError saying the value refers back to itself: the retry
    # with a memo could not tell deep nesting from a reference cycle.
    limit = sys.getrecursionlimit()
    with pytest.raises(NestingTooDeepError) as caught:
        jhash(_chain(CHAINS[kind], 3000))
    message = str(caught.value)
    assert isinstance(caught.value, RecursionError)
    depth = int(message.split("nested more than ")[1].split()[0])
    assert depth > 100, message
    assert f"Python's recursion limit ({limit})" in message
    assert "sys.setrecursionlimit raises that" in message


def test_a_chain_of_instances_hashes_alike_on_both_sides_of_the_counted_limit() -> None:
    # Each instance counted for two levels: a 3,000-chain hashed under a limit
    # of 10,000 but raised NestingTooDeepError under 10,001.
    chain = _chain(CHAINS["instances"], 3000)
    limit = sys.getrecursionlimit()
    digests = []
    try:
        for raised in (_hash_depth.SAFE_RECURSION_LIMIT, _hash_depth.SAFE_RECURSION_LIMIT + 1):
            sys.setrecursionlimit(raised)
            digests.append(jhash(chain))
    finally:
        sys.setrecursionlimit(limit)
    assert digests[0] == digests[1]


def _hash_at_stack_depth(frames: int, value: object) -> str:
    if frames:
        return _hash_at_stack_depth(frames - 1, value)
    return jhash(value)


def test_hashing_near_the_recursion_limit_names_a_real_depth_or_the_limit() -> None:
    # Called with the stack already near the limit, hash() said "nested more
    # than 0 levels deep" of a value nested two levels.
    limit = sys.getrecursionlimit()
    messages = []
    for frames in range(limit - 80, limit):
        try:
            _hash_at_stack_depth(frames, [Node(Node(None))])
        except NestingTooDeepError as error:
            messages.append(str(error))
        except RecursionError:  # this test's own recursion reached the limit
            continue
    assert messages, "no call reached the limit inside hash()"
    for message in messages:
        assert "more than 0 levels" not in message, message
        assert f"recursion limit ({limit})" in message, message


def test_an_instance_holding_a_deep_list_is_nesting_too_deep() -> None:
    deep: list[object] = []
    for _ in range(3000):
        deep = [deep, 1]
    with pytest.raises(NestingTooDeepError, match="recursion limit"):
        jhash(Node(deep))


def test_values_that_lead_back_to_themselves_keep_their_digests() -> None:
    digests = {name: jhash(value) for name, value in instance_cycles().items()}
    assert digests == INSTANCE_CYCLE_DIGESTS


RAISED_LIMIT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import joblite
    from joblite.exceptions import NestingTooDeepError
    from tests.core.hash_values import instance_cycles
    from tests.core.test_hash_depth import CHAINS, _chain

    sys.setrecursionlimit(10**6)
    outcome = {}
    for kind, wrap in CHAINS.items():
        try:
            joblite.hash(_chain(wrap, 10**5))
            outcome[kind] = "hashed"
        except NestingTooDeepError as error:
            outcome[kind] = str(error)
    outcome["cycles"] = {name: joblite.hash(v) for name, v in instance_cycles().items()}
    print(json.dumps(outcome))
    """
)


@pytest.mark.slow
def test_under_a_raised_limit_chains_stop_and_cycles_hash_as_before() -> None:
    # Items of list and dict subclasses escaped the depth count (SIGSEGV), and
    # a value that leads back to itself counted as endless nesting.
    run = subprocess.run(
        [sys.executable, "-c", RAISED_LIMIT_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"exit status {run.returncode}: {run.stderr[-2000:]}"
    outcome = json.loads(run.stdout)
    assert outcome.pop("cycles") == INSTANCE_CYCLE_DIGESTS
    for kind, message in outcome.items():
        assert message.startswith("cannot hash a value nested more than"), (kind, message)
        assert "follows at most 5000 levels" in message, kind
