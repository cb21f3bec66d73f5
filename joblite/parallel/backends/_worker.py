"""Set-up run once in each worker process (kept tiny: it is imported there)."""

from __future__ import annotations

import collections
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


# Initializer tokens a cluster worker remembers: those of long-finished calls are forgotten.
KEEP_TOKENS = 64


def run_initializer_once(
    seen: collections.OrderedDict[str, Exception | None], token: str, payload: bytes
) -> None:
    """Run a call's initializer the first time ``token`` reaches this worker.

    ``seen`` remembers each token's outcome (None, or what the initializer
    raised), so a worker whose initializer failed fails every batch of that
    call with its error, as a broken process pool does. Used where workers
    outlive calls (dask, Ray).
    """
    if token not in seen:
        try:
            run_initializer(payload)
        except Exception as exc:
            seen[token] = exc
        else:
            seen[token] = None
        while len(seen) > KEEP_TOKENS:
            seen.popitem(last=False)
    error = seen[token]
    if error is not None:
        raise error
