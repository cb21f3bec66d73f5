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
    assert depths[id(leaf)] == 6
    assert depths[id(other)] == 7
    with pytest.raises(RecursionError, match="follows at most 5000 levels"):
        _hash_depth.note_children({}, (Link, (leaf,)), _hash_depth.MAX_DEPTH)
