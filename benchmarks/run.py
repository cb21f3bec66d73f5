"""Run the benchmark suite: ``python -m benchmarks [--only hashing,persistence]``."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/run.py` as well as `python -m benchmarks`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._harness import Report, machine_description

AREAS = ["hashing", "persistence", "parallel", "memory", "scaling"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--only",
        default=",".join(AREAS),
        help=f"comma-separated areas (default: {','.join(AREAS)})",
    )
    args = parser.parse_args(argv)
    areas = [a.strip() for a in args.only.split(",") if a.strip()]
    unknown = sorted(set(areas) - set(AREAS))
    if unknown:
        parser.error(f"--only: unknown area(s) {unknown}; choose from {AREAS}")
    print(f"machine: {machine_description()}")
    print("speed-up = joblib's time / joblite's time (higher is better)\n")
    rows = []
    for area in areas:
        module = importlib.import_module(f"benchmarks.bench_{area}")
        report = Report(area)
        print(f"[{area}]", flush=True)
        start = time.perf_counter()
        module.run(report)
        print(f"  ({time.perf_counter() - start:.0f} s)\n", flush=True)
        rows.extend(report.rows)
    missed = [r for r in rows if r.target is not None and r.ratio < r.target]
    met = len(rows) - len(missed)
    print(f"{len(rows)} cases: {met} meet their target or have none, {len(missed)} miss it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
