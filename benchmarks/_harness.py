"""Timing helpers shared by the benchmark modules.

A benchmark module ``benchmarks/bench_<area>.py`` defines ``run(report)`` and
calls ``report.compare(...)`` once per case, timing joblib and joblite in the
same process run. Ratios are joblib's time / joblite's (higher is better).
"""

from __future__ import annotations

import gc
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def best_time(fn: Callable[[], object], *, repeat: int = 5, number: int = 1) -> float:
    """Best wall time of ``number`` calls of ``fn``, over ``repeat`` rounds, per call."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def auto_number(fn: Callable[[], object], *, budget: float = 0.2) -> int:
    """How many calls of ``fn`` fit in ``budget`` seconds (at least 1)."""
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    return max(1, int(budget / max(once, 1e-9)))


def best_time_auto(fn: Callable[[], object], *, repeat: int = 5, budget: float = 0.2) -> float:
    """:func:`best_time` with ``number`` chosen so each round takes about ``budget`` s."""
    return best_time(fn, repeat=repeat, number=auto_number(fn, budget=budget))


def format_seconds(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:8.1f} ms"
    return f"{seconds:8.2f} s "


@dataclass
class Row:
    area: str
    case: str
    joblib_s: float
    joblite_s: float
    target: float | None
    note: str

    @property
    def ratio(self) -> float:
        return self.joblib_s / self.joblite_s if self.joblite_s > 0 else float("inf")


@dataclass
class Report:
    area: str = ""
    rows: list[Row] = field(default_factory=list)

    def compare(
        self,
        case: str,
        joblib_s: float,
        joblite_s: float,
        *,
        target: float | None = None,
        note: str = "",
    ) -> Row:
        """Record one case: both wall times, the ratio and the issue's target ratio."""
        row = Row(self.area, case, joblib_s, joblite_s, target, note)
        self.rows.append(row)
        verdict = ""
        if target is not None:
            verdict = "meets" if row.ratio >= target else "MISSES"
            verdict = f"  target ≥{target:g}× {verdict}"
        print(
            f"  {case:<58} joblib {format_seconds(joblib_s)}  joblite "
            f"{format_seconds(joblite_s)}  speed-up {row.ratio:7.2f}×{verdict}"
            + (f"  ({note})" if note else ""),
            flush=True,
        )
        return row


def machine_description() -> str:
    try:
        import joblib

        joblib_version = joblib.__version__
    except ImportError:
        joblib_version = "not installed"
    import joblite

    cpus = os.cpu_count()
    return (
        f"{platform.platform()} | {platform.processor() or platform.machine()} | "
        f"{cpus} CPUs | Python {platform.python_version()} | "
        f"joblite {joblite.__version__} | joblib {joblib_version}"
    )
