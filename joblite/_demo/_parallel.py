"""The Parallel step of ``python -m joblite demo``: one workload, three ways."""

from __future__ import annotations

import pathlib
import time
from typing import Any

from ._size import Size


def _simulate(seed: int, steps: int) -> float:
    """A pure-Python random walk: CPU-bound work the GIL serializes on threads."""
    import random

    rng = random.Random(seed)
    position = 0.0
    for _ in range(steps):
        position += rng.random() - 0.5
    return position


def _column_stats(matrix: Any, column: int) -> float:
    """Reads one column of a large shared array (memory-mapped in process workers)."""
    return float(matrix[:, column].std())


def _timed(call: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = call()
    return value, time.perf_counter() - start


def run(workdir: pathlib.Path, size: Size) -> None:
    """Run CPU-bound tasks as a loop, on threads and on processes; share a big array."""
    import numpy as np

    from joblite.parallel import Parallel, cpu_count, delayed

    n_tasks = size.tasks
    steps = size.walk_steps
    workers = min(cpu_count(), 4)
    print(f"  {n_tasks} CPU-bound tasks, {workers} workers ({cpu_count()} CPUs usable)")
    loop, loop_s = _timed(lambda: [_simulate(seed, steps) for seed in range(n_tasks)])
    print(f"  plain loop               {loop_s * 1e3:8.1f} ms")
    threads, threads_s = _timed(
        lambda: Parallel(n_jobs=workers, backend="threading")(
            delayed(_simulate)(seed, steps) for seed in range(n_tasks)
        )
    )
    print(f"  threads                  {threads_s * 1e3:8.1f} ms  (GIL-bound: no speed-up)")
    with Parallel(n_jobs=workers, backend="loky") as parallel:
        _, cold_s = _timed(
            lambda: parallel(delayed(_simulate)(seed, steps) for seed in range(n_tasks))
        )
        processes, warm_s = _timed(
            lambda: parallel(delayed(_simulate)(seed, steps) for seed in range(n_tasks))
        )
        print(f"  processes, first call    {cold_s * 1e3:8.1f} ms  (starts the workers)")
        print(
            f"  processes, warm pool     {warm_s * 1e3:8.1f} ms  ({loop_s / warm_s:.1f}x the loop)"
        )
        assert loop == threads == processes

        matrix = np.random.default_rng(0).random((size.shared_rows, 6_250))  # 100 MB at full size
        stds, share_s = _timed(
            lambda: parallel(delayed(_column_stats)(matrix, c) for c in range(0, 6_250, 250))
        )
        print(
            f"  25 tasks sharing one {matrix.nbytes / 2**20:.1f} MB array "
            f"(memory-mapped once) {share_s * 1e3:8.1f} ms"
        )
        assert np.allclose(stds, matrix[:, ::250].std(axis=0))

    def report(done: int, total: int | None) -> None:
        if done == total:
            print(f"  progress callback: {done}/{total} tasks done")

    collected = Parallel(n_jobs=2, backend="threading", on_error="collect", progress=report)(
        delayed(int)(text) for text in ["1", "2", "three", "4"]
    )
    print(f"  on_error='collect' keeps going: {collected!r}")
