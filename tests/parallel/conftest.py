from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from . import _tasks

BACKENDS = ["sequential", "threading", "loky", "multiprocessing", "custom", "dask"]
PROCESS_BACKENDS = ["loky", "multiprocessing"]


@pytest.fixture(autouse=True)
def _release_blocked_threads() -> Iterator[None]:
    _tasks.RELEASE.clear()
    yield
    _tasks.RELEASE.set()


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """A 2-worker, 1-thread-each in-process dask cluster, started once per module.

    Not the default client: a test makes it current with ``client.as_current()``,
    so tests without it see no client at all.
    """
    with _tasks.dask_test_client(processes=False) as client:
        yield client


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(backend_name: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """What to pass as Parallel(backend=...): a name, or a third-party backend instance."""
    if backend_name == "custom":
        yield _tasks.ThreadPoolBackend()
    elif backend_name == "dask":
        with request.getfixturevalue("dask_client").as_current():
            yield "dask"
    else:
        yield backend_name
