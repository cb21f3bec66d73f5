"""Parallel: joblib 1.6 and joblite side by side (issue 3's speed targets).

Cases: import time, 100,000 trivial tasks (n_jobs=1, threads, processes), a
warm pool running 10 tasks, a cold first call, 200 CPU-bound ~10 ms tasks on
2 workers (against a plain loop), and 8 tasks sharing one 200 MB array.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

from benchmarks._harness import Report, best_time

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


def _cold_call(module: str, *, with_import: bool) -> float:
    """A fresh interpreter's first call (10 tasks, 2 workers), with or without the import."""
    code = (
        "import time\n"
        "t = time.perf_counter()\n"
        f"from {module} import Parallel, delayed\n"
        "if __name__ == '__main__':\n"
        + ("" if with_import else "    t = time.perf_counter()\n")
        + "    Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(10))\n"
        "    print(time.perf_counter() - t)\n"
    )
    return _best_subprocess(code, repeat=3)


# One library's shared-array case in a fresh interpreter: best wall time of a
# few calls, then the peak RSS of the caller (ru_maxrss of the process) and of
# its largest worker (ru_maxrss of children, read after the workers exited) and
# the peak growth of /dev/shm, where both libraries put the shared copy.
_SHARED_ARRAY_CASE = """
import gc, json, os, resource, sys, threading, time
import numpy as np
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
    "caller": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib,
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


def run(report: Report) -> None:
    import joblib

    import joblite.parallel as jl

    _compile_joblite()
    report.compare("import time", _import_time("joblib"), _import_time("joblite"), target=5)

    def trivial_case(module: Any, **kwargs: Any) -> Callable[[], object]:
        return lambda: module.Parallel(**kwargs)(
            module.delayed(trivial)(i) for i in range(N_TRIVIAL)
        )

    for label, kwargs, target in (
        ("n_jobs=1", {"n_jobs": 1}, 4),
        ("threads, n_jobs=2", {"n_jobs": 2, "backend": "threading"}, 10),
        ("processes, n_jobs=2", {"n_jobs": 2, "backend": "loky"}, 8),
    ):
        repeat = 2 if "processes" in label or "threads" in label else 5
        joblib_fn, joblite_fn = trivial_case(joblib, **kwargs), trivial_case(jl, **kwargs)
        joblib_fn(), joblite_fn()  # warm both pools
        report.compare(
            f"100,000 trivial tasks, {label}",
            best_time(joblib_fn, repeat=repeat),
            best_time(joblite_fn, repeat=repeat),
            target=target,
        )

    with joblib.Parallel(n_jobs=2) as joblib_pool, jl.Parallel(n_jobs=2) as joblite_pool:
        joblib_pool(joblib.delayed(trivial)(i) for i in range(10))
        joblite_pool(jl.delayed(trivial)(i) for i in range(10))
        report.compare(
            "warm pool, 10 tasks",
            best_time(
                lambda: joblib_pool(joblib.delayed(trivial)(i) for i in range(10)), number=20
            ),
            best_time(lambda: joblite_pool(jl.delayed(trivial)(i) for i in range(10)), number=50),
            target=10,
        )

    for with_import in (False, True):
        report.compare(
            "cold first call" + (" incl. import" if with_import else ""),
            _cold_call("joblib", with_import=with_import),
            _cold_call("joblite.parallel", with_import=with_import),
            target=2,
            note="fresh interpreter, 10 tasks"
            + ("" if with_import else "; joblite imports loky here"),
        )

    # ~10 ms of pure-Python CPU work per task, calibrated on this machine.
    probe = 200_000
    seconds = sorted(best_time(lambda: _spin(probe), repeat=1) for _ in range(5))[2]
    n = int(probe * 0.01 / seconds)
    jl.Parallel(n_jobs=2)(jl.delayed(_spin)(n) for _ in range(4))  # warm the pool
    # Rounds alternate so the loop and the pool see the same machine load
    # (a shared VM's CPU speed drifts by 10-20% within a minute).
    loop_times, pool_times = [], []
    for _ in range(3):
        loop_times.append(best_time(lambda: [_spin(n) for _ in range(200)], repeat=1))
        pool_times.append(
            best_time(
                lambda: jl.Parallel(n_jobs=2)(jl.delayed(_spin)(n) for _ in range(200)), repeat=1
            )
        )
    report.compare(
        "200 tasks of ~10 ms, 2 workers (vs plain loop)",
        min(loop_times),
        min(pool_times),
        target=1.9,
        note="left column is a plain loop, not joblib; best of 3 alternating rounds",
    )

    # Each library in its own fresh interpreter, so neither one's pool, memory
    # or temp files weigh on the other; best of two interpreters per library.
    joblib_case = min((_shared_array_case("joblib") for _ in range(2)), key=_seconds)
    joblite_case = min((_shared_array_case("joblite") for _ in range(2)), key=_seconds)
    report.compare(
        "8 tasks sharing one 200 MB array, processes",
        joblib_case["seconds"],
        joblite_case["seconds"],
        target=2.5,
        note=f"peak: joblib {_memory_note(joblib_case)}; joblite {_memory_note(joblite_case)}",
    )


def _seconds(case: dict[str, float]) -> float:
    return case["seconds"]
