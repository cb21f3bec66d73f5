"""Golden digests: Memory keys are these digests, so none may ever change.

``tests/data/hash_digests.json`` was computed before the change that added
it, from the values in ``hash_values.py``; a change to the hasher that moves
any digest fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from joblite import hash as jhash

from .hash_values import EDGE_VALUES, cyclic_values, random_values

GOLDEN = json.loads((Path(__file__).parents[1] / "data" / "hash_digests.json").read_text())


@pytest.mark.parametrize("name", sorted(EDGE_VALUES))
def test_edge_values_keep_their_digests(name: str) -> None:
    assert jhash(EDGE_VALUES[name]) == GOLDEN["edge"][name]


def test_the_distinctions_the_docs_promise_are_kept() -> None:
    edge = GOLDEN["edge"]
    assert len(set(edge.values())) == len(edge)
    for left, right in [
        ("int 1", "float 1.0"),
        ("int 1", "bool True"),
        ("zero", "negative zero"),
        ("list [1, 2]", "tuple (1, 2)"),
        ("set empty", "frozenset empty"),
        ("str 20", "subclass str"),
    ]:
        assert edge[left] != edge[right], (left, right)


def test_seeded_random_nested_values_keep_their_digests() -> None:
    digests = [jhash(value) for value in random_values(12, 300)]
    changed = [
        i
        for i, (new, old) in enumerate(zip(digests, GOLDEN["random_seed_12"], strict=True))
        if new != old
    ]
    assert not changed, f"digests changed for values {changed[:10]}"


@pytest.mark.parametrize("hash_name", ["md5", "sha256"])
def test_other_hash_names_keep_their_digests(hash_name: str) -> None:
    for name, digest in GOLDEN[hash_name].items():
        assert jhash(EDGE_VALUES[name], hash_name=hash_name) == digest, name


def test_containers_that_contain_themselves_keep_their_digests() -> None:
    for name, value in cyclic_values().items():
        assert jhash(value) == GOLDEN["cycles"][name], name
