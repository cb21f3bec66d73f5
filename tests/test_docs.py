"""What the documentation tells users to do works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_joblib_stand_in_recipe_gives_joblite_everywhere() -> None:
    page = (DOCS / "joblib.md").read_text()
    section = page.split("## Trying joblite under code that imports joblib")[1]
    recipe = re.findall(r"```python\n(.*?)```", section, re.DOTALL)[0]
    checks = (
        "import joblib, joblib.parallel, joblib.memory\n"
        "from joblib.parallel import Parallel, parallel_config\n"
        "from joblib.memory import Memory\n"
        "from joblib import logger\n"
        "assert Parallel is joblite.Parallel and Memory is joblite.Memory\n"
        "assert parallel_config is joblite.parallel_config and logger is joblite.logger\n"
        "assert joblib.parallel is joblite.parallel\n"
        "from sklearn.model_selection import cross_val_score\n"
        "from sklearn.tree import DecisionTreeClassifier\n"
        "from sklearn.datasets import make_classification\n"
        "X, y = make_classification(n_samples=60, random_state=0)\n"
        "with parallel_config(backend='threading'):\n"
        "    print(len(cross_val_score(DecisionTreeClassifier(), X, y, cv=3, n_jobs=2)))\n"
        "import sys; assert sys.modules['joblib'] is joblite\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", recipe + checks],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"
