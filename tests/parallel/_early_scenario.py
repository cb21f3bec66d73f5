"""A process's first loky pool, run as a script: its workers boot before loky is imported.

``python -c "from tests.parallel._early_scenario import run; run(CASE)"`` runs
one case in a fresh interpreter (the only place where loky is not imported
yet) and prints one JSON line of what it saw. Not run as ``-m``: its task
functions must live in an importable module, not ``__main__``. Not collected
by pytest (leading underscore).
"""

from __future__ import annotations

import importlib.abc
import json
import os
import signal
import sys
import time
from typing import Any

import psutil

from joblite.exceptions import WorkerCrashedError
from joblite.parallel import Parallel, delayed, shutdown_workers

INITIALIZED = "not initialized"


def initialize(value: str) -> None:
    global INITIALIZED
    INITIALIZED = value


def worker_facts(i: int) -> tuple[int, int, str | None, str]:
    return i * i, os.getpid(), os.environ.get("OMP_NUM_THREADS"), INITIALIZED


def crash(i: int) -> None:
    os._exit(1)


class _SeeLokyImported(importlib.abc.MetaPathFinder):
    """Records the caller's child processes when loky is first imported.

    Watches a submodule: ``find_spec("loky")`` alone may only ask whether loky
    is installed.
    """

    children: list[list[str]] | None = None

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name == "loky.process_executor" and self.children is None:
            self.children = [child.cmdline()[:2] for child in psutil.Process().children()]
        return None


def _alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if psutil.pid_exists(pid)]


def adopted() -> dict[str, Any]:
    hook = _SeeLokyImported()
    sys.meta_path.insert(0, hook)
    facts = Parallel(n_jobs=2, initializer=initialize, initargs=("yes",))(
        delayed(worker_facts)(i) for i in range(10)
    )
    first_pids = sorted({pid for _, pid, _, _ in facts})
    try:
        Parallel(n_jobs=2)(delayed(crash)(i) for i in range(2))
        crashed = False
    except WorkerCrashedError:
        crashed = True
    # The replacement workers are spawned the usual way (loky is imported now).
    after_crash = Parallel(n_jobs=2)(delayed(worker_facts)(i) for i in range(4))
    shutdown_workers()
    _, still = psutil.wait_procs([psutil.Process(pid) for pid in _alive(first_pids)], timeout=30)
    return {
        "children_when_loky_was_imported": hook.children,
        "results": [square for square, _, _, _ in facts],
        "threads": sorted({threads for _, _, threads, _ in facts}),
        "initialized": sorted({init for _, _, _, init in facts}),
        "crashed": crashed,
        "after_crash": [square for square, _, _, _ in after_crash],
        "first_workers_left": [process.pid for process in still],
    }


def dead_before_adoption() -> dict[str, Any]:
    from joblite.parallel.backends._early_workers import start_early_workers

    # Workers the call will find waiting, one of them dead before it is adopted.
    early = start_early_workers(2)
    os.kill(early[0].pid, signal.SIGKILL)
    while psutil.Process(early[0].pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.01)
    results = Parallel(n_jobs=2)(delayed(worker_facts)(i) for i in range(10))
    pool = {child.pid for child in psutil.Process().children()}
    return {
        "results": [square for square, _, _, _ in results],
        "dead_worker_reaped": not psutil.pid_exists(early[0].pid),
        "live_one_adopted": early[1].pid in pool,  # unclaimed ones are killed and reaped
    }


def run(case: str) -> None:
    print(json.dumps({"adopted": adopted, "dead_before_adoption": dead_before_adoption}[case]()))
