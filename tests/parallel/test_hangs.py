"""Calls that used to hang (issue 10): nested pools, and early ends with results in flight.

Each case runs in its own interpreter under a hard deadline, so a regression
fails here instead of hanging the suite; the deadline is far above what a
case needs (a few seconds), not a measure of speed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

DEADLINE = 30  # seconds for a whole script, interpreter exit included
ROOT = Path(__file__).resolve().parents[2]

BACKENDS = ["sequential", "threading", "loky", "multiprocessing", "dask"]
RESULTS = "[0.5, 0.5, 0.5]"
# (outer, inner) -> joblib's warning; the inner call then runs with n_jobs=1.
WARNINGS = {
    ("threading", "loky"): "Loky-backed parallel loops cannot be nested below threads, "
    "setting n_jobs=1",
    ("threading", "multiprocessing"): "Multiprocessing-backed parallel loops cannot be "
    "nested below threads, setting n_jobs=1",
    ("dask", "loky"): "Loky-backed parallel loops cannot be nested below threads, setting n_jobs=1",
    ("dask", "multiprocessing"): "Multiprocessing-backed parallel loops cannot be nested "
    "below threads, setting n_jobs=1",
    ("loky", "multiprocessing"): "Multiprocessing-backed parallel loops cannot be nested, "
    "below loky, setting n_jobs=1",
    ("multiprocessing", "loky"): "Loky-backed parallel loops cannot be called in a "
    "multiprocessing, setting n_jobs=1",
    ("multiprocessing", "multiprocessing"): "Multiprocessing-backed parallel loops cannot "
    "be nested, setting n_jobs=1",
}
# A worker process has no dask client (the caller's does not reach it).
NO_CLIENT = {("loky", "dask"), ("multiprocessing", "dask")}
FAST_PAIRS = [
    ("multiprocessing", "loky"),  # the one reported
    ("multiprocessing", "multiprocessing"),
    ("loky", "multiprocessing"),
    ("threading", "loky"),
    ("multiprocessing", "dask"),
]
ALL_PAIRS = [(o, i) for o in BACKENDS for i in BACKENDS]


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m args...`` from the repository; fail (not hang) past DEADLINE."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)])),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=ROOT / "tests",  # not ROOT: `-m` puts the cwd first, PYTHONPATH must win
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a hung run is killed whole
    )
    try:
        stdout, stderr = process.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{' '.join(args)} did not exit within {DEADLINE}s:\n{stdout}\n{stderr}")
    assert process.returncode == 0, f"{' '.join(args)} failed:\n{stdout}\n{stderr}"
    assert stdout.endswith("end of script\n"), stdout
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def check_nested(outer: str, inner: str) -> None:
    out = run_script("tests.parallel._nested_scenarios", outer, inner)
    lines = out.stdout.splitlines()[:-1]
    expected = "NoDaskClientError" if (outer, inner) in NO_CLIENT else RESULTS
    assert lines == [expected, expected], out.stderr
    warning = WARNINGS.get((outer, inner))
    if warning is not None:
        assert warning in out.stderr
    else:
        assert "parallel loops cannot" not in out.stderr, out.stderr


@pytest.mark.parametrize(("outer", "inner"), FAST_PAIRS)
def test_nested_call_finishes_with_joblibs_rule(outer: str, inner: str) -> None:
    check_nested(outer, inner)


@pytest.mark.slow
@pytest.mark.parametrize(("outer", "inner"), [p for p in ALL_PAIRS if p not in FAST_PAIRS])
def test_every_nested_combination_finishes(outer: str, inner: str) -> None:
    check_nested(outer, inner)


LOKY_POOL_THREADS = ["ExecutorManagerThread", "QueueFeederThread"]
EXIT_CASES = ["abandoned", "timeout", "crash", "error", "interrupted"]


def check_exit(case: str, backend: str) -> None:
    out = run_script("tests.parallel._exit_scenarios", case, backend)
    lines = out.stdout.splitlines()
    workers = [int(pid) for pid in lines[0].split()[1:]]
    threads = sorted(lines[1].split()[1:])
    # Nothing of the pools that ended early runs on; a loky call may leave the
    # reusable pool it re-ran tasks on warm: one pool's threads, no more.
    allowed = [[]] if backend == "multiprocessing" else [[], LOKY_POOL_THREADS]
    assert threads in allowed, threads
    # (None left with multiprocessing after an error: that pool ends with the call.)
    alive = []
    for pid in workers:
        with contextlib.suppress(psutil.NoSuchProcess):  # already gone
            alive.append(psutil.Process(pid))
    # Workers exit with the interpreter; an orphan left behind would run on.
    _, left = psutil.wait_procs(alive, timeout=DEADLINE)
    assert not [p for p in left if p.status() != psutil.STATUS_ZOMBIE], left


@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
@pytest.mark.parametrize("case", EXIT_CASES)
def test_early_end_with_large_results_in_flight_exits(case: str, backend: str) -> None:
    check_exit(case, backend)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
@pytest.mark.parametrize("case", EXIT_CASES)
def test_early_end_exits_five_times_in_a_row(case: str, backend: str) -> None:
    for _ in range(5):
        check_exit(case, backend)
