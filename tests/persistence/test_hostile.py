"""Hostile and changing files: a joblite error, bounded memory, never a crash.

Scenarios that could kill the interpreter (SIGBUS) or exhaust memory run in a
subprocess, so a regression fails the test instead of taking pytest down.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap


def _run(script: str, tmp_path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_a_file_truncated_while_it_loads_is_an_error_not_a_crash(tmp_path: pathlib.Path) -> None:
    # A writer truncating the file in place at the worst moments: right after the
    # load has checked the file's size, and right after any map of it is made.
    result = _run(
        """
        import mmap, os, sys
        import numpy as np
        import joblite
        from joblite.exceptions import CorruptFileError

        path = os.path.join(sys.argv[1], "big.jl")
        joblite.dump({"a": np.arange(1_000_000.0)}, path)

        def truncate():
            os.truncate(path, os.path.getsize(path) // 2)

        real_fstat, real_mmap, calls = os.fstat, mmap.mmap, []

        def fstat(fd):
            info = real_fstat(fd)
            calls.append(fd)
            if len(calls) == 2:  # the first decides how to read; the second checks the size
                truncate()
            return info

        def mapped(*args, **kwargs):
            result = real_mmap(*args, **kwargs)
            truncate()
            return result

        os.fstat, mmap.mmap = fstat, mapped
        try:
            joblite.load(path)
        except CorruptFileError as error:
            print("CorruptFileError:", error)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "CorruptFileError: truncated" in result.stdout
