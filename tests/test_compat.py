"""Code written for joblib runs on joblite unchanged: `python -m joblite run` / compat.install()."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import joblite
from joblite import compat

ROOT = pathlib.Path(__file__).resolve().parent.parent

# A script written for joblib, importing the submodules such code imports.
SCRIPT = textwrap.dedent(
    """
    import sys
    import joblib
    import joblib.numpy_pickle
    from joblib import Memory, Parallel, delayed
    from joblib.hashing import hash
    from joblib.logger import short_format_time
    from joblib.memory import MemorizedResult, register_store_backend
    from joblib.numpy_pickle import NumpyArrayWrapper, dump, load
    from joblib.parallel import cpu_count, effective_n_jobs, parallel_config

    import numpy as np

    squares = Parallel(n_jobs=2, backend="threading")(delayed(pow)(i, 2) for i in range(5))
    assert squares == [0, 1, 4, 9, 16], squares
    memory = Memory(sys.argv[1], verbose=0)
    double = memory.cache(np.multiply)
    assert double(np.arange(3), 2).tolist() == [0, 2, 4]
    assert double.check_call_in_cache(np.arange(3), 2)
    dump({"a": np.arange(3)}, sys.argv[1] + "/x.pkl")
    assert load(sys.argv[1] + "/x.pkl")["a"].tolist() == [0, 1, 2]
    assert joblib.numpy_pickle.load is load and hash([1]) == joblib.hash([1])
    with parallel_config(n_jobs=2):
        assert effective_n_jobs() == 2
    print(joblib.__name__, Parallel.__module__, dump.__module__, hash.__module__, cpu_count() > 0)
    """
)


def _check_ran_on_joblite(out: subprocess.CompletedProcess[str]) -> None:
    assert out.returncode == 0, out.stderr
    names = out.stdout.split()
    assert len(names) == 5, out.stdout
    assert all(name.startswith("joblite") for name in names[:4]), names
    assert names[4] == "True"


def _python(args: list[str], tmp_path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """Run this Python with ``args`` and the script's one argument, ``tmp_path``, from there."""
    return subprocess.run(
        [sys.executable, *args, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_python_m_joblite_run_runs_a_joblib_script_on_joblite(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "uses_joblib.py"
    script.write_text(SCRIPT)
    _check_ran_on_joblite(_python(["-m", "joblite", "run", str(script)], tmp_path))


def test_install_makes_import_joblib_give_joblite(tmp_path: pathlib.Path) -> None:
    script = "import sys, joblite.compat\njoblite.compat.install()\n" + SCRIPT
    _check_ran_on_joblite(_python(["-c", script], tmp_path))


def test_uninstall_puts_back_what_was_there(monkeypatch: pytest.MonkeyPatch) -> None:
    import joblib as real_joblib

    for name in compat.ALIASES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "joblib", real_joblib)
    compat.install()
    try:
        import joblib

        assert joblib.__name__ == "joblite.compat._joblib"
        assert joblib.Parallel is joblite.Parallel
        assert sys.modules["joblib.parallel"] is joblite.parallel
    finally:
        compat.uninstall()
    assert sys.modules["joblib"] is real_joblib
    assert "joblib.numpy_pickle" not in sys.modules  # was not imported before


def test_run_names_a_missing_script(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError, match="script"):
        compat.run_path(str(tmp_path / "missing.py"))


def test_run_passes_options_to_the_script_and_returns_its_exit_status(
    tmp_path: pathlib.Path,
) -> None:
    script = tmp_path / "exits.py"
    script.write_text("import sys, joblib\nprint(sys.argv[1:], joblib.__name__)\nsys.exit(3)\n")
    out = subprocess.run(
        [sys.executable, "-m", "joblite", "run", str(script), "--help", "-x"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 3, out.stderr
    assert out.stdout.split() == ["['--help',", "'-x']", "joblite.compat._joblib"]
