"""Memory: cache hits and misses, side by side with joblib.Memory.

Cases follow the Memory issue's targets: a hit with small arguments, the
overhead of a miss, a hit whose argument is a 100 MB array (hashing
dominates), and a hit returning a 100 MB array (loaded, or memory-mapped).
The rows that touch files run on disk and on tmpfs; a hit returning an array
is held against one ``readinto`` of the same bytes on the same file system.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from benchmarks._harness import Report, best_time, best_time_auto, format_seconds, storage_places
from benchmarks._limits import READINTO, readinto_fresh, write_once

SMALL_ARGS = (1, "a" * 20, {"a": 1, "b": 2, "c": 3}, list(range(10)))


def small(x: int, s: str, d: dict[str, int], values: list[int]) -> int:
    return x


def total(a: Any) -> float:
    return float(a[:10].sum())


def make_array(n: int) -> Any:
    import numpy as np

    return np.ones(n, dtype=np.float64)


MISS_BATCH = 50
MISS_ROUNDS = 9


def misses(f: Callable[..., Any]) -> Callable[[], None]:
    """A batch of ``MISS_BATCH`` calls of ``f``, each with arguments never seen before."""
    counter = itertools.count()
    f(-1, *SMALL_ARGS[1:])  # the first call of a function does one-off set-up work

    def batch() -> None:
        for _ in range(MISS_BATCH):
            f(next(counter), *SMALL_ARGS[1:])

    return batch


def _interleaved_medians(*batches: Callable[[], None]) -> list[tuple[float, float]]:
    """``(median, best)`` wall time of each batch, over rounds that rotate their order."""
    times: list[list[float]] = [[] for _ in batches]
    for round_ in range(MISS_ROUNDS):
        # Rotate which goes first, so none always follows another's disk writes.
        for step in range(len(batches)):
            index = (round_ + step) % len(batches)
            gc.collect()
            start = time.perf_counter()
            batches[index]()
            times[index].append(time.perf_counter() - start)
    return [(statistics.median(t), min(t)) for t in times]


MISS_LIMIT = (
    "a miss's system calls, bare in Python, in one open directory: lstat the entry, "
    "create + flock the lock file, look for the entry again, one write of pickle.dumps, "
    "rename, append a journal line (open, write, close), close"
)


def bare_misses(root: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """``(batch, close)``: :data:`MISS_LIMIT` for ``MISS_BATCH`` new calls, and its clean-up.

    What any design keeping Memory's promises pays at least (a lock per miss
    for compute-once, a temp file renamed into place, the metadata journaled),
    without hashing, checksums, metadata reprs, or the walk down from the cache
    root that keeps planted links out.
    """
    import fcntl
    import pickle

    directory = tempfile.mkdtemp(dir=root)
    dir_fd = os.open(directory, os.O_RDONLY)
    counter = itertools.count()
    line = b"\n" + b"x" * 280 + b"\n"  # about the size of joblite's journal line here
    journal_flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT

    def batch() -> None:
        for _ in range(MISS_BATCH):
            name = f"{next(counter):032x}.out"
            part = f".{name}.part"
            with contextlib.suppress(FileNotFoundError):  # the lookup that misses
                os.lstat(os.path.join(directory, name))
            fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dir_fd)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.access(name, os.F_OK, dir_fd=dir_fd, follow_symlinks=False)
            os.write(fd, pickle.dumps(next(counter)))
            os.rename(part, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            journal = os.open("journal", journal_flags, 0o600, dir_fd=dir_fd)
            os.write(journal, line)
            os.close(journal)
            os.close(fd)

    return batch, functools.partial(os.close, dir_fd)


def _miss_overhead(report: Report, jb: Any, lite: Any, where: str, root: str) -> None:
    limit_batch, close = bare_misses(root)
    # Memory(lock=False) as well: like joblib, no lock (a miss must not cost more without).
    unlocked = type(lite)(tempfile.mkdtemp(dir=root), verbose=0, lock=False)
    try:
        (miss_j, miss_l, bare, miss_u) = _interleaved_medians(
            misses(jb.cache(small)),
            misses(lite.cache(small)),
            limit_batch,
            misses(unlocked.cache(small)),
        )
    finally:
        close()
    report.compare(
        "miss overhead, small arguments (per call)",
        miss_j[0] / MISS_BATCH,
        miss_l[0] / MISS_BATCH,
        limit_s=bare[0] / MISS_BATCH,
        limit=MISS_LIMIT,
        where=where,
        target=3,
        note=f"medians of {MISS_ROUNDS} rotating rounds; best rounds: "
        f"{miss_j[1] / miss_l[1]:.2f}×, joblite {miss_l[1] / bare[1]:.2f} of the limit; "
        f"joblib's time / the limit's: {miss_j[0] / bare[0]:.2f}× (the most any design "
        "keeping the promises could show)",
    )
    report.compare(
        "miss overhead, small arguments, lock=False (per call)",
        miss_j[0] / MISS_BATCH,
        miss_u[0] / MISS_BATCH,
        where=where,
        note=f"in the same rotating rounds; joblite's locked miss / this: "
        f"{miss_l[0] / miss_u[0]:.2f}× (medians)",
    )


def _warm_pair(jb: Any, lite: Any, fn: Callable[..., Any], *args: Any) -> tuple[Any, Any]:
    """``fn`` cached by each library's Memory, each called once with ``args`` (a miss)."""
    jf, lf = jb.cache(fn), lite.cache(fn)
    jf(*args)
    lf(*args)
    return jf, lf


