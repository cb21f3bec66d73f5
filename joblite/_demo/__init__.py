"""``python -m joblite demo``: a small real workload through every module.

Each step is a module with a ``run(workdir, size)`` that prints what it does
and how long it took; the steps share one temporary directory, removed at the
end. ``size="small"`` runs the same code on data small enough for a test.

Example::

    python -m joblite demo --steps hashing,memory --size small
"""

from __future__ import annotations

import importlib
import tempfile
import time
from pathlib import Path

from ._size import SIZES, Size

# step name -> module with a ``run(workdir: Path, size: Size) -> None``
STEPS: dict[str, str] = {
    "hashing": "joblite._demo._hashing",
    "persistence": "joblite._demo._persistence",
    "memory": "joblite._demo._memory",
    "parallel": "joblite._demo._parallel",
    "cluster": "joblite._demo._cluster",
}

__all__ = ["SIZES", "STEPS", "Size", "run_demo"]


def run_demo(steps: str | None = None, size: str = "full") -> None:
    """Run the demo steps (all, or the comma-separated ``steps``) at ``size``.

    Raises ``SystemExit`` naming the option for an unknown step or size.
    """
    if size not in SIZES:
        raise SystemExit(f"--size: unknown size {size!r}; choose from {list(SIZES)}")
    chosen = list(STEPS) if steps is None else [s.strip() for s in steps.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in STEPS]
    if unknown:
        raise SystemExit(f"--steps: unknown step(s) {unknown}; choose from {list(STEPS)}")
    with tempfile.TemporaryDirectory(prefix="joblite-demo-") as tmp:
        for name in chosen:
            print(f"[{name}]")
            start = time.perf_counter()
            importlib.import_module(STEPS[name]).run(Path(tmp), SIZES[size])
            print(f"  step took {time.perf_counter() - start:.2f} s\n")
    print("demo finished: all steps ran and checked their results.")
