"""Memory on object storage: hit and miss latency and S3 requests, local disk vs S3.

The S3 side is a moto server on 127.0.0.1 reached through s3fs (as a user's
code reaches AWS), so its latencies are a floor: a real bucket adds a network
round trip per request counted here.
Needs the test extra (``s3fs``, ``moto[server]``); skipped without it.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks._harness import Report, format_seconds

ROUNDS = 30


def small(x: int) -> list[int]:
    return list(range(x % 100))


@contextmanager
def s3_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with a bucket; the AWS_* environment points at it."""
    import fsspec
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    saved = dict(os.environ)
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
    )
    try:
        fsspec.filesystem("s3").mkdir("joblite-bench")
        yield f"s3://joblite-bench/{uuid.uuid4().hex}"
    finally:
        fsspec.filesystem("s3").clear_instance_cache()
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def _median(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _measure(location: str) -> dict[str, Any]:
    from joblite import Memory

    mem = Memory(location, verbose=0)
    calls: list[str] = []
    store: Any = mem.store
    if hasattr(store, "fs") and hasattr(store.fs, "s3"):
        store.fs.s3.meta.events.register(
            "before-call.s3", lambda model, **_: calls.append(model.name)
        )
    f = mem.cache(small)
    f(-1)  # one-off set-up of a function's first miss
    fresh = itertools.count()
    f(2)
    f(2)  # a process's first hit of an entry also records it for eviction
    result: dict[str, Any] = {
        "miss": _median(lambda: f(next(fresh))),
        "hit": _median(lambda: f(2)),
    }
    calls.clear()
    f(next(fresh))
    result["miss requests"] = list(calls)
    calls.clear()
    f(2)
    result["hit requests"] = list(calls)
    mem.clear(warn=False)
    return result


def run(report: Report) -> None:
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError:
        print("  skipped: needs s3fs and moto[server] (pip install -e '.[test]')")
        return
    directory = tempfile.mkdtemp(prefix="joblite-bench-")
    try:
        local = _measure(directory)
        with s3_server() as url:
            s3 = _measure(url)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    for case in ("hit", "miss"):
        print(
            f"  {case + ' (small result), median':<40} local {format_seconds(local[case])}"
            f"  S3 server {format_seconds(s3[case])}",
            flush=True,
        )
    for case in ("hit requests", "miss requests"):
        calls = s3[case]
        counts = {name: calls.count(name) for name in sorted(set(calls))}
        print(f"  {'S3 ' + case:<40} {len(calls)}: {counts}", flush=True)