def _hit_with_big_argument(report: Report, jb: Any, lite: Any, where: str) -> None:
    import numpy as np

    big = np.random.default_rng(0).random(_elements(report))
    jf, lf = _warm_pair(jb, lite, total, big)
    report.compare(
        f"hit, {big.nbytes / 2**20:.3g} MiB array argument",
        best_time(lambda: jf(big), repeat=3),
        best_time(lambda: lf(big), repeat=3),
        where=where,
        target=10,
    )


def _elements(report: Report) -> int:
    """100 MiB of float64 (6.25 MiB with --quick)."""
    return 100 * 2**20 // 8 // (16 if report.quick else 1)


def _hit_returning_array(report: Report, jb: Any, lite: Any, where: str, root: str) -> None:
    """A hit returning a big array, beside a readinto of the same bytes on the same file system."""
    n = _elements(report)
    jf, lf = _warm_pair(jb, lite, make_array, n)
    reference = os.path.join(root, "reference.raw")
    write_once(make_array(n), reference)
    report.compare(
        f"hit returning a {n * 8 / 2**20:.3g} MiB array",
        best_time(lambda: jf(n), repeat=3),
        best_time(lambda: lf(n), repeat=3),
        limit_s=best_time(lambda: readinto_fresh(reference, n * 8), repeat=3),
        limit=READINTO,
        where=where,
        target=2,
        limit_target=1.15,
    )
    os.unlink(reference)


def _hit_returning_mapped_array(report: Report, jb: Any, lite: Any, where: str) -> None:
    n = _elements(report)
    jf, lf = _warm_pair(jb, lite, make_array, n)
    report.compare(
        f"hit returning a {n * 8 / 2**20:.3g} MiB array, mmap_mode='r'",
        best_time_auto(lambda: jf(n), repeat=3),
        best_time_auto(lambda: lf(n), repeat=3),
        where=where,
        note="issue: about 1 ms",
    )


def _without_hashing(hit_j: float, hit_l: float) -> str:
    """The hit's cost besides hashing its arguments (each library hashes what its hit hashes)."""
    import joblib

    import joblite

    # joblib hashes the arguments by name (func_inspect.filter_args), joblite the bound values.
    named = dict(zip(("x", "s", "d", "values"), SMALL_ARGS, strict=True))
    hash_j = best_time_auto(lambda: joblib.hash(named))
    hash_l = best_time_auto(lambda: joblite.hash(SMALL_ARGS))
    rest_j, rest_l = hit_j - hash_j, hit_l - hash_l
    return (
        f"hashing the arguments: joblib {format_seconds(hash_j).strip()}, joblite "
        f"{format_seconds(hash_l).strip()}; the hit without it: joblib "
        f"{format_seconds(rest_j).strip()}, joblite {format_seconds(rest_l).strip()} "
        f"({rest_j / rest_l:.1f}×)"
    )


HIT_FLOOR = "joblite.hash of the arguments + one lstat of the entry file (what a hit must do)"


def _hit_floor(lite: Any, lf: Any) -> float:
    """A hit's floor in joblite's design: the key's hash and the one check of the entry file."""
    import joblite

    path = lite.store_backend.local_path(lf.__cache_key__(*SMALL_ARGS) + ".out")
    lstat, digest = os.lstat, joblite.hash
    return best_time_auto(lambda: (digest(SMALL_ARGS), lstat(path)))


def _run_on(report: Report, where: str, root: str) -> None:
    import joblib

    import joblite.memory as jl

    def both(**options: Any) -> tuple[Any, Any]:
        jb = joblib.Memory(tempfile.mkdtemp(dir=root), verbose=0, **options)
        lite = jl.Memory(tempfile.mkdtemp(dir=root), verbose=0, **options)
        return jb, lite

    if where == "disk":
        # Hit with small arguments: no file is read (both keep an index in memory
        # or hit the page cache), so the file system does not matter.
        jb, lite = both()
        jf, lf = _warm_pair(jb, lite, small, *SMALL_ARGS)
        hit_j = best_time_auto(lambda: jf(*SMALL_ARGS))
        hit_l = best_time_auto(lambda: lf(*SMALL_ARGS))
        report.compare(
            "hit, small arguments",
            hit_j,
            hit_l,
            limit_s=_hit_floor(lite, lf),
            limit=HIT_FLOOR,
            where=where,
            target=20,
            note=_without_hashing(hit_j, hit_l),
        )
        # Hit with a big array argument: the key is a hash of 100 MiB.
        _hit_with_big_argument(report, *both(), where)

    # Miss overhead: every call has new arguments, the function is instant (so
    # the time is the overhead). File creation on a busy disk swings from tens
    # of µs to a few ms, so the two libraries' rounds alternate (each sees the
    # same disk weather) and medians are compared. On tmpfs creating a file
    # costs no disk I/O: the libraries' own overhead, without this VM's disk
    # weather (which makes the disk row swing from below 1x to 5x between runs).
    _miss_overhead(report, *both(), where, root)
    _hit_returning_array(report, *both(), where, root)
    _hit_returning_mapped_array(report, *both(mmap_mode="r"), where)


def run(report: Report) -> None:
    for where, parent in storage_places():
        root = tempfile.mkdtemp(prefix="bench-memory-", dir=parent)
        try:
            _run_on(report, where, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
