"""dump/load: joblite vs joblib on a big array, a cached result and small values.

The big-array and cached-result rows run twice: on disk (a directory in the
working directory) and on tmpfs (/dev/shm), each beside its physical limit: one
``write`` of the array's buffer for a dump, one ``readinto`` a fresh array of the
same bytes for a load. Both libraries write to the same directory and neither fsyncs
(joblite's ``dump`` is atomic but, like joblib, not durable against power loss
by default), so the comparison is like for like. Every timed dump writes a
fresh file name and the file is deleted (untimed) after the round: freeing a
replaced file's blocks is slow on some file systems (ext4 mounted with
``discard``) and neither library should be charged, or credited, for it.
Rounds rotate between the libraries and the limit (ABBA for two, ABC BCA CAB
for three) and the **median** round is compared; the best round is in the
note. Write speed on shared VMs varies several-fold from round to round (fresh
page-cache pages are slow to get).
"""

from __future__ import annotations

import gc
import importlib.util
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._harness import Report, best_time_auto, storage_places
from benchmarks._limits import (
    MMAP,
    PICKLE_WRITE,
    READ_UNPICKLE,
    READINTO,
    WRITE,
    ZSTD_COMPRESS,
    ZSTD_DECOMPRESS,
    mmap_file,
    pickle_write,
    read_unpickle,
    readinto_fresh,
    write_once,
    zstd_compress,
    zstd_decompress,
)

# Sizes from the issue; --quick divides them by QUICK_DIVISOR (a smoke test).
ARRAY_ELEMENTS = 128 * 1024 * 1024  # 1 GiB of float64
RESULT_ELEMENTS = 12_500_000  # 100 MB of float64: a big cached result
MODEL_ELEMENTS = 12_500_000  # 100 MB per float64/int64 array: ~500 MB in all
QUICK_DIVISOR = 64
_names = itertools.count()


def _size(report: Report, elements: int) -> int:
    return elements // QUICK_DIVISOR if report.quick else elements


