"""A process's first loky pool starts its workers before the caller imports loky.

The cases that need a fresh interpreter run ``tests/parallel/_early_scenario.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil
import pytest

from joblite.parallel.backends._early_workers import (
    discard_early_workers,
    early_workers_supported,
    start_early_workers,
)

pytestmark = pytest.mark.skipif(not early_workers_supported(), reason="POSIX workers")

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _scenario(case: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", f"from tests.parallel._early_scenario import run; run({case!r})"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=_ROOT,
    )
    assert out.returncode == 0, out.stderr
    # No traceback from a worker, no leak report from a resource tracker.
    assert "Traceback" not in out.stderr, out.stderr
    assert "leaked" not in out.stderr, out.stderr
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_first_pool_boots_its_workers_while_the_caller_imports_loky() -> None:
    seen = _scenario("adopted")
    children = seen["children_when_loky_was_imported"]
    assert isinstance(children, list)
    assert len(children) == 2
    assert all(command[1] == "-c" for command in children)
    # And they are the pool's workers, set up as loky's own would be.
    assert seen["results"] == [i * i for i in range(10)]
    assert seen["threads"] == [
        os.environ.get("OMP_NUM_THREADS", str(max(os.cpu_count() or 1, 2) // 2))
    ]
    assert seen["initialized"] == ["yes"]
    assert seen["crashed"] is True  # a dying worker is still seen as a crash
    assert seen["after_crash"] == [i * i for i in range(4)]
    assert seen["first_workers_left"] == []


def test_an_early_worker_dead_before_adoption_is_replaced_and_reaped() -> None:
    seen = _scenario("dead_before_adoption")
    assert seen["results"] == [i * i for i in range(10)]
    assert seen["dead_worker_reaped"] is True
    assert seen["live_one_adopted"] is True


def test_early_workers_nobody_claims_are_killed_and_reaped() -> None:
    early = start_early_workers(2)
    processes = [psutil.Process(worker.pid) for worker in early]
    discard_early_workers()
    assert not any(psutil.pid_exists(process.pid) for process in processes)
    discard_early_workers()  # nothing left to discard: a no-op
