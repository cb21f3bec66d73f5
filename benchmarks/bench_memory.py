"""Memory: cache hits and misses, side by side with joblib.Memory.

Cases follow the Memory issue's targets: a hit with small arguments, the
overhead of a miss, a hit whose argument is a 100 MB array (hashing
dominates), and a hit returning a 100 MB array (loaded, or memory-mapped).
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
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

        # Miss overhead: every call has new arguments, the function is instant.
        def misses(f: Callable[..., Any]) -> Callable[[], None]:
            counter = itertools.count()

            def batch() -> None:
                for _ in range(50):
                    f(next(counter), *SMALL_ARGS[1:])

            return batch

        jb, lite = both()
        report.compare(
            "miss overhead, small arguments (per call)",
            best_time(misses(jb.cache(small)), repeat=5) / 50,
            best_time(misses(lite.cache(small)), repeat=5) / 50,
            target=3,
        )

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
