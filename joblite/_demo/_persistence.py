"""Demo step for ``python -m joblite demo``: dump, inspect and load a model-like object.

Printing is this module's job (it is a demo, not library code).
"""

from __future__ import annotations

import pathlib
import time
from typing import Any

from ._size import Size


def _model(size: Size) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    return {
        "coef": np.round(rng.normal(size=(size.model_rows, 500)), 3),  # 8 MB at full size
        "intercept": np.zeros(500),
        "classes": np.arange(500, dtype=np.int32),
        "vocabulary": {f"token_{i}": i for i in range(size.vocabulary)},
        "params": {"alpha": 0.1, "fit_intercept": True, "solver": "lbfgs"},
    }


def _same(a: Any, b: Any) -> bool:
    import numpy as np

    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return bool(a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b))
    return bool(a == b)


def run(workdir: pathlib.Path, size: Size) -> None:
    """Dump a model uncompressed and with ``compress=True``; inspect; mmap-load; check."""
    from joblite.persistence import dump, format_manifest, inspect, load

    model = _model(size)
    paths = {"uncompressed": workdir / "model.jl", "compress=True": workdir / "model.zst.jl"}
    for label, path in paths.items():
        start = time.perf_counter()
        dump(model, path, compress=label == "compress=True")
        elapsed = time.perf_counter() - start
        nbytes = path.stat().st_size
        print(f"  dump {label:<14} {nbytes / 1e6:7.2f} MB in {elapsed * 1e3:7.1f} ms")
    print()
    print(format_manifest(inspect(paths["compress=True"]), max_arrays=5))
    print()
    start = time.perf_counter()
    loaded: Any = load(paths["uncompressed"], mmap_mode="r")
    elapsed = time.perf_counter() - start
    kind = type(loaded["coef"]).__name__
    print(f"  load mmap_mode='r' in {elapsed * 1e3:.1f} ms: coef is a read-only {kind}")
    if not _same(loaded, model) or not _same(load(paths["compress=True"]), model):
        raise AssertionError("the loaded model differs from the dumped one")
    print("  loaded values equal the dumped ones")
