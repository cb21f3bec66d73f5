"""Save a trained model, look inside the file without loading it, and load it safely.

``joblite.load`` runs pickle code: a crafted file can run anything. ``inspect``
reads a file's manifest without unpickling anything, and
``load(..., allowed=[...])`` refuses every global outside your list (numpy
arrays and plain data are always allowed), raising ``UnsafeLoadError``.

    python examples/model_files.py [MODEL_FILE]

``JOBLITE_EXAMPLE_SIZE=small`` trains on a tiny data set.
"""

from __future__ import annotations

import os
import sys

from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import joblite
from joblite.exceptions import UnsafeLoadError
from joblite.persistence import format_manifest

SMALL = os.environ.get("JOBLITE_EXAMPLE_SIZE") == "small"


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "model.jlz"
    n_samples = 200 if SMALL else 100_000
    X, y = make_classification(n_samples=n_samples, n_features=20, random_state=0)
    model = LogisticRegression(max_iter=1_000).fit(X, y)

    joblite.dump(model, path, compress=True)  # zstd; atomic: never half-written
    # What is in the file, without running any of it (also: python -m joblite inspect FILE)
    print(format_manifest(joblite.inspect(path)))

    # Only LogisticRegression (and data) may be rebuilt from this file.
    loaded = joblite.load(path, allowed=["sklearn.linear_model.LogisticRegression"])
    print(f"loaded {type(loaded).__name__}: accuracy {loaded.score(X, y):.3f}")

    try:
        joblite.load(path, allowed=[])  # data only: the model's class is refused
    except UnsafeLoadError as error:
        print(f"allowed=[] refuses it: {error}")


if __name__ == "__main__":
    main()
