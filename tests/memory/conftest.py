from __future__ import annotations

from pathlib import Path

import pytest

from joblite.memory import FileStore, InMemoryStore, Memory, Store

STORE_KINDS = ["local", "memory"]


def make_store(kind: str, tmp_path: Path) -> Store:
    if kind == "local":
        return FileStore(tmp_path / "cache" / "joblib")
    return InMemoryStore()


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return make_store(request.param, tmp_path)


@pytest.fixture
def memory(store: Store) -> Memory:
    """A Memory over each store implementation."""
    return Memory(store, verbose=0)


@pytest.fixture
def local_memory(tmp_path: Path) -> Memory:
    return Memory(tmp_path / "cache", verbose=0)
