"""Regenerate the golden files of format versions 1 and 2 (run once per format version).

    python tests/data/make_golden.py

The committed outputs must never change: ``test_golden.py`` checks that
today's joblite still loads them to ``expected_value()`` (version 1) and
``expected_value_v2()`` (version 2: filtered arrays).
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
GOLDEN = {"golden_v1.jl": 0, "golden_v1_zlib.jl": ("zlib", 6)}
GOLDEN_V2 = {"golden_v2_filters.jl": ("zlib", 6)}


def expected_value() -> dict[str, Any]:
    """The object stored in every golden file (builtins and numpy only, to stay loadable)."""
    return {
        "name": "golden",
        "version": 1,
        "floats": [0.5, -1.25, float("inf")],
        "nested": {"tuple": (1, "two", b"three"), "set": {1, 2, 3}, "none": None},
        "float64": np.linspace(0.0, 1.0, 11),
        "int32_fortran": np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
        "big_endian": np.arange(5, dtype=">u2"),
        "structured": np.array(
            [(1, 2.5, b"ab"), (3, 4.5, b"cd")], dtype=[("id", "<i8"), ("x", "<f4"), ("tag", "S2")]
        ),
        "datetime64": np.array(["2024-01-01", "2024-02-29"], dtype="M8[D]"),
        "zero_d": np.array(42.0),
        "empty": np.empty((0, 4), dtype=np.float32),
        "bool": np.array([True, False, True]),
    }


def expected_value_v2() -> dict[str, Any]:
    """Arrays big enough to be filtered (version 2): delta8, shuffle4 and one unfiltered."""
    return {
        "sorted_indices": np.cumsum(np.arange(20_000) % 5),  # delta8
        "signal": np.sin(np.arange(16_384) / 500).astype(np.float32),  # shuffle4
        "small": np.arange(10, dtype=np.int16),  # too small to filter
        "text": "golden v2",
    }


def main() -> None:
    from joblite.persistence import dump, inspect

    for name, compress in [*GOLDEN.items(), *GOLDEN_V2.items()]:
        path = HERE / name
        value = expected_value_v2() if name in GOLDEN_V2 else expected_value()
        dump(value, path, compress=compress)
        manifest = inspect(path)
        (HERE / f"{name}.manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
