"""Timing helpers and the row every benchmark case reports.

A benchmark module ``benchmarks/bench_<area>.py`` defines ``run(report)`` and
calls ``report.compare(...)`` once per case, timing joblib and joblite in the
same process run and, where the case has one, a physical limit (a raw write,
readinto or memcpy, plain processes) measured in the same run:

- speed-up = joblib's time / joblite's (higher is better);
- vs limit = joblite's time / the limit's time (1.00 is at the limit; lower is
  better, below 1.00 joblite beats the reference).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

HEADER = (
    "speed-up = joblib's time / joblite's time (higher is better)\n"
    "vs limit = joblite's time / the limit's time (1.00 is at the limit, lower is better);\n"
    "  the limit is the physical reference named under the row (a raw write, readinto,\n"
    "  memcpy, plain processes), timed in the same run\n"
    "[disk] rows use a directory in the working directory, [tmpfs] rows /dev/shm;\n"
    "  file rows run on a warm page cache unless the row says cold"
)
TMPFS = "/dev/shm"


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
    """One case: both libraries' wall times and, where there is one, the limit's.

    >>> Row("io", "load", joblib_s=2.0, joblite_s=1.0, limit_s=0.8).vs_limit
    1.25
    """

    area: str
    case: str
    joblib_s: float
    joblite_s: float
    limit_s: float | None = None
    limit: str = ""  # what the limit is, e.g. "one readinto of the same bytes"
    where: str = ""  # "disk" or "tmpfs" for rows that touch files, else ""
    target: float | None = None  # the speed-up target (≥)
    limit_target: float | None = None  # the vs-limit target (≤)
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.case} [{self.where}]" if self.where else self.case

    @property
    def speedup(self) -> float:
        return _ratio(self.joblib_s, self.joblite_s)

    @property
    def vs_limit(self) -> float | None:
        """joblite's time / the limit's: 1.00 is at the limit."""
        return None if self.limit_s is None else _ratio(self.joblite_s, self.limit_s)

    @property
    def limit_speedup(self) -> float | None:
        """The speed-up over joblib that running at the limit would give."""
        return None if self.limit_s is None else _ratio(self.joblib_s, self.limit_s)

    @property
    def misses(self) -> list[str]:
        """The targets this row misses, in words (empty when it meets all it has)."""
        missed = []
        if self.target is not None and self.speedup < self.target:
            missed.append(f"speed-up ≥{self.target:g}×")
        vs_limit = self.vs_limit
        if self.limit_target is not None and vs_limit is not None and vs_limit > self.limit_target:
            missed.append(f"vs limit ≤{self.limit_target:g}")
        return missed

    @property
    def targets(self) -> str:
        parts = []
        if self.target is not None:
            parts.append(f"≥{self.target:g}×")
        if self.limit_target is not None:
            parts.append(f"limit ≤{self.limit_target:g}")
        return ", ".join(parts)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("inf")


def format_row(row: Row) -> str:
    """The row as one line of the table (the limit's name and the note go below it)."""
    limit = "" if row.limit_s is None else format_seconds(row.limit_s)
    vs_limit = "" if row.vs_limit is None else f"{row.vs_limit:.2f}"
    verdict = ""
    if row.targets:
        verdict = f"  target {row.targets}: " + ("MISSES" if row.misses else "meets")
    line = (
        f"  {row.label:<62} {format_seconds(row.joblib_s)} {format_seconds(row.joblite_s)}"
        f" {row.speedup:8.2f}× {limit:>11} {vs_limit:>8}{verdict}"
    )
    return line.rstrip()


TABLE_HEADER = (
    f"  {'case':<62} {'joblib':>11} {'joblite':>11} {'speed-up':>9} {'limit':>11} {'vs limit':>8}"
)


@dataclass
class Report:
    area: str = ""
    quick: bool = False  # smaller sizes and fewer rounds: a smoke test, not figures
    rows: list[Row] = field(default_factory=list)

    def compare(
        self,
        case: str,
        joblib_s: float,
        joblite_s: float,
        *,
        limit_s: float | None = None,
        limit: str = "",
        where: str = "",
        target: float | None = None,
        limit_target: float | None = None,
        note: str = "",
    ) -> Row:
        """Record and print one case: both wall times, the limit's, and the issue's targets."""
        row = Row(
            self.area, case, joblib_s, joblite_s, limit_s, limit, where, target, limit_target, note
        )
        self.rows.append(row)
        print(format_row(row), flush=True)
        below = [f"limit: {limit}"] if limit else []
        below += [note] if note else []
        for line in below:
            print(f"      {line}", flush=True)
        return row


def storage_places() -> list[tuple[str, str]]:
    """``(where, parent directory)`` for the file rows: the disk, and tmpfs if there is one."""
    places = [("disk", os.getcwd())]
    if os.path.isdir(TMPFS) and os.access(TMPFS, os.W_OK):
        places.append(("tmpfs", TMPFS))
    return places


def peak_rss() -> int:
    """This process' peak resident set size in bytes.

    Linux' VmHWM, not ``ru_maxrss``: a child started with fork + exec inherits
    its parent's ``ru_maxrss`` (a 447 MB parent made a 30 MB child report
    447 MB), while VmHWM starts afresh with the new program.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
