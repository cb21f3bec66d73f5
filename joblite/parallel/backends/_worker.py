"""Set-up run once in each worker process (kept tiny: it is imported there)."""

from __future__ import annotations

import os

from .._wire import decode_initializer


def init_process_worker(payload: bytes | None, env: dict[str, str] | None = None) -> None:
    """Mark the process as a worker, apply ``env``, run the user's initializer."""
    from .._worker_state import WORKER_STATE

    WORKER_STATE.in_process_worker = True
    if env:
        os.environ.update(env)
    if payload is not None:
        run_initializer(payload)


def run_initializer(payload: bytes) -> None:
    """Decode what :func:`~joblite.parallel._wire.encode_initializer` made and call it."""
    initializer, initargs = decode_initializer(payload)
    initializer(*initargs)
