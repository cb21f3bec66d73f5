from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from . import _tasks

BACKENDS = ["sequential", "threading", "loky", "multiprocessing", "custom"]
PROCESS_BACKENDS = ["loky", "multiprocessing"]


@pytest.fixture(autouse=True)
def _release_blocked_threads() -> Iterator[None]:
    _tasks.RELEASE.clear()
    yield
    _tasks.RELEASE.set()


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(backend_name: str) -> Any:
    """What to pass as Parallel(backend=...): a name, or a third-party backend instance."""
    if backend_name == "custom":
        return _tasks.ThreadPoolBackend()
    return backend_name