def _model(rng: np.random.Generator, n: int) -> dict[str, Any]:
    """~40 n bytes of compressible arrays, like a fitted model, plus 10,000 small objects."""
    dense = np.zeros(n)
    nonzero = rng.choice(n, n // 20, replace=False)
    dense[nonzero] = rng.normal(size=nonzero.size)
    return {
        "coef": np.round(rng.normal(size=2 * n), 3),  # quantized weights, 200 MB
        "indices": np.cumsum(rng.integers(0, 5, n)),  # sorted sparse indices, 100 MB
        "codes": rng.integers(0, 16, 2 * n, dtype=np.int32),  # categorical codes, 100 MB
        "sparse_dense": dense,  # mostly zeros, 100 MB
        "features": [
            {"name": f"feature_{i}", "index": i, "scale": float(i) / 7, "tags": ("num", i % 3)}
            for i in range(10_000)
        ],
    }


def _timed(fn: Callable[[], object]) -> float:
    # Flush earlier rounds' dirty pages first (untimed), so neither library pays for
    # the other's writeback: both start from the same clean page cache.
    os.sync()
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _interleaved(
    *fns: Callable[[], object], repeat: int = 3, after: Callable[[], object] = lambda: None
) -> list[list[float]]:
    """Every round's time of each of ``fns``, in rotating order so drift hits all alike."""
    times: list[list[float]] = [[] for _ in fns]
    order = list(range(len(fns)))
    for round_number in range(repeat):
        # ABBA for two, ABC BCA CAB for three...: no function always runs first.
        if len(fns) == 2:
            rotation = order if round_number % 2 == 0 else order[::-1]
        else:
            shift = round_number % len(fns)
            rotation = order[shift:] + order[:shift]
        for index in rotation:
            times[index].append(_timed(fns[index]))
            after()
    return times


def _compare(
    report: Report,
    case: str,
    times: list[list[float]],
    *,
    where: str,
    limit: str = "",
    target: float | None = None,
    limit_target: float | None = None,
    gib: float = 0.0,
) -> None:
    """Compare the median rounds; the note has the best rounds (and GiB/s)."""
    joblib_times, joblite_times = times[0], times[1]
    limit_times = times[2] if len(times) > 2 else None
    best = f"best {min(joblib_times):.3g} s vs {min(joblite_times):.3g} s"
    if gib:
        best += f"; median {gib / statistics.median(joblib_times):.2f} vs "
        best += f"{gib / statistics.median(joblite_times):.2f} GiB/s"
        if limit_times:
            best += f" (limit {gib / statistics.median(limit_times):.2f})"
    report.compare(
        case + " (median)",
        statistics.median(joblib_times),
        statistics.median(joblite_times),
        limit_s=statistics.median(limit_times) if limit_times else None,
        limit=limit,
        where=where,
        target=target,
        limit_target=limit_target,
        note=f"{best}; {len(joblib_times)} rounds each",
    )


def _bench_array(report: Report, where: str, directory: Path, rng: np.random.Generator) -> None:
    import joblib

    import joblite.persistence as persistence

    array = rng.random(_size(report, ARRAY_ELEMENTS))
    size_gib = array.nbytes / 2**30
    repeat = 3 if report.quick else 6
    written: list[Path] = []

    def fresh(suffix: str) -> Path:
        written.append(directory / f"dump-{next(_names)}{suffix}")
        return written[-1]

    def delete_written() -> None:
        while written:
            written.pop().unlink()

    times = _interleaved(
        lambda: joblib.dump(array, fresh(".pkl")),
        lambda: persistence.dump(array, fresh(".jl")),
        lambda: write_once(array, fresh(".raw")),
        repeat=repeat,
        after=delete_written,
    )
    report_case = f"dump {size_gib:.3g} GiB float64, uncompressed, new file"
    _compare(report, report_case, times, where=where, limit=WRITE, limit_target=1.15, gib=size_gib)
    old_file, new_file = directory / "joblib.pkl", directory / "joblite.jl"
    joblib.dump(array, old_file)
    persistence.dump(array, new_file)
    if where == "disk":
        # Replacing an existing file: both libraries free the old file's blocks inline.
        raw_file = directory / "raw"
        write_once(array, raw_file)
        times = _interleaved(
            lambda: joblib.dump(array, old_file),
            lambda: persistence.dump(array, new_file),
            lambda: write_once(array, raw_file),
            repeat=max(3, repeat // 2),
        )
        _compare(
            report,
            f"dump {size_gib:.3g} GiB float64, overwriting",
            times,
            where=where,
            limit="one write of the buffer over an existing file",
            limit_target=1.15,
            gib=size_gib,
        )
        raw_file.unlink()
    times = _interleaved(
        lambda: joblib.load(old_file),
        lambda: persistence.load(new_file),
        lambda: readinto_fresh(new_file, array.nbytes),
        repeat=max(3, repeat // 2),
    )
    _compare(
        report,
        f"load {size_gib:.3g} GiB float64, uncompressed",
        times,
        where=where,
        limit=READINTO,
        target=1.3,
        limit_target=1.15,
        gib=size_gib,
    )
    times = _interleaved(
        lambda: joblib.load(old_file, mmap_mode="r"),
        lambda: persistence.load(new_file, mmap_mode="r"),
        lambda: mmap_file(new_file),
    )
    _compare(
        report, f"load {size_gib:.3g} GiB float64, mmap_mode='r'", times, where=where, limit=MMAP
    )
    old_file.unlink()
    new_file.unlink()


def _bench_cached_result(
    report: Report, where: str, directory: Path, rng: np.random.Generator
) -> None:
    """A Memory cache hit returning a big array: read_object vs joblib.load."""
    import joblib

    from joblite._core.fileformat import read_object, write_object

    array = rng.random(_size(report, RESULT_ELEMENTS))
    old_file, new_file = directory / "result.pkl", directory / "result.jl"
    joblib.dump(array, old_file)
    with open(new_file, "wb") as fileobj:
        write_object(array, fileobj)
    times = _interleaved(
        lambda: joblib.load(old_file),
        lambda: read_object(new_file),
        lambda: readinto_fresh(new_file, array.nbytes),
        repeat=6 if report.quick else 15,
    )
    _compare(
        report,
        f"read_object {array.nbytes / 1e6:.0f} MB float64",
        times,
        where=where,
        limit=READINTO,
        target=2.0,
        limit_target=1.15,
    )
    old_file.unlink()
    new_file.unlink()


def _bench_small(report: Report, directory: Path) -> None:
    """Tiny values, as a Memory cache stores and loads per call."""
    values = {
        "list of 3 ints": [1, 2, 3],
        "dict of 10 floats": {f"key{i}": i / 7 for i in range(10)},
        "1 KB float64 array": np.arange(128.0),
    }
    for name, value in values.items():
        _bench_small_value(report, directory, name, value)


def _bench_small_value(report: Report, directory: Path, name: str, value: object) -> None:
    import joblib

    import joblite.persistence as persistence

    old_file, new_file = directory / "small.pkl", directory / "small.jl"
    raw_file = directory / "small.pickle"
    pickle_write(value, raw_file)
    report.compare(
        f"dump {name}",
        best_time_auto(lambda: joblib.dump(value, old_file)),
        best_time_auto(lambda: persistence.dump(value, new_file)),
        # A new file each time: rewriting an existing one costs ~2.7 ms on this VM's
        # ext4 (it flushes a truncated file on close; 91 µs for a new one), and
        # replacing it by a rename ~1.1 ms: neither is the floor.
        limit_s=best_time_auto(
            lambda: pickle_write(value, directory / f"small-{next(_names)}.pickle")
        ),
        limit=PICKLE_WRITE,
        where="disk",
    )
    report.compare(
        f"load {name}",
        best_time_auto(lambda: joblib.load(old_file)),
        best_time_auto(lambda: persistence.load(new_file)),
        limit_s=best_time_auto(lambda: read_unpickle(raw_file)),
        limit=READ_UNPICKLE,
        where="disk",
    )


def _bench_model(report: Report, directory: Path, rng: np.random.Generator) -> None:
    import joblib

    import joblite.persistence as persistence

    old_file, new_file = directory / "joblib.pkl", directory / "joblite.jl"
    model = _model(rng, _size(report, MODEL_ELEMENTS))
    arrays = [value for value in model.values() if isinstance(value, np.ndarray)]
    raw = sum(array.nbytes for array in arrays)
    # joblib's zlib-3 takes many seconds here: one round each keeps the area short.
    joblib_s = _timed(lambda: joblib.dump(model, old_file, compress=3))
    joblite_s = _timed(lambda: persistence.dump(model, new_file, compress=True))
    joblib_size, joblite_size = old_file.stat().st_size, new_file.stat().st_size
    compress_s = decompress_s = None
    codec_note = ""
    if importlib.util.find_spec("zstandard") is not None:  # joblite's codec for compress=True
        frames: list[bytes] = []
        compress_s = _timed(lambda: frames.extend(zstd_compress(arrays)))
        decompress_s = _timed(lambda: zstd_decompress(frames))
        codec_note = f"; the arrays alone, zstd-3: {raw / sum(map(len, frames)):.2f}x"
    joblib_ratio, joblite_ratio = raw / joblib_size, raw / joblite_size
    report.compare(
        f"dump {raw / 1e6:.0f} MB model, compress (joblib 3, joblite True)",
        joblib_s,
        joblite_s,
        limit_s=compress_s,
        limit=ZSTD_COMPRESS if compress_s is not None else "",
        where="disk",
        target=5.0,
        note=(
            f"ratio joblib {joblib_ratio:.2f}x ({joblib_size / 1e6:.0f} MB) vs "
            f"joblite {joblite_ratio:.2f}x ({joblite_size / 1e6:.0f} MB)"
            + ("" if joblite_ratio >= joblib_ratio else " RATIO WORSE")
            + codec_note
        ),
    )
    joblib_s = _timed(lambda: joblib.load(old_file))
    joblite_s = _timed(lambda: persistence.load(new_file))
    report.compare(
        f"load {raw / 1e6:.0f} MB model, compressed",
        joblib_s,
        joblite_s,
        limit_s=decompress_s,
        limit=ZSTD_DECOMPRESS if decompress_s is not None else "",
        where="disk",
        target=2.0,
    )


def run(report: Report) -> None:
    rng = np.random.default_rng(0)
    for where, parent in storage_places():
        with tempfile.TemporaryDirectory(prefix="bench-persistence-", dir=parent) as tmp:
            if where == "disk":
                _bench_small(report, Path(tmp))
            _bench_cached_result(report, where, Path(tmp), rng)
            _bench_array(report, where, Path(tmp), rng)
    # On disk only: zstd and zlib spend their time on the CPU, not the file system.
    with tempfile.TemporaryDirectory(prefix="bench-persistence-", dir=os.getcwd()) as tmp:
        _bench_model(report, Path(tmp), rng)
