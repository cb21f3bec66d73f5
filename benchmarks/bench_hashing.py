"""Hashing: joblite.hash vs joblib.hash on the issue's cases."""

from __future__ import annotations

from benchmarks._harness import Report, best_time, best_time_auto


def run(report: Report) -> None:
    import joblib
    import numpy as np

    import joblite

    small_cases = {
        "an int": 42,
        "small call args (int, str20, 3-key dict, 10-int list)": (
            42,
            "abcdefghijklmnopqrst",
            {"a": 1, "b": 2.5, "c": "x"},
            list(range(10)),
        ),
        "kwargs-like dict of 20 str keys": {f"param_{i}": i * 1.5 for i in range(20)},
    }
    for name, obj in small_cases.items():
        report.compare(
            f"hash {name}",
            best_time_auto(lambda obj=obj: joblib.hash(obj)),
            best_time_auto(lambda obj=obj: joblite.hash(obj)),
            target=8 if name != "kwargs-like dict of 20 str keys" else None,
        )

    big = np.random.default_rng(0).standard_normal(2**27)  # 1 GiB float64
    joblib_s = best_time(lambda: joblib.hash(big), repeat=2)
    joblite_s = best_time(lambda: joblite.hash(big), repeat=5)
    report.compare(
        "hash a 1 GiB float64 array",
        joblib_s,
        joblite_s,
        target=16,
        note=f"joblite {big.nbytes / joblite_s / 1e9:.1f} GB/s (target ≥ 10 GB/s), "
        f"joblib {big.nbytes / joblib_s / 1e9:.2f} GB/s",
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
