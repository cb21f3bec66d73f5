"""One library's ``return_as="generator"`` call over many tasks, in a fresh interpreter.

``python -m benchmarks._generator_case joblib|joblite N_TASKS`` consumes the
generator of ``N_TASKS`` trivial tasks on 2 processes and prints, as JSON, the
wall time and the caller's peak RSS before and after the call, so
a caller that holds every pending task or result shows as growth.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from benchmarks._harness import peak_rss


def trivial(x: int) -> int:
    return x


def measure(library: str, n_tasks: int) -> dict[str, float]:
    lib: Any
    if library == "joblib":
        import joblib as lib
    else:
        import joblite.parallel as lib
    lib.Parallel(n_jobs=2)(lib.delayed(trivial)(i) for i in range(4))  # start the workers
    before = peak_rss()
    start = time.perf_counter()
    total = 0
    results = lib.Parallel(n_jobs=2, return_as="generator")(
        lib.delayed(trivial)(i) for i in range(n_tasks)
    )
    for value in results:
        total += value
    seconds = time.perf_counter() - start
    if total != n_tasks * (n_tasks - 1) // 2:
        raise AssertionError(f"{library}: wrong sum of results {total}")
    return {"seconds": seconds, "peak_before": before, "peak": peak_rss()}


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]))))
