"""The scripts in examples/ run, at a small size, and do what their docstrings say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(
    name: str, *args: str, cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JOBLITE_EXAMPLE_SIZE": "small"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_every_example_is_tested_and_shown_on_the_site() -> None:
    tested = {name for name in globals() if name.startswith("test_")}
    page = (EXAMPLES.parent / "docs" / "examples.md").read_text()
    for script in EXAMPLES.glob("*.py"):
        assert f"test_{script.stem}" in tested, f"{script.name} has no test"
        assert f'--8<-- "{script.name}"' in page, f"{script.name} is not on docs/examples.md"


@pytest.mark.slow
def test_sklearn_pipeline(tmp_path: Path) -> None:
    first = run_example("sklearn_pipeline.py", "cache", cwd=tmp_path)
    assert "grid search over 4 values of C, 3 folds" in first.stdout
    # the PCA is fitted once per fold and once on all the data, not once per C value
    assert first.stderr.count("[Memory] Calling") == 4
    second = run_example("sklearn_pipeline.py", "cache", cwd=tmp_path)
    assert second.stderr.count("[Memory] Calling") == 0  # every PCA fit loaded from the cache
    assert second.stdout.splitlines()[1] == first.stdout.splitlines()[1]


def test_image_batches(tmp_path: Path) -> None:
    result = run_example("image_batches.py", cwd=tmp_path)
    assert "processed 16 images in 4 batches on 2 worker threads" in result.stdout
    assert "4/4" in result.stderr  # the progress bar reached the end


def test_resume_job(tmp_path: Path) -> None:
    interrupted = run_example(
        "resume_job.py", "cache", "--stop-after", "3", cwd=tmp_path, check=False
    )
    assert interrupted.returncode == 130
    assert "interrupted after 3 of 8 items" in interrupted.stdout
    resumed = run_example("resume_job.py", "cache", cwd=tmp_path)
    assert "done: 3 items loaded from the cache, 5 computed" in resumed.stdout
    # the resumed run's results are those of an uninterrupted one
    fresh = run_example("resume_job.py", "fresh-cache", cwd=tmp_path)
    assert resumed.stdout.splitlines()[:8] == fresh.stdout.splitlines()[:8]


@pytest.mark.slow
def test_dask_cluster(tmp_path: Path) -> None:
    result = run_example("dask_cluster.py", cwd=tmp_path)
    assert "8 tasks on a dask cluster of 1 worker(s)" in result.stdout
    estimate = float(result.stdout.split("pi is about ")[1])
    assert 3.0 < estimate < 3.3


def test_model_files(tmp_path: Path) -> None:
    result = run_example("model_files.py", "model.jlz", cwd=tmp_path)
    assert "object type   sklearn.linear_model._logistic.LogisticRegression" in result.stdout
    assert "loaded LogisticRegression: accuracy" in result.stdout
    assert "allowed=[] refuses it: refusing to load global" in result.stdout
    assert (tmp_path / "model.jlz").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["model.jlz"]  # no temp file left
