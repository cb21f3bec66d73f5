"""Parallel: joblib 1.6 and joblite side by side (issues 3 and 12's targets).

Cases: import time, 100,000 trivial tasks (n_jobs=1, threads, processes), a
warm pool running 10 tasks, a cold first call, 200 CPU-bound ~10 ms tasks on
2 workers, and 8 tasks sharing one 200 MB array. Limits: a plain loop, an
empty warm ``ProcessPoolExecutor.map``, for the cold call the loky floor
(import loky, boot two interpreters importing loky and cloudpickle), a warm
2-process ``multiprocessing.Pool`` running the same CPU-bound tasks, one write
of the array to shared memory plus the same tasks on a warm pool mapping it.
"""

from __future__ import annotations

import subprocess
import sys
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from benchmarks._harness import Report, best_time
from benchmarks._limits import memcpy_fresh, write_once

N_TRIVIAL = 100_000


def trivial(x: int) -> int:
    return x


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def array_sum(array: Any, i: int) -> float:
    return float(array[i::8].sum())


# The worker side of the shared-array limit: one read-only map per file and process.
_MAPPED: dict[str, Any] = {}


def _mapped_sum(path: str, i: int) -> float:
    import numpy as np

    if path not in _MAPPED:
        _MAPPED[path] = np.memmap(path, dtype=np.float64, mode="r")
    return array_sum(_MAPPED[path], i)


def _shared_array_limit(array: Any, rounds: int = 6) -> tuple[float, float]:
    """The least a shared-memory design does: one write to a fresh file, 8 mapped tasks.

    A warm 2-process pool maps the file (once per process) and runs the same
    8 tasks. Each round has a pool of its own, shut down after the clock
    stops, so freeing a finished round's pages (when the last map goes) is
    never on the clock, as it is not for the libraries (their workers drop
    the maps of a removed file in the background). Returns the best round
    and the best write alone.
    """
    import os
    import tempfile
    import time
    import uuid

    folder = "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    best, best_write = float("inf"), float("inf")
    for _ in range(rounds):
        path = os.path.join(folder, f"bench_{uuid.uuid4().hex}.bin")
        try:
            with ProcessPoolExecutor(2) as pool:
                list(pool.map(trivial, range(4)))  # warm, as the libraries' pools are
                start = time.perf_counter()
                write_once(array, path)
                best_write = min(best_write, time.perf_counter() - start)
                list(pool.map(_mapped_sum, [path] * 8, range(8)))
                best = min(best, time.perf_counter() - start)
        finally:
            os.unlink(path)
    return best, best_write


def _best_subprocess(code: str, repeat: int = 5) -> float:
    """Best of ``repeat`` fresh interpreters; ``code`` prints its own timing."""
    best = float("inf")
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout
        best = min(best, float(out.strip().splitlines()[-1]))
    return best


def _compile_joblite() -> None:
    """Give joblite the bytecode caches an installed package has (pip wrote joblib's).

    An editable checkout run under ``PYTHONDONTWRITEBYTECODE=1`` has none: every
    fresh interpreter and worker would compile joblite from source (~15 ms in the
    caller alone) while joblib loads bytecode, which is not what users get.
    """
    import compileall
    import os

    import joblite

    compileall.compile_dir(os.path.dirname(joblite.__file__), quiet=1)


