"""A cold loky pool: what starting one costs the workers, and what it leaves behind.

Each case runs in a fresh interpreter, so the pool, its workers and its
resource trackers are started by the case itself, not by an earlier test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import psutil
import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "setpriority"), reason="POSIX priorities")

LOWEST = 19  # the nice value of the lowest CPU priority

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Prints the nice values of the caller, its workers and both resource trackers.
_PRIORITIES = """
import json, multiprocessing.resource_tracker as stdlib_tracker, os
from loky.backend import resource_tracker as loky_tracker
from joblite.parallel import Parallel, delayed
from tests.parallel._tasks import square

if __name__ == "__main__":
    {before}
    results = Parallel(n_jobs=2)(delayed(square)(i) for i in range(10))
    worker_pids = Parallel(n_jobs=2)(delayed(os.getpid)() for i in range(10))
    priority = lambda pid: os.getpriority(os.PRIO_PROCESS, pid)
    print(json.dumps({{
        "results": results,
        "caller": priority(0),
        "workers": sorted({{priority(pid) for pid in worker_pids}}),
        "stdlib_tracker": priority(stdlib_tracker._resource_tracker._pid),
        "loky_tracker": priority(loky_tracker._resource_tracker._pid),
        "trackers": [stdlib_tracker._resource_tracker._pid, loky_tracker._resource_tracker._pid],
    }}))
"""


def _priorities(before: str = "pass") -> dict[str, object]:
    script = textwrap.dedent(_PRIORITIES).format(before=before)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=_ROOT
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _exited(pids: object) -> bool:
    assert isinstance(pids, list)
    _, alive = psutil.wait_procs(
        [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)], timeout=30
    )
    return not alive


def test_trackers_started_for_the_pool_yield_the_cpu_to_its_workers() -> None:
    seen = _priorities()
    assert seen["results"] == [i * i for i in range(10)]
    caller = seen["caller"]
    assert isinstance(caller, int)
    assert seen["workers"] == [caller]  # the workers keep the caller's priority
    assert seen["stdlib_tracker"] == max(caller, LOWEST)
    assert seen["loky_tracker"] == max(caller, LOWEST)
    assert _exited(seen["trackers"])  # and they still end with the caller


def test_a_tracker_running_before_the_pool_keeps_its_priority() -> None:
    # The user's multiprocessing code started this one: not joblite's to change.
    seen = _priorities(before="stdlib_tracker.ensure_running()")
    caller = seen["caller"]
    assert isinstance(caller, int)
    assert seen["stdlib_tracker"] == caller
    assert seen["loky_tracker"] == max(caller, LOWEST)
    assert _exited(seen["trackers"])
