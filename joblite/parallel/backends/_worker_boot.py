"""The first moments of a loky worker started before its pool existed (POSIX).

:mod:`._early_workers` runs this module's source with ``python -c`` (not
``-m``: joblite may be importable in the caller only through its ``sys.path``,
which reaches the worker later, with loky's preparation data). The worker
imports what every loky worker imports, then waits on a Unix socket for its
pool to adopt it: the pool's file descriptors arrive over the socket, are put
at the numbers the pool pickled, and from there on the worker runs exactly as
loky's own entry point (``loky.backend.popen_loky_posix``) would, with the
environment variables loky would have set at ``exec`` (the BLAS thread caps:
read when a library loads, so after adoption is early enough). A closed
socket with nothing sent means the pool did not need it: it exits.
Example (what the caller runs)::

    python -c "<this source>" <socket fd>
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys

# More than a pool ever sends (its pipes, the two resource trackers' and its queues').
MAX_FDS = 64
# The adoption message (fd numbers as JSON) is far below this.
MAX_MESSAGE = 65536


def receive_adoption(sock: socket.socket) -> tuple[list[int], dict[str, object]] | None:
    """The descriptors and the message the pool sends; None when it closed the socket."""
    message, fds, _flags, _address = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
    while message and not message.endswith(b"\n"):
        more = sock.recv(MAX_MESSAGE)
        if not more:
            break
        message += more
    if not message.endswith(b"\n"):
        for fd in fds:
            os.close(fd)
        return None
    return fds, json.loads(message)


def place_descriptors(fds: list[int], targets: list[int]) -> None:
    """Put ``fds[i]`` at number ``targets[i]`` (the number pickled in the pool's objects)."""
    above = max(targets, default=2) + 1
    # Out of the way first, so no received descriptor sits on another's target.
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, above) for fd in fds]
    for fd in fds:
        os.close(fd)
    for fd, target in zip(moved, targets, strict=True):
        os.dup2(fd, target, inheritable=True)
        os.close(fd)


def main() -> None:
    sock_fd = int(sys.argv[1])
    # What loky's entry point imports before it reads its pipe: the slow part
    # of a worker's boot, now done while the caller is still importing loky.
    import pickle
    from multiprocessing import process

    import loky.process_executor  # noqa: F401  (the worker loop the pool sends)
    from loky.backend import spawn

    with socket.socket(fileno=sock_fd) as sock:
        adoption = receive_adoption(sock)
    if adoption is None:
        sys.exit(0)
    fds, message = adoption
    targets, pipe, env = message["targets"], message["pipe"], message["env"]
    assert isinstance(targets, list)
    assert isinstance(pipe, int)
    assert isinstance(env, dict)
    place_descriptors(fds, targets)
    os.environ.update(env)
    exitcode = 1
    try:
        with os.fdopen(pipe, "rb") as from_parent:
            process.current_process()._inheriting = True  # type: ignore[attr-defined]
            try:
                spawn.prepare(pickle.load(from_parent))
                process_obj = pickle.load(from_parent)
            finally:
                del process.current_process()._inheriting  # type: ignore[attr-defined]
        exitcode = process_obj._bootstrap()
    except Exception:
        import traceback

        traceback.print_exc()
    finally:
        sys.exit(exitcode)
