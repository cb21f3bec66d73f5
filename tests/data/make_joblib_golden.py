"""Write the joblib golden files with the real joblib 1.6 (run by hand, once).

    python tests/data/make_joblib_golden.py

``tests/persistence/test_joblib_format.py`` checks that joblite loads every
one of them natively (joblib not imported) to ``expected_value()``.
"""

from __future__ import annotations

import gzip
import pathlib
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
# file name -> joblib.dump's compress argument
GOLDEN: dict[str, object] = {
    "joblib_1.6.pkl": 0,
    "joblib_1.6_zlib.pkl": ("zlib", 3),
    "joblib_1.6_gzip.pkl": ("gzip", 3),
    "joblib_1.6_bz2.pkl": ("bz2", 3),
    "joblib_1.6_lzma.pkl": ("lzma", 3),
    "joblib_1.6_xz.pkl": ("xz", 3),
    "joblib_1.6_lz4.pkl": ("lz4", 3),
}
# An uncompressed joblib file compressed afterwards with gzip, as users do by hand.
EXTERNAL_GZIP = "joblib_1.6_external.pkl.gz"


def expected_value() -> dict[str, Any]:
    """The object in every joblib golden file (builtins and numpy only)."""
    return {
        "name": "joblib golden",
        "list": [1, 2.5, "three", None],
        "float64": np.linspace(0.0, 1.0, 7),
        "int32_fortran": np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
        "big_endian": np.arange(5, dtype=">i4"),
        "structured": np.array(
            [(1, 2.5, b"ab"), (3, 4.5, b"cd")], dtype=[("id", "<i8"), ("x", "<f4"), ("tag", "S2")]
        ),
        "object": np.array(["a", 1, None], dtype=object),
        "zero_d": np.array(42.0),
        "empty": np.empty((0, 3), dtype=np.float32),
    }


def main() -> None:
    import joblib

    assert joblib.__version__ == "1.6.0", joblib.__version__
    for name, compress in GOLDEN.items():
        joblib.dump(expected_value(), HERE / name, compress=compress)
        print(f"wrote {name} ({(HERE / name).stat().st_size} bytes)")
    raw = (HERE / "joblib_1.6.pkl").read_bytes()
    (HERE / EXTERNAL_GZIP).write_bytes(gzip.compress(raw, mtime=0))
    print(f"wrote {EXTERNAL_GZIP}")


if __name__ == "__main__":
    main()