def _import_time(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return _best_subprocess(code, repeat=7)


_COLD_CALLS = {
    "joblib": (
        "from joblib import Parallel, delayed",
        "Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(10))",
    ),
    "joblite": (
        "from joblite.parallel import Parallel, delayed",
        "Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(10))",
    ),
    # The floor of a pool that spawns loky workers (loky spawns: a fork-based
    # pool would be unsafe beside the caller's threads): import loky (joblite's
    # caller does so in the call) and boot two interpreters that import what
    # every loky worker imports before it can run a task; the clock stops when
    # both say they are ready (their exit is not a worker's cost).
    "limit": (
        "import subprocess, sys",
        "import loky; children = [subprocess.Popen([sys.executable, '-c', "
        "'import loky, cloudpickle; print(flush=True)'], stdout=subprocess.PIPE) "
        "for _ in range(2)]; [c.stdout.readline() for c in children]",
    ),
    "fork": (
        "from concurrent.futures import ProcessPoolExecutor",
        "with ProcessPoolExecutor(2) as pool: list(pool.map(abs, range(-9, 1)))",
    ),
}


def _cold_call_code(who: str, *, with_import: bool) -> str:
    """A fresh interpreter's first call (10 tasks, 2 workers) that prints its own time."""
    import_line, call_line = _COLD_CALLS[who]
    return (
        "import time\n"
        "t = time.perf_counter()\n"
        f"{import_line}\n"
        "if __name__ == '__main__':\n"
        + ("" if with_import else "    t = time.perf_counter()\n")
        + f"    {call_line}\n"
        "    print(time.perf_counter() - t)\n"
    )


def _cold_calls(report: Report, *, with_import: bool) -> None:
    """Fresh interpreters of each case in rotating rounds: all see the same load."""
    import multiprocessing
    import statistics

    cases = list(_COLD_CALLS)
    codes = [_cold_call_code(who, with_import=with_import) for who in cases]
    rounds = 3 if report.quick else 9
    times: list[list[float]] = [[] for _ in cases]
    for round_number in range(rounds):
        for offset in range(len(cases)):
            index = (offset + round_number) % len(cases)
            out = subprocess.run(
                [sys.executable, "-c", codes[index]], check=True, capture_output=True, text=True
            ).stdout
            times[index].append(float(out.strip().splitlines()[-1]))
    best = {who: min(t) for who, t in zip(cases, times, strict=True)}
    median = {who: statistics.median(t) for who, t in zip(cases, times, strict=True)}
    report.compare(
        "cold first call" + (" incl. import" if with_import else ""),
        best["joblib"],
        best["joblite"],
        limit_s=best["limit"],
        limit="import loky, then two fresh interpreters running "
        "`import loky, cloudpickle` at once, until both are ready (the boot every "
        "spawned loky worker pays)",
        target=2,
        note=f"fresh interpreters, 10 tasks, best of {rounds} rotating rounds; medians: "
        f"joblib {median['joblib'] * 1e3:.1f} ms, joblite {median['joblite'] * 1e3:.1f} ms, "
        f"limit {median['limit'] * 1e3:.1f} ms; a fork-based ProcessPoolExecutor "
        f"({multiprocessing.get_all_start_methods()[0]} start method, no interpreter to "
        f"boot): {best['fork'] * 1e3:.1f} ms"
        + ("" if with_import else "; joblite imports loky here, joblib at its import"),
    )


# One library's shared-array case in a fresh interpreter: best wall time of a
# few calls, then the peak RSS of the caller (VmHWM of the process) and of
# its largest worker (ru_maxrss of children, read after the workers exited) and
# the peak growth of /dev/shm, where both libraries put the shared copy.
_SHARED_ARRAY_CASE = """
import gc, json, os, resource, sys, threading, time
import numpy as np
from benchmarks._harness import peak_rss
from benchmarks.bench_parallel import array_sum, trivial
if sys.argv[1] == "joblib":
    import joblib as lib
    from joblib.externals.loky import get_reusable_executor
    stop_workers = lambda: get_reusable_executor().shutdown(wait=True)
else:
    import joblite.parallel as lib
    stop_workers = lib.shutdown_workers
lib.Parallel(n_jobs=2)(lib.delayed(trivial)(i) for i in range(4))  # warm the pool
array = np.random.default_rng(0).random(200 * 2**20 // 8)
def shm_used():
    if not os.path.isdir("/dev/shm"):
        return 0
    st = os.statvfs("/dev/shm")
    return (st.f_blocks - st.f_bfree) * st.f_frsize
base, peak, stop = shm_used(), [0], threading.Event()
def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], shm_used() - base)
        stop.wait(0.002)
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
best = float("inf")
for _ in range(3):
    gc.collect()
    start = time.perf_counter()
    lib.Parallel(n_jobs=2)(lib.delayed(array_sum)(array, i) for i in range(8))
    best = min(best, time.perf_counter() - start)
    time.sleep(0.3)  # both libraries release a finished call's files lazily
stop.set()
sampler.join()
import psutil
children = psutil.Process().children()
workers = [p for p in children if "resource_tracker" not in " ".join(p.cmdline())]
stop_workers()
psutil.wait_procs(workers, timeout=30)  # reaped children count in RUSAGE_CHILDREN
kib = 1024
print(json.dumps({
    "seconds": best,
    "caller": peak_rss(),
    "worker": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib,
    "shm": peak[0],
}))
"""


def _shared_array_case(library: str) -> dict[str, float]:
    import json
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", _SHARED_ARRAY_CASE, library],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def _memory_note(case: dict[str, float]) -> str:
    mib = 2**20
    return (
        f"caller {case['caller'] / mib:.0f} + worker {case['worker'] / mib:.0f}"
        f" + shm {case['shm'] / mib:.0f} MB"
    )


def _pool_map(pool: Any, n_tasks: int) -> Callable[[], object]:
    """An empty ``map`` of ``n_tasks`` on a warm pool, in 16 chunks (8 per worker)."""
    chunksize = max(1, n_tasks // (2 * 8))
    return lambda: list(pool.map(trivial, range(n_tasks), chunksize=chunksize))


def _rotating_rounds(cases: list[Callable[[], object]], rounds: int) -> list[list[float]]:
    """Each case's wall time in every round, rounds rotating the order of the cases.

    Every case sees the same machine load (a shared VM's CPU speed drifts by
    10-20% within a minute), and no case always runs right after another.
    """
    times: list[list[float]] = [[] for _ in cases]
    for round_number in range(rounds):
        for offset in range(len(cases)):
            index = (offset + round_number) % len(cases)
            times[index].append(best_time(cases[index], repeat=1))
    return times


def _trivial_tasks(report: Report, jl: Any, n_tasks: int) -> None:
    import joblib

    def trivial_case(module: Any, **kwargs: Any) -> Callable[[], object]:
        return lambda: module.Parallel(**kwargs)(module.delayed(trivial)(i) for i in range(n_tasks))

    def plain_loop() -> object:
        return [trivial(i) for i in range(n_tasks)]

    in_caller: list[tuple[str, dict[str, Any], float, Callable[[], object] | None, str]] = [
        ("n_jobs=1", {"n_jobs": 1}, 4, plain_loop, "a plain loop"),
        ("threads, n_jobs=2", {"n_jobs": 2, "backend": "threading"}, 10, None, ""),
    ]
    for label, kwargs, target, limit_fn, limit in in_caller:
        repeat = 5 if label == "n_jobs=1" else 2
        joblib_fn, joblite_fn = trivial_case(joblib, **kwargs), trivial_case(jl, **kwargs)
        joblib_fn(), joblite_fn()  # warm both pools
        report.compare(
            f"{n_tasks:,} trivial tasks, {label}",
            best_time(joblib_fn, repeat=repeat),
            best_time(joblite_fn, repeat=repeat),
            limit_s=None if limit_fn is None else best_time(limit_fn, repeat=repeat),
            limit=limit,
            target=target,
        )
    with ProcessPoolExecutor(2) as executor:
        processes = {"n_jobs": 2, "backend": "loky"}
        cases = [
            trivial_case(joblib, **processes),
            trivial_case(jl, **processes),
            _pool_map(executor, n_tasks),
            # What the caller pays before any library work: reading the input.
            lambda: deque((jl.delayed(trivial)(i) for i in range(n_tasks)), maxlen=0),
        ]
        for case in cases:
            case()  # warm the pools
        times = _rotating_rounds(cases, 3 if report.quick else 9)
    joblib_s, joblite_s, limit_s, input_s = (min(t) for t in times)
    medians = [sorted(t)[len(t) // 2] for t in times]
    report.compare(
        f"{n_tasks:,} trivial tasks, processes, n_jobs=2",
        joblib_s,
        joblite_s,
        limit_s=limit_s,
        limit="an empty map on a warm 2-process ProcessPoolExecutor, 16 chunks",
        target=8,
        note=f"best of {len(times[0])} rotating rounds; medians: joblib "
        f"{medians[0] * 1e3:.1f} ms, joblite {medians[1] * 1e3:.1f} ms, limit "
        f"{medians[2] * 1e3:.1f} ms; reading the input alone ({n_tasks:,} "
        f"delayed(trivial)(i) in the caller, which every run of the row pays): "
        f"{input_s * 1e3:.1f} ms",
    )


def _warm_pool(report: Report, jl: Any) -> None:
    import joblib

    with (
        joblib.Parallel(n_jobs=2) as joblib_pool,
        jl.Parallel(n_jobs=2) as joblite_pool,
        ProcessPoolExecutor(2) as executor,
    ):
        joblib_pool(joblib.delayed(trivial)(i) for i in range(10))
        joblite_pool(jl.delayed(trivial)(i) for i in range(10))
        list(executor.map(trivial, range(10)))
        report.compare(
            "warm pool, 10 tasks",
            best_time(
                lambda: joblib_pool(joblib.delayed(trivial)(i) for i in range(10)), number=20
            ),
            best_time(lambda: joblite_pool(jl.delayed(trivial)(i) for i in range(10)), number=50),
            limit_s=best_time(lambda: list(executor.map(trivial, range(10))), number=50),
            limit="an empty map of 10 tasks on a warm 2-process ProcessPoolExecutor",
            target=10,
        )


def _cpu_bound(report: Report, jl: Any) -> None:
    """200 tasks of ~10 ms on 2 workers, beside a warm multiprocessing.Pool doing the same."""
    import multiprocessing

    import joblib

    # ~10 ms of pure-Python CPU work per task, calibrated on this machine.
    probe = 200_000
    seconds = sorted(best_time(lambda: _spin(probe), repeat=1) for _ in range(5))[2]
    n = int(probe * 0.01 / seconds)
    n_tasks = 40 if report.quick else 200
    jl.Parallel(n_jobs=2)(jl.delayed(_spin)(n) for _ in range(4))  # warm both pools
    joblib.Parallel(n_jobs=2)(joblib.delayed(_spin)(n) for _ in range(4))
    with multiprocessing.Pool(2) as pool:
        pool.map(_spin, [n] * 4)
        cases: list[Callable[[], object]] = [
            lambda: joblib.Parallel(n_jobs=2)(joblib.delayed(_spin)(n) for _ in range(n_tasks)),
            lambda: jl.Parallel(n_jobs=2)(jl.delayed(_spin)(n) for _ in range(n_tasks)),
            lambda: pool.map(_spin, [n] * n_tasks),
            lambda: _two_processes(n, n_tasks),
            lambda: [_spin(n) for _ in range(n_tasks)],
        ]
        times = _rotating_rounds(cases, 3)  # best of 3 rounds each
        pool.close()
        pool.join()
    joblib_s, joblite_s, pool_s, processes_s, loop_s = (min(t) for t in times)
    report.compare(
        f"{n_tasks} tasks of ~10 ms, 2 workers",
        joblib_s,
        joblite_s,
        limit_s=pool_s,
        limit="a warm 2-process multiprocessing.Pool mapping the same tasks",
        limit_target=1.05,
        note=f"two plain processes running half the loop each: {processes_s:.2f} s; "
        f"a plain loop: {loop_s:.2f} s (joblite {loop_s / joblite_s:.2f}× faster); "
        "best of 3 rotating rounds",
    )


def _spin_many(n: int, count: int) -> None:
    for _ in range(count):
        _spin(n)


def _two_processes(n: int, n_tasks: int) -> None:
    """Two fresh processes running half of the loop each: no pool, no task messages."""
    import multiprocessing

    processes = [
        multiprocessing.Process(target=_spin_many, args=(n, n_tasks // 2)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join()


def _shared_array(report: Report) -> None:
    # Each library in its own fresh interpreter, so neither one's pool, memory
    # or temp files weigh on the other; best of two interpreters per library.
    import numpy as np

    joblib_case = min((_shared_array_case("joblib") for _ in range(2)), key=_seconds)
    joblite_case = min((_shared_array_case("joblite") for _ in range(2)), key=_seconds)
    array = np.random.default_rng(0).random(200 * 2**20 // 8)
    limit_s, write_s = _shared_array_limit(array, rounds=2 if report.quick else 6)
    memcpy_s = best_time(lambda: memcpy_fresh(array), repeat=5)
    report.compare(
        "8 tasks sharing one 200 MB array, processes",
        joblib_case["seconds"],
        joblite_case["seconds"],
        limit_s=limit_s,
        limit="one write of the array to a fresh file in /dev/shm, then the same 8 tasks "
        "on a warm 2-process ProcessPoolExecutor mapping it (once per worker)",
        target=2.5,
        note=f"peak: joblib {_memory_note(joblib_case)}; joblite {_memory_note(joblite_case)}; "
        f"of the limit, the write alone: {write_s * 1e3:.1f} ms (a memcpy into a fresh "
        f"array: {memcpy_s * 1e3:.1f} ms; tmpfs allocates 4 KiB pages one by one)",
    )


def _generator_memory(report: Report, n_tasks: int) -> None:
    """Caller's peak RSS over a ``return_as="generator"`` call, each library in a fresh process."""
    import json
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cases = {}
    for library in ("joblib", "joblite"):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks._generator_case", library, str(n_tasks)],
            check=True,
            capture_output=True,
            text=True,
            cwd=root,
        ).stdout
        cases[library] = json.loads(out.strip().splitlines()[-1])
    mib = 2**20
    note = "; ".join(
        f"{library} caller peak RSS {case['peak'] / mib:.0f} MB "
        f"(+{(case['peak'] - case['peak_before']) / mib:.0f} MB during the call)"
        for library, case in cases.items()
    )
    report.compare(
        f"{n_tasks:,} tasks, return_as='generator', processes",
        cases["joblib"]["seconds"],
        cases["joblite"]["seconds"],
        note=note + "; one fresh interpreter each",
    )


def run(report: Report) -> None:
    import joblite.parallel as jl

    _compile_joblite()
    report.compare("import time", _import_time("joblib"), _import_time("joblite"), target=5)
    _trivial_tasks(report, jl, 10_000 if report.quick else N_TRIVIAL)
    _warm_pool(report, jl)
    for with_import in (False, True):
        _cold_calls(report, with_import=with_import)
    _cpu_bound(report, jl)
    _shared_array(report)
    _generator_memory(report, 50_000 if report.quick else 1_000_000)


def _seconds(case: dict[str, float]) -> float:
    return case["seconds"]
