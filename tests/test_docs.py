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
        "import joblite\n"
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
        "import sys; assert sys.modules['joblib'].__name__.startswith('joblite')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", recipe + checks],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"


def _documented_names() -> set[str]:
    """Names the API reference pages render: ``::: a.b.Name`` and listed members."""
    import importlib

    names: set[str] = set()
    for page in (DOCS / "api").glob("*.md"):
        text = page.read_text()
        for target in re.findall(r"^::: ([\w.]+)$", text, re.MULTILINE):
            names.add(target.rpartition(".")[2])
            try:
                module = importlib.import_module(target)
            except ModuleNotFoundError:
                continue  # a class or function
            if "members:" not in text.split(f"::: {target}")[1][:200]:
                names.update(module.__all__)  # the whole module is rendered
        names.update(re.findall(r"^ +- (\w+)$", text, re.MULTILINE))
    return names


def test_the_api_reference_renders_every_public_name() -> None:
    import joblite
    import joblite.memory
    import joblite.parallel
    import joblite.persistence

    documented = _documented_names()
    public = {
        f"{module.__name__}.{name}"
        for module in (joblite, joblite.parallel, joblite.memory, joblite.persistence)
        for name in module.__all__
        if not name.startswith("__")
        and not isinstance(getattr(module, name), type(joblite))  # modules: their own pages
    }
    # joblib's name for Store: docs/api/stores.md says it is an alias
    missing = sorted(n for n in public if n.rpartition(".")[2] not in documented)
    assert missing == ["joblite.StoreBackendBase", "joblite.memory.StoreBackendBase"]
