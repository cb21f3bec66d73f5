"""The cluster step of ``python -m joblite demo``: Dask workers sharing one cache on S3.

A cached function runs on a dask LocalCluster (2 worker processes) with its
cache on an S3 server (moto, on 127.0.0.1, started here): each distinct
argument is computed once across the workers, and a second run is all hits.
Needs ``distributed``, ``s3fs`` and ``moto[server]``; without them the step
says which to install and is skipped.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import pathlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

from ._size import Size

_NEEDS = ("distributed", "s3fs", "moto.server")
_BUCKET = "joblite-demo"


def simulate(x: int, log: str) -> int:
    """A stand-in for an expensive computation, writing one line per call to ``log``."""
    # O_APPEND writes of a few bytes do not interleave: one line per computation.
    with open(log, "a") as f:
        f.write(f"{x}\n")
    return x * x


@contextlib.contextmanager
def _s3_server() -> Iterator[dict[str, Any]]:
    """A moto S3 server on 127.0.0.1 with a bucket; yields s3fs's options to reach it."""
    import fsspec
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    fs_class: Any = None
    try:
        host, port = server.get_host_and_port()
        options = {
            "key": "demo",
            "secret": "demo",
            "endpoint_url": f"http://{host}:{port}",
        }
        fs = fsspec.filesystem("s3", **options)
        fs_class = type(fs)
        fs.mkdir(_BUCKET)
        yield options
    finally:
        if fs_class is not None:  # its cached clients point at the server stopped next
            fs_class.clear_instance_cache()
        server.stop()


@contextlib.contextmanager
def local_cluster() -> Iterator[Any]:
    """A client of a 2-worker-process LocalCluster, current in this thread (benchmarks too)."""
    # Untyped: mypy --strict would flag every call into it.
    distributed: Any = importlib.import_module("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # its health checks on a random port: nothing else on 8787 can clash
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
        client.as_current(),
    ):
        yield client


def run(workdir: pathlib.Path, size: Size) -> None:
    """Run a cached function twice over repeated arguments on 2 dask workers; check the counts."""
    missing = []
    for module in _NEEDS:
        try:
            __import__(module)
        except ImportError:
            missing.append(module.partition(".")[0])
    if missing:
        print(
            f"  skipped: needs {', '.join(missing)} "
            '(pip install "joblite[dask,fsspec]" s3fs "moto[server]")'
        )
        return

    from joblite import Memory, Parallel, delayed

    log = workdir / "cluster-computed"
    log.touch()
    distinct = max(4, size.tasks // 2)
    args = [x for x in range(distinct) for _ in range(2)]  # the workers race for each entry
    with _s3_server() as options, local_cluster():
        url = f"s3://{_BUCKET}/{uuid.uuid4().hex}"
        cached = Memory(url, verbose=0, backend_options=options).cache(simulate, ignore=["log"])
        timings = []
        for _ in range(2):
            start = time.perf_counter()
            results = Parallel(backend="dask")(delayed(cached)(x, str(log)) for x in args)
            timings.append(time.perf_counter() - start)
            if results != [x * x for x in args]:
                raise RuntimeError("demo check failed: wrong results from the dask workers")
        computed = sorted(int(line) for line in log.read_text().split())
        if computed != list(range(distinct)):
            raise RuntimeError(
                f"demo check failed: expected each of {distinct} arguments computed once "
                f"across the workers, got {computed}"
            )
    print(f"  {len(args)} calls ({distinct} distinct arguments) on 2 dask worker processes,")
    print(f"  one cache on an S3 server (moto on 127.0.0.1): {distinct} computations in all")
    print(f"    first run (computed, shared):  {timings[0] * 1e3:8.1f} ms")
    print(f"    second run (all cache hits):   {timings[1] * 1e3:8.1f} ms")
