"""What only process backends do: crashes, shipping closures, shared arrays, cleanup."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import uuid
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from joblite.exceptions import WorkerCrashedError
from joblite.parallel import (
    LokyBackend,
    MultiprocessingBackend,
    Parallel,
    RemoteTraceback,
    delayed,
    parallel_config,
    shutdown_workers,
)
from joblite.parallel import _wire as wire
from joblite.parallel._memmap import FOLDER_PREFIX, default_temp_folder
from joblite.parallel.backends import base as backends_base
from joblite.parallel.backends import loky_pool, multiprocessing_pool

from . import _tasks
from ._tasks import (
    array_info,
    crash_if,
    crash_once_signalled,
    crash_when,
    env_var,
    fail_on,
    fail_with_array,
    init_count,
    init_worker,
    meet,
    square,
    wait_for_file,
    write_into,
)

pytestmark = pytest.mark.parametrize("backend", ["loky", "multiprocessing"])

BIG = 2**20  # max_nbytes used below: 1 MiB


def _leftovers(folder: str | Path) -> list[Path]:
    return sorted(Path(folder).glob(f"{FOLDER_PREFIX}{os.getpid()}_*"))


def test_worker_crash_names_the_task_and_the_next_call_works(backend: str) -> None:
    with pytest.raises(WorkerCrashedError, match=r"task 5 \(crash_if\)"):
        Parallel(n_jobs=2, backend=backend)(delayed(crash_if)(i, 5) for i in range(12))
    assert Parallel(n_jobs=2, backend=backend)(delayed(square)(i) for i in range(6)) == [
        0,
        1,
        4,
        9,
        16,
        25,
    ]


def test_worker_crash_collected_in_its_slot(backend: str) -> None:
    out = Parallel(n_jobs=2, backend=backend, on_error="collect")(
        delayed(crash_if)(i, 2) for i in range(6)
    )
    assert isinstance(out[2], WorkerCrashedError)
    assert out[:2] + out[3:] == [0, 1, 3, 4, 5]


def _pool_breaking_backend(backend: str, fifo: Path) -> Any:
    """A backend whose pool breaks after it was checked and before the second submit.

    That is the race of a worker dying while batches are still being submitted,
    made deterministic: once the backend has found its pool whole, the first task
    is told (through ``fifo``) to kill its worker, and we wait for that task's
    future, which loky and concurrent.futures fail only after flagging the pool
    broken. The submit that follows then raises instead of returning a future.
    """
    base, get_pool = {
        "loky": (LokyBackend, "_get_executor"),
        "multiprocessing": (MultiprocessingBackend, "_get_pool"),
    }[backend]

    class PoolBreaksDuringSubmit(base):  # type: ignore[valid-type,misc]
        first: Future[Any] | None = None
        raced = False

        def submit_batch(self, func: Any) -> Future[Any]:
            future: Future[Any] = super().submit_batch(func)
            if self.first is None:
                self.first = future
            return future

    def checked_pool(self: PoolBreaksDuringSubmit) -> Any:
        pool = getattr(base, get_pool)(self)  # the backend finds its pool whole...
        if self.first is not None and not self.raced:
            self.raced = True
            fifo.write_bytes(b"x")  # ...and then the first task kills its worker
            wait([self.first])
        return pool

    setattr(PoolBreaksDuringSubmit, get_pool, checked_pool)
    return PoolBreaksDuringSubmit()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("on_error", ["raise", "collect"])
def test_worker_death_during_submission_is_a_crash_and_the_next_call_works(
    backend: str, on_error: str, tmp_path: Path
) -> None:
    fifo = tmp_path / "signal"
    os.mkfifo(fifo)
    racing = _pool_breaking_backend(backend, fifo)
    tasks = [delayed(crash_once_signalled)(str(fifo))] + [delayed(square)(i) for i in range(1, 6)]
    parallel = Parallel(n_jobs=2, backend=racing, batch_size=1, on_error=on_error)
    if on_error == "raise":
        with pytest.raises(WorkerCrashedError, match=r"task 0 \(crash_once_signalled\)"):
            parallel(tasks)
    else:
        out = parallel(tasks)
        assert isinstance(out[0], WorkerCrashedError)
        assert out[1:] == [1, 4, 9, 16, 25]
    assert racing.raced
    # The broken pool was replaced: the same backend serves the next call.
    assert Parallel(n_jobs=2, backend=racing)(delayed(square)(i) for i in range(4)) == [0, 1, 4, 9]


def test_tasks_run_in_parallel_again_after_a_crash(backend: str, tmp_path: Path) -> None:
    submitted_four, crash_handled = tmp_path / "submitted", tmp_path / "handled"
    base = {"loky": LokyBackend, "multiprocessing": MultiprocessingBackend}[backend]

    class SignallingBackend(base):
        submissions = 0

        def submit_batch(self, func: Any) -> Any:
            future = super().submit_batch(func)
            self.submissions += 1
            if self.submissions == 4:
                submitted_four.touch()  # task 0 may kill its worker now
            return future

        def replace_workers(self) -> None:
            super().replace_workers()
            crash_handled.touch()  # the held tasks may finish

    # Tasks 1-3 are held until the crash of task 0 is handled, so the suspects
    # re-run alone are tasks 0-3 only; tasks 4 and 5 then need each other.
    held = [delayed(wait_for_file)(str(crash_handled), i) for i in range(1, 4)]
    pair = [
        delayed(meet)(str(tmp_path / "a"), str(tmp_path / "b")),
        delayed(meet)(str(tmp_path / "b"), str(tmp_path / "a")),
    ]
    tasks = [delayed(crash_when)(str(submitted_four)), *held, *pair, delayed(square)(6)]
    out = Parallel(n_jobs=2, backend=SignallingBackend(), batch_size=1, on_error="collect")(tasks)
    assert isinstance(out[0], WorkerCrashedError)
    assert out[1:] == [1, 2, 3, True, True, 36]


def test_initializer_is_pickled_once_not_per_batch(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []

    def counting(initializer: object, initargs: tuple[object, ...]) -> bytes | None:
        calls.append(initializer)
        return real(initializer, initargs)

    real = wire.encode_initializer
    for module in (wire, backends_base, loky_pool, multiprocessing_pool):
        if hasattr(module, "encode_initializer"):
            monkeypatch.setattr(module, "encode_initializer", counting)
    token = uuid.uuid4().hex
    out = Parallel(
        n_jobs=2, backend=backend, batch_size=1, initializer=init_worker, initargs=(token,)
    )(delayed(init_count)(token) for _ in range(20))
    assert out == [1] * 20
    assert calls == [init_worker]


def test_lambdas_and_closures_travel(backend: str) -> None:
    offset = 10

    def shifted(x: int) -> int:
        return x + offset

    out = Parallel(n_jobs=2, backend=backend)(delayed(shifted)(i) for i in range(4))
    assert out == [10, 11, 12, 13]
    assert Parallel(n_jobs=2, backend=backend)(delayed(lambda x: x * 3)(i) for i in range(3)) == [
        0,
        3,
        6,
    ]


def test_remote_traceback_is_the_cause(backend: str) -> None:
    with pytest.raises(ValueError, match="task 1 is bad") as info:
        Parallel(n_jobs=2, backend=backend)(delayed(fail_on)(i, 1) for i in range(3))
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "in fail_on" in str(cause)


def test_unpicklable_argument_fails_in_the_caller(backend: str) -> None:
    import pickle
    import threading

    tasks = [delayed(square)(2), delayed(square)(threading.Lock())]
    # joblib raises pickle.PicklingError; pickle's own error stays readable as the cause.
    with pytest.raises(pickle.PicklingError, match="pickle") as info:
        Parallel(n_jobs=2, backend=backend, batch_size=1)(tasks)
    assert isinstance(info.value, TypeError)  # what the multiprocessing backend raised
    assert "task 1" in str(info.value)
    assert isinstance(info.value.__cause__, TypeError)
    assert "_thread.lock" in str(info.value.__cause__)


def test_large_arrays_are_shared_read_only_once_per_call(backend: str, tmp_path: Path) -> None:
    big = np.arange(BIG // 8 * 2, dtype=np.float64)
    other = np.ones(BIG // 8 * 2)
    small = np.arange(10.0)
    tasks = [delayed(array_info)(a) for a in (big, big, other, small, big)]
    out = Parallel(n_jobs=2, backend=backend, temp_folder=tmp_path, max_nbytes="1M")(tasks)
    kinds = [kind for kind, _, _, _ in out]
    assert kinds == ["memmap", "memmap", "memmap", "ndarray", "memmap"]
    files = {filename for _, filename, _, _ in out if filename}
    assert len(files) == 2  # one file per distinct array, however many tasks use it
    assert all(not writeable for kind, _, writeable, _ in out if kind == "memmap")
    assert [total for _, _, _, total in out] == [
        float(big.sum()),
        float(big.sum()),
        float(other.sum()),
        45.0,
        float(big.sum()),
    ]
    assert _leftovers(tmp_path) == []


def test_mmap_mode_r_refuses_writes_and_max_nbytes_none_pickles(backend: str) -> None:
    big = np.zeros(BIG)
    refused = Parallel(n_jobs=2, backend=backend)([delayed(write_into)(big)])
    assert refused[0].startswith("refused")
    copied = Parallel(n_jobs=2, backend=backend, max_nbytes=None)([delayed(array_info)(big)])
    assert copied[0][0] == "ndarray"


def test_no_shared_files_left_after_an_error(backend: str, tmp_path: Path) -> None:
    big = np.zeros(BIG)
    with pytest.raises(ValueError, match="array task failed"):
        Parallel(n_jobs=2, backend=backend, temp_folder=tmp_path)(
            delayed(fail_with_array)(big) for _ in range(4)
        )
    assert _leftovers(tmp_path) == []


def test_no_shared_files_left_after_an_abandoned_generator(backend: str, tmp_path: Path) -> None:
    big = np.zeros(BIG)
    gen = Parallel(n_jobs=2, backend=backend, temp_folder=tmp_path, return_as="generator")(
        delayed(array_info)(big) for _ in range(50)
    )
    assert next(gen)[0] == "memmap"
    assert _leftovers(tmp_path) != []
    del gen
    gc.collect()
    assert _leftovers(tmp_path) == []


def test_no_shared_memory_left_after_keyboard_interrupt(backend: str) -> None:
    shm = default_temp_folder()
    before = _leftovers(shm)
    big = np.zeros(BIG)

    def interrupt(done: int, total: int | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Parallel(n_jobs=2, backend=backend, progress=interrupt)(
            delayed(array_info)(big) for _ in range(20)
        )
    assert _leftovers(shm) == before
    assert Parallel(n_jobs=2, backend=backend)(delayed(square)(i) for i in range(3)) == [0, 1, 4]


def test_inner_max_num_threads_caps_blas_threads(backend: str) -> None:
    with parallel_config(backend=backend, n_jobs=2, inner_max_num_threads=1):
        out = Parallel()(delayed(env_var)("OMP_NUM_THREADS") for _ in range(4))
    assert out == ["1"] * 4


def _helper_pids() -> set[int]:
    """Long-lived helpers (not workers): trackers, forkserver, the session's Ray runtime."""
    import multiprocessing.forkserver
    import multiprocessing.resource_tracker

    from loky.backend import resource_tracker as loky_tracker

    # joblib's own copy of loky, started by the tests that compare with joblib.
    joblib_tracker = sys.modules.get("joblib.externals.loky.backend.resource_tracker")
    helpers = (
        getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None),
        getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None),
        getattr(loky_tracker._resource_tracker, "_pid", None),
        getattr(getattr(joblib_tracker, "_resource_tracker", None), "_pid", None),
    )
    ray = set()
    for process in _tasks.RAY_PROCESSES:
        with contextlib.suppress(psutil.NoSuchProcess):
            ray |= {process.pid} | {child.pid for child in process.children(recursive=True)}
    return {pid for pid in helpers if pid is not None} | ray


