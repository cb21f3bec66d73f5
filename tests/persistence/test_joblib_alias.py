"""With `sys.modules["joblib"] = joblite` (joblite swapped in), joblib files still load."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest

import joblite

from .helpers import assert_same

VALUE = {"coef": np.arange(6.0).reshape(2, 3), "classes": ["a", "b"], "n": 3}


def _joblib_entries() -> dict[str, object]:
    return {k: m for k, m in sys.modules.items() if k == "joblib" or k.startswith("joblib.")}


@pytest.mark.parametrize(("compress", "mmap_mode"), [(0, None), (0, "r"), (3, None)])
def test_joblib_files_load_with_joblite_aliased_as_joblib(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, compress: int, mmap_mode: str | None
) -> None:
    path = tmp_path / "model.pkl"
    joblib.dump(VALUE, path, compress=compress)  # the real joblib, imported before the alias
    monkeypatch.setitem(sys.modules, "joblib", joblite)
    before = _joblib_entries()
    for _ in range(2):  # read natively: sys.modules is never touched
        assert_same(joblite.load(path, mmap_mode=mmap_mode), VALUE)
        with open(path, "rb") as f:
            assert_same(joblite.load(f), VALUE)
        assert _joblib_entries() == before  # the alias and every joblib.* entry put back
    assert sys.modules["joblib"] is joblite


def test_joblib_files_load_when_the_alias_came_before_any_joblib_import(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "model.pkl"
    joblib.dump(VALUE, path, compress=3)
    script = textwrap.dedent(
        f"""
        import sys
        import joblite
        sys.modules["joblib"] = joblite
        value = joblite.load({str(path)!r})
        assert value["coef"].tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], value
        assert value["classes"] == ["a", "b"] and value["n"] == 3, value
        assert sys.modules["joblib"] is joblite
        leaked = sorted(k for k in sys.modules if k.startswith("joblib."))
        assert not leaked, leaked
        import joblib
        assert joblib is joblite
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
