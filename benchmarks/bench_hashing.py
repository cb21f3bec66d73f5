"""Hashing: joblite.hash vs joblib.hash on the issue's cases.

The limit column is the floor of a hash: for small arguments, pickling the
object plus xxh3_128 of the pickle (joblite must at least walk the object and
hash its bytes); for a big array, xxh3_128 of its buffer alone.
"""

from __future__ import annotations

import pickle

from benchmarks._harness import Report, best_time, best_time_auto

PICKLE_XXH3 = "pickle.dumps + xxh3_128 of the same object"
BUFFER_XXH3 = "xxh3_128 of the array's buffer"


def run(report: Report) -> None:
    import joblib
    import numpy as np
    import xxhash

    import joblite

    small_cases = {
        "an int": (42, 8),
        "small call args (int, str20, 3-key dict, 10-int list)": (
            (42, "abcdefghijklmnopqrst", {"a": 1, "b": 2.5, "c": "x"}, list(range(10))),
            15,
        ),
        "kwargs-like dict of 20 str keys": ({f"param_{i}": i * 1.5 for i in range(20)}, None),
    }
    for name, (obj, target) in small_cases.items():
        report.compare(
            f"hash {name}",
            best_time_auto(lambda obj=obj: joblib.hash(obj)),
            best_time_auto(lambda obj=obj: joblite.hash(obj)),
            limit_s=best_time_auto(
                lambda obj=obj: xxhash.xxh3_128(pickle.dumps(obj, protocol=5)).hexdigest()
            ),
            limit=PICKLE_XXH3,
            target=target,
        )

    # 1 GiB of float64 (16 MiB with --quick).
    big = np.random.default_rng(0).standard_normal(2**21 if report.quick else 2**27)
    joblib_s = best_time(lambda: joblib.hash(big), repeat=2)
    joblite_s = best_time(lambda: joblite.hash(big), repeat=5)
    limit_s = best_time(lambda: xxhash.xxh3_128(memoryview(big).cast("B")).hexdigest(), repeat=5)
    report.compare(
        f"hash a {big.nbytes / 2**30:.3g} GiB float64 array",
        joblib_s,
        joblite_s,
        limit_s=limit_s,
        limit=BUFFER_XXH3,
        target=16,
        note=f"joblite {big.nbytes / joblite_s / 1e9:.1f} GB/s (target ≥ 10 GB/s), "
        f"joblib {big.nbytes / joblib_s / 1e9:.2f} GB/s, "
        f"limit {big.nbytes / limit_s / 1e9:.1f} GB/s",
    )

    mixed = {
        "weights": [np.ones((256, 256)) for _ in range(8)],
        "meta": [{"id": i, "tags": {"a", "b"}, "name": f"item{i}"} for i in range(2000)],
    }
    report.compare(
        "hash a model-like dict (8 arrays + 2,000 small dicts)",
        best_time_auto(lambda: joblib.hash(mixed), repeat=3),
        best_time_auto(lambda: joblite.hash(mixed), repeat=3),
    )
