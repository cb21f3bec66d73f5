"""Memory: cache hits and misses, side by side with joblib.Memory.

Cases follow the Memory issue's targets: a hit with small arguments, the
overhead of a miss, a hit whose argument is a 100 MB array (hashing
dominates), and a hit returning a 100 MB array (loaded, or memory-mapped).
"""

from __future__ import annotations

import gc
import itertools
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from benchmarks._harness import Report, best_time, best_time_auto

SMALL_ARGS = (1, "a" * 20, {"a": 1, "b": 2, "c": 3}, list(range(10)))


def small(x: int, s: str, d: dict[str, int], values: list[int]) -> int:
    return x


def total(a: Any) -> float:
    return float(a[:10].sum())


def make_array(n: int) -> Any:
    import numpy as np

    return np.ones(n, dtype=np.float64)


MISS_BATCH = 50
MISS_ROUNDS = 9


def misses(f: Callable[..., Any]) -> Callable[[], None]:
    """A batch of ``MISS_BATCH`` calls of ``f``, each with arguments never seen before."""
    counter = itertools.count()
    f(-1, *SMALL_ARGS[1:])  # the first call of a function does one-off set-up work

    def batch() -> None:
        for _ in range(MISS_BATCH):
            f(next(counter), *SMALL_ARGS[1:])

    return batch


def _interleaved_medians(
    first: Callable[[], None], second: Callable[[], None]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((median, best), (median, best))`` wall times of alternating rounds of two batches."""
    times: tuple[list[float], list[float]] = ([], [])
    for round_ in range(MISS_ROUNDS):
        # Alternate which goes first, so neither always follows the other's disk writes.
        order = ((0, first), (1, second)) if round_ % 2 == 0 else ((1, second), (0, first))
        for index, batch in order:
            gc.collect()
            start = time.perf_counter()
            batch()
            times[index].append(time.perf_counter() - start)
    return (
        (statistics.median(times[0]), min(times[0])),
        (statistics.median(times[1]), min(times[1])),
    )


def _miss_overhead(report: Report, jb: Any, lite: Any, label: str) -> None:
    miss_j, miss_l = _interleaved_medians(misses(jb.cache(small)), misses(lite.cache(small)))
    report.compare(
        label,
        miss_j[0] / MISS_BATCH,
        miss_l[0] / MISS_BATCH,
        target=3,
        note=f"medians of {MISS_ROUNDS} alternating rounds; best rounds: "
        f"{miss_j[1] / miss_l[1]:.2f}×",
    )


def _hit_with_big_argument(report: Report, jb: Any, lite: Any) -> None:
    import numpy as np

    big = np.random.default_rng(0).random(100 * 2**20 // 8)
    jf, lf = jb.cache(total), lite.cache(total)
    jf(big)
    lf(big)
    report.compare(
        "hit, 100 MB array argument",
        best_time(lambda: jf(big), repeat=3),
        best_time(lambda: lf(big), repeat=3),
        target=10,
    )


def run(report: Report) -> None:
    import joblib

    import joblite.memory as jl

    root = tempfile.mkdtemp(prefix="bench-memory-")
    try:

        def both(**options: Any) -> tuple[Any, Any]:
            jb = joblib.Memory(tempfile.mkdtemp(dir=root), verbose=0, **options)
            lite = jl.Memory(tempfile.mkdtemp(dir=root), verbose=0, **options)
            return jb, lite

        # Hit with small arguments.
        jb, lite = both()
        jf, lf = jb.cache(small), lite.cache(small)
        jf(*SMALL_ARGS)
        lf(*SMALL_ARGS)
        report.compare(
            "hit, small arguments",
            best_time_auto(lambda: jf(*SMALL_ARGS)),
            best_time_auto(lambda: lf(*SMALL_ARGS)),
            target=10,
        )

        # Miss overhead: every call has new arguments, the function is instant
        # (so the time is the overhead). File creation time on a busy disk
        # swings from tens of µs to a few ms, so the two libraries' rounds
        # alternate (each sees the same disk weather) and medians are compared.
        _miss_overhead(report, *both(), "miss overhead, small arguments (per call)")

        # The same on tmpfs, where creating a file costs no disk I/O: the
        # libraries' own overhead, without this VM's disk weather (which makes
        # the row above swing from below 1x to 5x between identical runs).
        if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
            shm_root = tempfile.mkdtemp(prefix="bench-memory-", dir="/dev/shm")
            try:
                _miss_overhead(
                    report,
                    joblib.Memory(tempfile.mkdtemp(dir=shm_root), verbose=0),
                    jl.Memory(tempfile.mkdtemp(dir=shm_root), verbose=0),
                    "miss overhead, small arguments, on tmpfs (per call)",
                )
            finally:
                shutil.rmtree(shm_root, ignore_errors=True)

        # Hit with a 100 MB array argument: the key is a hash of 100 MB.
        _hit_with_big_argument(report, *both())

        # Hit returning a 100 MB array, loaded in memory then memory-mapped.
        n = 100 * 2**20 // 8
        jb, lite = both()
        jf, lf = jb.cache(make_array), lite.cache(make_array)
        jf(n)
        lf(n)
        report.compare(
            "hit returning a 100 MB array",
            best_time(lambda: jf(n), repeat=3),
            best_time(lambda: lf(n), repeat=3),
            target=2,
        )
        jb, lite = both(mmap_mode="r")
        jf, lf = jb.cache(make_array), lite.cache(make_array)
        jf(n)
        lf(n)
        report.compare(
            "hit returning a 100 MB array, mmap_mode='r'",
            best_time_auto(lambda: jf(n), repeat=3),
            best_time_auto(lambda: lf(n), repeat=3),
            note="issue: about 1 ms",
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
