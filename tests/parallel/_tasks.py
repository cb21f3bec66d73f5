"""Module-level task functions, importable by worker processes."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from joblite.parallel import Parallel, ParallelBackendBase, delayed

# Set by the tests' teardown so threads blocked in `block` can finish.
RELEASE = threading.Event()
INIT_LOG: list[tuple[str, tuple[int, int]]] = []
# The session's Ray runtime processes (GCS server, raylet...), set by its fixture.
RAY_PROCESSES: list[Any] = []
_ATTEMPTS: dict[str, int] = {}
# A test changes it in the caller: forked workers see the change, spawned ones do not.
MARKER = "module default"


def square(x: int) -> int:
    return x * x


def add(x: int, *, y: int = 0) -> int:
    return x + y


def fail_on(i: int, bad: int) -> int:
    if i == bad:
        raise ValueError(f"task {i} is bad")
    return i


def flaky(key: str, failures: int) -> str:
    """Fails ``failures`` times per process for ``key``, then succeeds."""
    _ATTEMPTS[key] = _ATTEMPTS.get(key, 0) + 1
    if _ATTEMPTS[key] <= failures:
        raise RuntimeError(f"attempt {_ATTEMPTS[key]} failed")
    return key


def block() -> str:
    """Stuck for a minute unless the test releases it (threads only can be)."""
    RELEASE.wait(60)
    return "released"


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def identity() -> tuple[int, int]:
    return (os.getpid(), threading.get_ident())


def init_worker(token: str) -> None:
    INIT_LOG.append((token, identity()))


def init_count(token: str) -> int:
    """How many times ``init_worker(token)`` ran in this worker (thread or process)."""
    me = identity()
    return sum(1 for entry in INIT_LOG if entry[0] == token and entry[1] == me)


def nested_pids(n: int) -> list[int]:
    return Parallel(n_jobs=2)(delayed(os.getpid)() for _ in range(n))


def crash_if(i: int, bad: int) -> int:
    if i == bad:
        os._exit(3)
    return i


def crash_once_signalled(fifo: str) -> None:
    """Kills its worker once the test writes a byte to the named pipe ``fifo``.

    The pipe is removed on the way out, so a re-run of the task (crash
    handling runs suspects again, one at a time) kills its worker at once
    instead of waiting for a signal that never comes.
    """
    if os.path.exists(fifo):
        with open(fifo, "rb") as pipe:
            pipe.read(1)
        os.unlink(fifo)
    os._exit(3)


def wait_for_file(path: str, value: int) -> int:
    """Return ``value`` once ``path`` exists: holds a worker until the test lets it go."""
    give_up = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > give_up:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)
    return value


def crash_when(path: str) -> None:
    """Kill the worker once ``path`` exists."""
    wait_for_file(path, 0)
    os._exit(3)


def meet(mine: str, other: str) -> bool:
    """Create ``mine``, wait for ``other``: True when both tasks ran at the same time."""
    with open(mine, "w"):
        pass
    give_up = time.monotonic() + 20
    while not os.path.exists(other):
        if time.monotonic() > give_up:
            return False
        time.sleep(0.01)
    return True


def env_var(name: str) -> str | None:
    return os.environ.get(name)


def array_info(array: Any) -> tuple[str, str | None, bool, float]:
    filename = getattr(array, "filename", None)
    return (type(array).__name__, filename, bool(array.flags.writeable), float(array.sum()))


def write_into(array: Any) -> str:
    try:
        array[0] = 1.0
    except ValueError as exc:
        return f"refused: {exc}"
    return "written"


def fail_with_array(array: Any) -> None:
    raise ValueError("array task failed")


class ThreadPoolBackend(ParallelBackendBase):
    """A third-party backend written against joblib's documented protocol."""

    supports_retrieve_callback = True
    uses_threads = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool: ThreadPoolExecutor | None = None
        self.n_jobs = 1

    def effective_n_jobs(self, n_jobs: int) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs == 0")
        return n_jobs if n_jobs > 0 else 2

    def configure(self, n_jobs: int = 1, parallel: Any = None, **kwargs: Any) -> int:
        self.n_jobs = self.effective_n_jobs(n_jobs)
        self.pool = ThreadPoolExecutor(self.n_jobs)
        return self.n_jobs

    def submit(self, func: Any, callback: Any = None) -> Future[Any]:
        assert self.pool is not None
        future = self.pool.submit(func)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    def retrieve_result_callback(self, out: Any) -> Any:
        return out.result()

    def terminate(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False)


class ImmediateResult:
    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value


class OldStyleBackend(ParallelBackendBase):
    """A joblib < 1.3 backend: only ``apply_async`` returning an object with ``get``."""

    def effective_n_jobs(self, n_jobs: int) -> int:
        return 2

    def apply_async(self, func: Any, callback: Any = None) -> ImmediateResult:
        result = ImmediateResult(func())
        if callback is not None:
            callback(result)
        return result


@contextlib.contextmanager
def dask_test_client(processes: bool) -> Iterator[Any]:
    """A client of a 2-worker, 1-thread-each LocalCluster, not set as the default client."""
    from distributed import Client, LocalCluster

    # Dashboard off. The scheduler still serves health checks over HTTP, on
    # port 8787 by default: a random local port instead, so a second cluster
    # (or any program on 8787) cannot make it warn and leak its failed socket.
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


def array_view_info(array: Any) -> tuple[str, bool, bool]:
    """Type, writeable, and whether the array owns its memory (False: a view, no copy)."""
    return (type(array).__name__, bool(array.flags.writeable), bool(array.flags.owndata))


def pid_then_block(path: str) -> str:
    """Write this worker's pid to ``path``, then stay stuck (until killed)."""
    with open(path, "w") as file:
        file.write(str(os.getpid()))
    return block()


def crash_unless_marked(path: str) -> str:
    """Kill the worker the first time (leaving ``path``); succeed when run again."""
    if not os.path.exists(path):
        with open(path, "w"):
            pass
        os._exit(3)
    return "ran again"


def nested_with_backend(backend: str) -> tuple[list[str], list[int], int]:
    """A nested call with an explicit backend: its warnings, the pids that ran it, ours."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pids = Parallel(n_jobs=2, backend=backend)(delayed(os.getpid)() for _ in range(3))
    return [str(w.message) for w in caught], pids, os.getpid()
