"""The hashing step of ``python -m joblite demo``: big arrays, small arguments, dicts."""

from __future__ import annotations

import time
from pathlib import Path

from ._size import Size


def run(workdir: Path, size: Size) -> None:
    """Hash a big array and many small argument tuples; check dict order is ignored."""
    import numpy as np

    import joblite

    rng = np.random.default_rng(0)
    features = rng.standard_normal((size.hash_side, size.hash_side))
    start = time.perf_counter()
    digest = joblite.hash(features)
    elapsed = time.perf_counter() - start
    print(
        f"  hash of a {features.nbytes / 2**20:.1f} MiB float64 array: {digest} "
        f"in {elapsed * 1e3:.1f} ms ({features.nbytes / elapsed / 1e9:.1f} GB/s)"
    )
    args = (42, "abcdefghijklmnopqrst", {"a": 1, "b": 2.5, "c": "x"}, list(range(10)))
    start = time.perf_counter()
    for _ in range(size.hash_calls):
        joblite.hash(args)
    per_call = (time.perf_counter() - start) / size.hash_calls
    print(f"  hash of small call arguments {args!r}: {per_call * 1e6:.1f} µs per call")
    reordered = {"c": "x", "b": 2.5, "a": 1}
    same = joblite.hash(reordered) == joblite.hash(args[2])
    print(f"  dict order does not matter: hash({reordered}) == hash({args[2]}) -> {same}")
    if not same:
        raise RuntimeError("demo check failed: equal dicts hashed differently")
