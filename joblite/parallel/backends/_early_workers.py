"""Worker interpreters started before the caller imports loky (a process's first pool).

The first process-backed call in an interpreter must import loky in the
caller (~25 ms of CPU) before loky can spawn a worker, and each worker then
boots an interpreter and imports loky itself (~75 ms). Started first, the
workers boot while the caller imports, on cores that would otherwise idle.
Measured only under load 8-14 (no quiet machine was available): no gain, 575
against 510 ms (medians of 20 alternating fresh interpreters, nice -20), the
caller's import slowed by its own booting workers.

Each early worker waits on a Unix socket (:mod:`._worker_boot`); when loky
spawns a worker, :mod:`._loky_context` hands one over the descriptors and
environment variables loky would have passed at ``exec`` instead. Workers
nobody claimed are killed and reaped when the pool has started. This module
imports no loky (nor anything that does: ``cpu_count`` is loky's). Example::

    >>> waiting = start_early_workers(2)
    >>> discard_early_workers()   # nobody claimed them: gone, reaped
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass

__all__ = ["EarlyWorker", "claim_early_worker", "discard_early_workers", "start_early_workers"]

logger = logging.getLogger(__name__)


@dataclass
class EarlyWorker:
    """A booting worker interpreter and the socket its pool adopts it through."""

    pid: int
    sock: socket.socket

    def hand_over(self, fds: list[int], pipe: int, env: dict[str, str]) -> None:
        """Send the pool's descriptors (placed at their own numbers), its pipe, the environment."""
        message = json.dumps({"targets": fds, "pipe": pipe, "env": env}).encode() + b"\n"
        socket.send_fds(self.sock, [message], fds)
        self.sock.close()

    def discard(self) -> None:
        """Kill and reap it (it may still be importing: no point waiting for it to read)."""
        self.sock.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):  # already reaped
            os.waitpid(self.pid, 0)


# Per thread: loky keeps one pool per thread, and spawns a cold pool's workers
# in the thread that started it.
_WAITING = threading.local()


def early_workers_supported() -> bool:
    return os.name == "posix" and hasattr(socket, "send_fds")


def _boot_command(sock_fd: int) -> list[str]:
    """``python -c <the _worker_boot source> <socket fd>``."""
    from importlib.util import find_spec

    spec = find_spec(f"{__package__}._worker_boot")
    assert spec is not None
    assert spec.loader is not None
    source = spec.loader.get_source(spec.name)  # type: ignore[attr-defined]
    return [sys.executable, "-c", f"{source}\nmain()\n", str(sock_fd)]


def start_early_workers(n_workers: int) -> list[EarlyWorker]:
    """Start ``n_workers`` interpreters that boot now and wait to be adopted."""
    from multiprocessing.util import spawnv_passfds

    started: list[EarlyWorker] = []
    try:
        for _ in range(n_workers):
            ours, theirs = socket.socketpair()
            try:
                command = _boot_command(theirs.fileno())
                # spawnv_passfds, as multiprocessing's forkserver does: every
                # other descriptor of the caller is closed in the child.
                pid = spawnv_passfds(
                    os.fsencode(sys.executable),
                    [os.fsencode(arg) for arg in command],
                    [theirs.fileno()],
                )
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()
            started.append(EarlyWorker(pid, ours))
    except BaseException:
        for worker in started:
            worker.discard()
        raise
    _waiting().extend(started)
    return started


def _waiting() -> list[EarlyWorker]:
    waiting: list[EarlyWorker] | None = getattr(_WAITING, "workers", None)
    if waiting is None:
        waiting = _WAITING.workers = []
    return waiting


def claim_early_worker() -> EarlyWorker | None:
    """The oldest of this thread's waiting workers (the likeliest to have booted), or None."""
    waiting = _waiting()
    return waiting.pop(0) if waiting else None


def discard_early_workers() -> None:
    """Kill and reap this thread's workers that no pool claimed."""
    waiting = _waiting()
    while waiting:
        worker = waiting.pop()
        logger.debug("early worker %d was not needed", worker.pid)
        worker.discard()
