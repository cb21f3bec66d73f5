"""``python -m joblite demo``: a small real workload through every module.

Each step is a function ``run(workdir)`` that prints what it does and how
long it took; the steps share one temporary directory, removed at the end.
"""

from __future__ import annotations

import importlib
import tempfile
import time
from pathlib import Path

# step name -> module with a ``run(workdir: Path) -> None``
STEPS: dict[str, str] = {
    "hashing": "joblite._demo",
    "persistence": "joblite._demo_persistence",
    "memory": "joblite._demo_memory",
    "parallel": "joblite._demo_parallel",
}


def _run_hashing(workdir: Path) -> None:
    import numpy as np

    import joblite

    rng = np.random.default_rng(0)
    features = rng.standard_normal((4096, 4096))  # 128 MiB
    start = time.perf_counter()
    digest = joblite.hash(features)
    elapsed = time.perf_counter() - start
    print(
        f"  hash of a {features.nbytes / 2**20:.0f} MiB float64 array: {digest} "
        f"in {elapsed * 1e3:.1f} ms ({features.nbytes / elapsed / 1e9:.1f} GB/s)"
    )
    args = (42, "abcdefghijklmnopqrst", {"a": 1, "b": 2.5, "c": "x"}, list(range(10)))
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        joblite.hash(args)
    per_call = (time.perf_counter() - start) / n
    print(f"  hash of small call arguments {args!r}: {per_call * 1e6:.1f} µs per call")
    reordered = {"c": "x", "b": 2.5, "a": 1}
    same = joblite.hash(reordered) == joblite.hash(args[2])
    print(f"  dict order does not matter: hash({reordered}) == hash({args[2]}) -> {same}")
    if not same:
        raise RuntimeError("demo check failed: equal dicts hashed differently")


def run(workdir: Path) -> None:
    _run_hashing(workdir)


def run_demo(steps: str | None = None) -> None:
    """Run the demo steps (all, or the comma-separated ``steps``)."""
    chosen = list(STEPS) if steps is None else [s.strip() for s in steps.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in STEPS]
    if unknown:
        raise SystemExit(f"--steps: unknown step(s) {unknown}; choose from {list(STEPS)}")
    with tempfile.TemporaryDirectory(prefix="joblite-demo-") as tmp:
        for name in chosen:
            print(f"[{name}]")
            start = time.perf_counter()
            importlib.import_module(STEPS[name]).run(Path(tmp))
            print(f"  step took {time.perf_counter() - start:.2f} s\n")
    print("demo finished: all steps ran and checked their results.")
