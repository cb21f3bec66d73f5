"""A long job that picks up where it stopped: each finished item is in the cache.

Interrupt it (Ctrl-C, a killed batch job, a reboot) and run it again: the
items finished before the interruption load from the cache, only the rest are
computed. Cache writes are atomic, so an item interrupted mid-computation
leaves nothing behind and is simply computed again.

    python examples/resume_job.py [CACHE_DIR] [--stop-after N]

``--stop-after N`` interrupts the run during item N, as a Ctrl-C would;
``JOBLITE_EXAMPLE_SIZE=small`` makes the items quick.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from joblite import Memory

SMALL = os.environ.get("JOBLITE_EXAMPLE_SIZE") == "small"
N_ITEMS = 8
STOP_AFTER: int | None = None


def simulate(seed: int, steps: int) -> float:
    """One item of the job: a random walk's final distance from its start."""
    if seed == STOP_AFTER:
        raise KeyboardInterrupt  # what Ctrl-C does in the middle of an item
    walk = np.random.default_rng(seed).standard_normal(steps).cumsum()
    return float(abs(walk[-1]))


def main() -> int:
    global STOP_AFTER
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache_dir", nargs="?", default="resume-cache")
    parser.add_argument("--stop-after", type=int, default=None, metavar="N")
    args = parser.parse_args()
    STOP_AFTER = args.stop_after
    steps = 10_000 if SMALL else 5_000_000

    cached_simulate = Memory(args.cache_dir, verbose=0).cache(simulate)
    from_cache = 0
    results = []
    try:
        for seed in range(N_ITEMS):
            from_cache += cached_simulate.check_call_in_cache(seed, steps)
            results.append(cached_simulate(seed, steps))
            print(f"item {seed}: {results[-1]:.1f}", flush=True)
    except KeyboardInterrupt:
        print(f"interrupted after {len(results)} of {N_ITEMS} items; run again to resume")
        return 130
    print(f"done: {from_cache} items loaded from the cache, {N_ITEMS - from_cache} computed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
