"""Whether this thread or process is a joblite worker: a leaf module, imported in workers.

Nested ``Parallel`` calls inside a worker run sequentially, so nesting never
oversubscribes the machine. Example::

    >>> WORKER_STATE.in_worker()
    False
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Final

__all__ = ["WORKER_STATE", "gil_disabled"]


class _WorkerState:
    """Process workers set ``in_process_worker``; thread workers ``thread.is_worker``.

    Thread workers also set ``thread.nesting_level`` (their caller's plus one).
    """

    in_process_worker = False
    thread = threading.local()

    def in_worker(self) -> bool:
        return self.in_process_worker or getattr(self.thread, "is_worker", False)

    def nesting_level(self) -> int:
        """joblib's ``backend.nesting_level`` here: 0 in the caller, 1 in a worker, ...

        A process worker does not know its caller's level: it says 1.
        """
        level: int | None = getattr(self.thread, "nesting_level", None)
        if level is not None:
            return level
        return 1 if self.in_worker() else 0


WORKER_STATE: Final = _WorkerState()


def gil_disabled() -> bool:
    """True on a free-threaded Python running without the GIL (threads are then preferred)."""
    is_enabled: Callable[[], bool] | None = getattr(sys, "_is_gil_enabled", None)
    return is_enabled is not None and not is_enabled()
