from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from . import _tasks

BACKENDS = ["sequential", "threading", "loky", "multiprocessing", "custom", "dask", "ray"]
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


@pytest.fixture(scope="session")
def ray_runtime() -> Iterator[Any]:
    """A local 2-CPU Ray runtime, started once for the whole run, offline and left clean.

    Ray's sockets live in its temp folder, and Unix socket paths are limited
    to 107 bytes: pytest's own temp paths can be longer, so a short /tmp one.
    """
    try:
        import ray
    except ImportError:
        pytest.skip('the ray extra is not installed: pip install "joblite[ray]"')
    import psutil

    folder = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    before = {process.pid for process in psutil.Process().children(recursive=True)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")  # no report to outside hosts
        ray.init(
            address="local",  # a runtime of our own, never a cluster found on the machine
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=100 * 1024**2,
            _temp_dir=folder,
            log_to_driver=False,
            configure_logging=False,
        )
    # Ray's own processes (GCS server, raylet, ...), not loky's workers of earlier tests.
    started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    _tasks.RAY_PROCESSES[:] = started
    try:
        yield ray
    finally:
        _tasks.RAY_PROCESSES.clear()
        ray_processes = list(started)
        for process in started:  # the workers Ray started since, too
            with contextlib.suppress(psutil.NoSuchProcess):
                ray_processes += process.children(recursive=True)
        ray.shutdown()
        _, alive = psutil.wait_procs(ray_processes, timeout=30)
        for process in alive:
            process.kill()
        shutil.rmtree(folder, ignore_errors=True)
    assert not alive, f"Ray left processes behind: {alive}"
    assert not os.path.exists(folder)


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
    elif backend_name == "ray":
        request.getfixturevalue("ray_runtime")
        yield "ray"
    else:
        yield backend_name
