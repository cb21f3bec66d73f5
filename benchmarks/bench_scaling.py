"""Scaling out: Memory and dump/load on S3 beside local disk, Ray and Dask beside loky.

Memory rows: hit and miss latency and S3 requests. Model rows: ``dump`` and
``load`` of a model (numpy arrays in a dict) to an S3 URL and to a local file.
Backend rows: per-task overhead of ``Parallel`` with trivial tasks on loky, on
a local Ray runtime (2 CPUs) and on a dask LocalCluster (2 worker processes).

The S3 side is a moto server on 127.0.0.1 reached through s3fs (as a user's
code reaches AWS), so its latencies are a floor: a real bucket adds a network
round trip per request counted here.
The S3 rows need the test extra (``s3fs``, ``moto[server]``), the backend rows
``ray`` and ``distributed``; each part is skipped without what it needs.
"""

from __future__ import annotations

import contextlib
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
from joblite._demo._cluster import local_cluster

ROUNDS = 30
MODEL_BYTES = 500 * 2**20  # the size; --quick uses QUICK_MODEL_BYTES
QUICK_MODEL_BYTES = 20 * 2**20
N_TASKS = 1_000  # dask's 7.5 ms per task at batch_size=1: 4 calls take 30 s
QUICK_N_TASKS = 200


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


def trivial(x: int) -> int:
    return x


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


def _model(total_bytes: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    n = total_bytes // 8 // 4
    return {
        "coef": rng.standard_normal(n),
        "weights": [rng.standard_normal(n) for _ in range(3)],
        "meta": {"name": "model", "classes": list(range(10))},
    }


def _dump_load(target: str, model: dict[str, Any], rounds: int) -> tuple[float, float]:
    """Best dump and load time of ``model`` to/from ``target`` (a path or an S3 URL)."""
    from joblite import dump, load

    dumps, loads = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        dump(model, target)
        dumps.append(time.perf_counter() - start)
        start = time.perf_counter()
        load(target)
        loads.append(time.perf_counter() - start)
    return min(dumps), min(loads)


def _bench_model(report: Report, url: str) -> None:
    size = QUICK_MODEL_BYTES if report.quick else MODEL_BYTES
    rounds = 2 if report.quick else 1  # moto moves 500 MiB at 20-64 MiB/s: one round is 33 s
    model = _model(size)
    directory = tempfile.mkdtemp(prefix="joblite-bench-", dir=os.getcwd())
    try:
        local = _dump_load(os.path.join(directory, "model.jl"), model, rounds)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    s3 = _dump_load(f"{url}/model.jl", model, rounds)
    for name, local_s, s3_s in zip(("dump", "load"), local, s3, strict=True):
        case = f"{name} of a {size >> 20} MiB model, best of {rounds}"
        print(
            f"  {case:<40} local {format_seconds(local_s)}"
            f"  S3 server {format_seconds(s3_s)}  ({size / s3_s / 2**20:.0f} MiB/s on S3)",
            flush=True,
        )


def _per_task(backend: str, n_tasks: int, batch_size: int | str) -> float:
    """Best wall time per trivial task of a 2-job ``Parallel`` on ``backend``."""
    from joblite import Parallel, delayed

    def call() -> None:
        Parallel(n_jobs=2, backend=backend, batch_size=batch_size)(
            delayed(trivial)(i) for i in range(n_tasks)
        )

    call()  # the workers start (and import) outside the timed rounds
    times = []
    for _ in range(3):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times) / n_tasks


@contextmanager
def _ray_runtime() -> Iterator[None]:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    try:
        yield
    finally:
        ray.shutdown()


def _bench_backends(report: Report) -> None:
    n_tasks = QUICK_N_TASKS if report.quick else N_TASKS
    runtimes: list[tuple[str, Callable[[], Any]]] = [("loky", contextlib.nullcontext)]
    for backend, module, runtime in (
        ("ray", "ray", _ray_runtime),
        ("dask", "distributed", local_cluster),
    ):
        try:
            __import__(module)
        except ImportError:
            print(f"  {backend} rows skipped: needs {module} (pip install {module})")
            continue
        runtimes.append((backend, runtime))
    for backend, runtime in runtimes:
        with runtime():
            for batch_size in (1, "auto"):
                per_task = _per_task(backend, n_tasks, batch_size)
                print(
                    f"  {f'{backend}, trivial task, batch_size={batch_size}':<40}"
                    f" {format_seconds(per_task)} per task ({n_tasks} tasks, n_jobs=2)",
                    flush=True,
                )


def run(report: Report) -> None:
    _bench_backends(report)
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError:
        print("  S3 rows skipped: needs s3fs and moto[server] (pip install -e '.[test]')")
        return
    directory = tempfile.mkdtemp(prefix="joblite-bench-")
    try:
        local = _measure(directory)
        with s3_server() as url:
            s3 = _measure(url)
            _bench_model(report, url)
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