def _worker_children() -> list[psutil.Process]:
    helpers = _helper_pids()
    return [
        child for child in psutil.Process().children(recursive=True) if child.pid not in helpers
    ]


def test_no_processes_left_after_the_run(backend: str) -> None:
    Parallel(n_jobs=2, backend=backend)(delayed(square)(i) for i in range(10))
    with pytest.raises(WorkerCrashedError):
        Parallel(n_jobs=2, backend=backend)([delayed(crash_if)(1, 1)])
    shutdown_workers()  # loky keeps a warm pool between calls until told otherwise
    _, alive = psutil.wait_procs(_worker_children(), timeout=30)
    assert [(p.pid, p.ppid(), p.cmdline()) for p in alive] == []


def test_shared_array_argument_works_without_numpy_in_tasks(backend: str) -> None:
    data: dict[str, Any] = {"arrays": [np.full(BIG // 8, 2.0)]}
    out = Parallel(n_jobs=2, backend=backend)(
        [delayed(lambda d: float(d["arrays"][0].sum()))(data)]
    )
    assert out == [float(BIG // 8 * 2)]


def _byte_order(array: Any) -> tuple[str, str, Any]:
    return (type(array).__name__, array.dtype.str, array)


@pytest.mark.parametrize("shared", [False, True], ids=["pickled", "memmapped"])
def test_big_endian_arrays_keep_their_byte_order(
    backend: str, shared: bool, tmp_path: Path
) -> None:
    # joblib hands a big-endian array over as it is, and gives it back so.
    array = np.arange(BIG // 8 * 2, dtype=">f8")
    max_nbytes = "1M" if shared else None
    out = Parallel(n_jobs=2, backend=backend, temp_folder=tmp_path, max_nbytes=max_nbytes)(
        delayed(_byte_order)(array) for _ in range(2)
    )
    for kind, seen_in_worker, back in out:
        assert kind == ("memmap" if shared else "ndarray")
        assert seen_in_worker == ">f8"
        assert back.dtype.str == ">f8"
        np.testing.assert_array_equal(back, array)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("return_as", ["list", "generator"])
def test_a_call_leaves_nothing_for_the_garbage_collector(backend: str, return_as: str) -> None:
    # Cycles would hold each call's batches and payloads until a collection,
    # and a collection walking the call's big result lists costs milliseconds.
    with Parallel(n_jobs=2, backend=backend, return_as=return_as, batch_size=50) as parallel:
        list(parallel(delayed(square)(i) for i in range(10)))  # workers started
        gc.collect()
        gc.disable()
        try:
            assert list(parallel(delayed(square)(i) for i in range(1000)))[-1] == 999**2
            assert gc.collect() == 0
        finally:
            gc.enable()
