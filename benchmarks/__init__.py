"""Side-by-side benchmarks of joblite against joblib (``python -m benchmarks``)."""
