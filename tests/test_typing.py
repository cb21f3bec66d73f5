"""Users' type checkers see joblite's hints (PEP 561): a user file checked with mypy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

USER_CODE = """\
from pathlib import Path

import numpy as np

import joblite
from joblite import Memory, Parallel, delayed, dump, load, parallel_config


def square(x: int) -> int:
    return x * x


def main(workdir: Path) -> None:
    with parallel_config(backend="threading", n_jobs=2):
        squares = Parallel()(delayed(square)(i) for i in range(4))
    print(squares)
    memory = Memory(workdir / "cache", verbose=0)
    cached_square = memory.cache(square)
    print(cached_square(3))
    digest: str = joblite.hash({"a": np.arange(3)})
    written: list[str] = dump({"digest": digest}, workdir / "model.jl", compress=3)
    print(written, load(workdir / "model.jl", mmap_mode="r", allowed=[]))
"""

# each line mypy must reject, with the words its message has to contain
MISUSES = {
    "count: int = joblite.hash([1, 2])": "incompatible types in assignment",
    "joblite.dump({'a': 1}, 42)": 'argument 2 to "dump" has incompatible type "int"',
}


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    user_file = tmp_path / "user_code.py"
    user_file.write_text(source)
    # joblite is found through sys.path, as an installed package is: mypy then
    # reads its hints only if it carries the py.typed marker.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MYPYPATH", None)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path), str(user_file)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_mypy_passes_user_code_and_flags_its_misuse(tmp_path: Path) -> None:
    # One mypy run (about 8 s): the correct code must give no error, each misuse one.
    misuse = "\n".join(f"    {line}" for line in MISUSES)
    source = f"{USER_CODE}\n\ndef misuse() -> None:\n{misuse}\n"
    first_misuse_line = USER_CODE.count("\n") + 4
    result = _mypy(tmp_path, source)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    lines = [int(error.split(":")[1]) for error in errors]
    assert lines == list(range(first_misuse_line, first_misuse_line + len(MISUSES))), (
        result.stdout + result.stderr
    )
    for error, words in zip(errors, MISUSES.values(), strict=True):
        assert words in error.lower()
