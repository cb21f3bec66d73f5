"""Cache the expensive step of a scikit-learn pipeline with joblite's Memory.

A grid search fits the whole pipeline once per parameter value and fold. With
``Pipeline(memory=...)`` the feature step (here a PCA) is fitted once per fold
and loaded from the cache for the other parameter values; run the script a
second time and every feature step is loaded. scikit-learn takes any object
with joblib's ``Memory.cache``, so joblite's ``Memory`` goes in unchanged.

    python examples/sklearn_pipeline.py [CACHE_DIR]

With ``verbose=1`` the cache reports each computation as joblib does
(``[Memory] Calling ...``, the call, its duration); the logging set-up below
shows INFO records, so the lines go through it (to stderr) instead of being
printed. ``JOBLITE_EXAMPLE_SIZE=small`` runs it on a tiny data set.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from joblite import Memory

SMALL = os.environ.get("JOBLITE_EXAMPLE_SIZE") == "small"


def main() -> None:
    cache_dir = sys.argv[1] if len(sys.argv) > 1 else "sklearn-cache"
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    n_samples, n_features = (300, 40) if SMALL else (20_000, 400)
    X, y = make_classification(
        n_samples=n_samples, n_features=n_features, n_informative=10, random_state=0
    )

    memory = Memory(cache_dir, verbose=1)
    pipeline = Pipeline(
        [
            ("reduce", PCA(n_components=20, random_state=0)),
            ("classify", LogisticRegression(max_iter=1_000)),
        ],
        memory=memory,
    )
    search = GridSearchCV(pipeline, {"classify__C": [0.01, 0.1, 1.0, 10.0]}, cv=3)

    start = time.perf_counter()
    search.fit(X, y)
    elapsed = time.perf_counter() - start
    print(f"grid search over {len(search.cv_results_['params'])} values of C, 3 folds:")
    print(f"  best C = {search.best_params_['classify__C']}, accuracy {search.best_score_:.3f}")
    print(f"  took {elapsed:.2f} s (cache in {cache_dir!r}: run again to load the PCA fits)")


if __name__ == "__main__":
    main()
