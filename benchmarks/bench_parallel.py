"""Parallel: joblib 1.6 and joblite side by side (issue 3's speed targets).

Cases: import time, 100,000 trivial tasks (n_jobs=1, threads, processes), a
warm pool running 10 tasks, a cold first call, 200 CPU-bound ~10 ms tasks on
2 workers (against a plain loop), and 8 tasks sharing one 200 MB array.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
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


def _peak_memory(fn: Callable[[], object]) -> tuple[float, int]:
    """Wall time of ``fn`` and the peak RSS of this process plus its children."""
    import psutil

    me = psutil.Process()
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a worker that just exited
                    total += process.memory_info().rss
            peak = max(peak, total)
            stop.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    return elapsed, peak


def run(report: Report) -> None:
    import joblib
    import numpy as np

    import joblite.parallel as jl

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
    report.compare(
        "200 tasks of ~10 ms, 2 workers (vs plain loop)",
        best_time(lambda: [_spin(n) for _ in range(200)], repeat=2),
        best_time(
            lambda: jl.Parallel(n_jobs=2)(jl.delayed(_spin)(n) for _ in range(200)), repeat=3
        ),
        target=1.9,
        note="left column is a plain loop, not joblib",
    )

    array = np.random.default_rng(0).random(200 * 2**20 // 8)
    joblib.Parallel(n_jobs=2)(joblib.delayed(trivial)(i) for i in range(4))

    def share(module: Any) -> Callable[[], object]:
        return lambda: module.Parallel(n_jobs=2)(
            module.delayed(array_sum)(array, i) for i in range(8)
        )

    joblib_s, joblib_peak = min(_peak_memory(share(joblib)) for _ in range(2))
    joblite_s, joblite_peak = min(_peak_memory(share(jl)) for _ in range(2))
    report.compare(
        "8 tasks sharing one 200 MB array, processes",
        joblib_s,
        joblite_s,
        target=2.5,
        note=f"peak RSS joblib {joblib_peak / 2**20:.0f} MB, joblite {joblite_peak / 2**20:.0f} MB",
    )
