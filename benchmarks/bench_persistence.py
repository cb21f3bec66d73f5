"""dump/load: joblite vs joblib on a big array, a cached result, small values and
compressed files (the issue's model mix and a scikit-learn RandomForest).

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
page-cache pages are slow to get). Each load round starts with as much memory
just freed (untimed) as the array holds: on a VM that hands free memory back
to its host, a fresh array otherwise costs 4x more some rounds and not others
(see ``_backed_memory``). Small values are timed a call at a time, on disk and
tmpfs, beside an atomic dump's least work and joblib's truncate-and-write.
"""

from __future__ import annotations

import collections
import gc
import importlib.util
import itertools
import os
import pickle
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._harness import Report, format_seconds, storage_places
from benchmarks._limits import (
    MMAP,
    PICKLE_WRITE,
    READ_UNPICKLE,
    READINTO,
    WRITE,
    mmap_file,
    pickle_write,
    read_unpickle,
    readinto_fresh,
    write_once,
)

# Sizes from the issue; --quick divides them by QUICK_DIVISOR (a smoke test).
ARRAY_ELEMENTS = 128 * 1024 * 1024  # 1 GiB of float64
RESULT_ELEMENTS = 12_500_000  # 100 MB of float64: a big cached result
MODEL_ELEMENTS = 9_000_000  # 56 bytes each in the mix: ~500 MB in all
FOREST_SAMPLES = 60_000  # deep trees of ~22,000 nodes: ~210 MB in 200 arrays
FOREST_TREES = 100
CHUNK = 8 * 1024 * 1024  # joblite's compressed chunk (fileformat.CHUNK_SIZE)
QUICK_DIVISOR = 64
_names = itertools.count()
# The small dump's references (pickle_write over an existing file truncates it).
PICKLE_REPLACE = "pickle.dumps + a write to a temp file + a rename over the file (atomic)"
PICKLE_TRUNCATE = "pickle.dumps + truncate-and-write the file, like joblib"


def pickle_replace(value: object, path: Path) -> None:
    """The least an atomic dump does: a new temp file, one write, a rename over ``path``."""
    temp = path.with_name(f".tmp-{next(_names)}")
    with open(temp, "xb", buffering=0) as file:
        file.write(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(temp, path)


def _size(report: Report, elements: int) -> int:
    return elements // QUICK_DIVISOR if report.quick else elements


def _model(rng: np.random.Generator, n: int) -> dict[str, Any]:
    """The issue's mix: ~56 n bytes of compressible arrays plus 10,000 small objects."""
    dense = np.zeros(n)
    nonzero = rng.choice(n, n // 20, replace=False)
    dense[nonzero] = rng.normal(size=nonzero.size)
    t = np.arange(2 * n, dtype=np.float32)
    return {
        "coef": np.round(rng.normal(size=2 * n), 3),  # rounded measurements, 16 n bytes
        "indices": np.cumsum(rng.integers(0, 5, n)),  # sorted sparse indices, 8 n
        "codes": rng.integers(0, 16, 2 * n, dtype=np.int32),  # labels, 8 n
        "sparse_dense": dense,  # mostly zeros, 8 n
        # a smooth float32 signal (two tones, so not trivially periodic), 8 n
        "signal": (np.sin(t / 500) * 10 + np.sin(t / 37)).astype(np.float32),
        "repeated": np.repeat(rng.normal(size=n // 100), 100),  # repeated values, 8 n
        "features": [
            {"name": f"feature_{i}", "index": i, "scale": float(i) / 7, "tags": ("num", i % 3)}
            for i in range(10_000)
        ],
    }


def _timed(fn: Callable[[], object], before: Callable[[], object] = lambda: None) -> float:
    # Flush earlier rounds' dirty pages first (untimed), so neither library pays for
    # the other's writeback: both start from the same clean page cache.
    os.sync()
    gc.collect()
    before()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _interleaved(
    *fns: Callable[[], object],
    repeat: int = 3,
    after: Callable[[], object] = lambda: None,
    before: Callable[[], object] = lambda: None,
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
            times[index].append(_timed(fns[index], before))
            after()
    return times


def _backed_memory(nbytes: int) -> Callable[[], None]:
    """Touch and free ``nbytes`` of memory (untimed), so the next fresh array gets backed pages.

    On this VM the guest hands free memory back to the host (virtio-balloon free
    page reporting, 2 MiB blocks, about 2 s after they are freed): a fresh
    1 GiB array on reported pages took 1.4-1.8 s to load instead of 0.28-0.46 s
    (touching it alone: 0.8-1.5 s against 0.1 s), whichever library loads. Which
    contender met reported pages depended on how long the os.sync before its
    round took: the 2x swings of the 1 GiB load rows. Every load round now starts
    from just-freed, still-backed memory.
    """

    def touch_and_free() -> None:
        np.ones(nbytes, dtype=np.uint8)

    return touch_and_free


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
    extra_note: str = "",
) -> None:
    """Compare the median rounds; the note has the best rounds (and GiB/s), then ``extra_note``."""
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
        note=f"{best}; {len(joblib_times)} rounds each" + (f"; {extra_note}" if extra_note else ""),
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
        before=_backed_memory(array.nbytes),
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
        # A map costs ~0.1-0.5 ms and swings with it: 3 rounds read 0.81x at 00:00 UTC
        # where 30 alternating loads gave joblite 90 us, joblib 104 us (medians).
        repeat=15,
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
        before=_backed_memory(array.nbytes),
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


def _bench_small(report: Report, where: str, directory: Path) -> None:
    """Tiny values, as a Memory cache stores and loads per call."""
    values = {
        "list of 3 ints": [1, 2, 3],
        "dict of 10 floats": {f"key{i}": i / 7 for i in range(10)},
        "1 KB float64 array": np.arange(128.0),
    }
    for name, value in values.items():
        _bench_small_value(report, where, directory, name, value)


def _single_rounds(*fns: Callable[[], object], repeat: int, block: int = 10) -> list[list[float]]:
    """Each call of ``fns`` timed alone: ``repeat`` rounds of ``block`` calls of each, rotating.

    Small dumps to disk are bimodal: the kernel starts writing a replaced
    file's data back on the spot (ext4's auto_da_alloc, at the rename or at
    the close of a truncated file), ~1-4 ms, and the next file operation may
    wait for it. Calls of one contender come in blocks, so each mostly meets
    its own previous call's writeback, as back-to-back dumps do; the median
    call is compared and the best is in the note.
    """
    times: list[list[float]] = [[] for _ in fns]
    gc.collect()
    for round_number in range(repeat):
        shift = round_number % len(fns)
        for index in [*range(shift, len(fns)), *range(shift)]:
            for _ in range(block):
                start = time.perf_counter()
                fns[index]()
                times[index].append(time.perf_counter() - start)
    return times


def _bench_small_value(
    report: Report, where: str, directory: Path, name: str, value: object
) -> None:
    import joblib

    import joblite.persistence as persistence

    old_file, new_file = directory / "small.pkl", directory / "small.jl"
    raw_file, replaced_file = directory / "small.pickle", directory / "small-atomic.pickle"
    pickle_write(value, raw_file)
    pickle_write(value, replaced_file)
    fresh: list[Path] = []

    def new_file_each_time() -> None:
        fresh.append(directory / f"small-{next(_names)}.pickle")
        pickle_write(value, fresh[-1])

    repeat = 4 if report.quick else 30  # rounds of 10 calls each
    dumps = _single_rounds(
        lambda: joblib.dump(value, old_file),
        lambda: persistence.dump(value, new_file),
        # The least an atomic dump does: pickle, a temp file, a rename over the file.
        lambda: pickle_replace(value, replaced_file),
        # What joblib does: open the file with O_TRUNC, write, close (not atomic).
        lambda: pickle_write(value, raw_file),
        new_file_each_time,
        repeat=repeat,
    )
    for path in fresh:
        path.unlink()
    references = [(PICKLE_TRUNCATE, dumps[3]), (PICKLE_WRITE, dumps[4])]
    _compare_calls(report, f"dump {name}", dumps[:3], where, PICKLE_REPLACE, references)
    loads = _single_rounds(
        lambda: joblib.load(old_file),
        lambda: persistence.load(new_file),
        lambda: read_unpickle(raw_file),
        repeat=repeat * 4,
    )
    _compare_calls(report, f"load {name}", loads, where, READ_UNPICKLE)


def _compare_calls(
    report: Report,
    case: str,
    times: list[list[float]],
    where: str,
    limit: str,
    references: Sequence[tuple[str, list[float]]] = (),
) -> None:
    """Compare the median calls of joblib, joblite and the limit; ``references`` go in the note."""
    medians = [statistics.median(calls) for calls in times]
    note = "".join(f"{label}: {_seconds(statistics.median(c))}; " for label, c in references)
    best = ", ".join(_seconds(min(calls)) for calls in [*times, *(c for _, c in references)])
    report.compare(
        f"{case} (median)",
        medians[0],
        medians[1],
        limit_s=medians[2],
        limit=limit,
        where=where,
        note=f"{note}best {best} (joblib, joblite, the limit, the others); "
        f"{len(times[0])} calls each",
    )


def _seconds(seconds: float) -> str:
    return format_seconds(seconds).strip()


def _codec_frames(
    model_file: Path, arrays: list[memoryview], level: int
) -> list[tuple[str | None, bytes]]:
    """Each array's bytes as zstd frames of 8 MiB chunks, filtered as ``model_file`` says.

    The codec alone, with joblite's settings, in memory, on every core: the limit of a
    compressed dump. Returns ``(filter, frame)`` pairs for :func:`_decode_frames`.
    """
    from concurrent.futures import ThreadPoolExecutor

    import zstandard

    from joblite._core import _filters
    from joblite._core._sections import thread_count
    from joblite.persistence import inspect

    entries = inspect(model_file)["arrays"]
    work = []
    for view, entry in zip(arrays, entries, strict=True):
        for start in range(0, view.nbytes, CHUNK):
            work.append((entry.get("filter"), view[start : start + CHUNK]))
    local = threading.local()

    def compress(item: tuple[str | None, memoryview]) -> tuple[str | None, bytes]:
        name, chunk = item
        if not hasattr(local, "compressor"):
            local.compressor = zstandard.ZstdCompressor(level=level)
        raw = chunk if name is None else _filters.encode(name, chunk)
        return name, local.compressor.compress(raw)

    with ThreadPoolExecutor(thread_count(len(work))) as pool:
        return list(pool.map(compress, work))


def _decode_frames(frames: list[tuple[str | None, bytes]]) -> None:
    """Decompress (and unfilter) every frame into fresh memory, on every core."""
    from concurrent.futures import ThreadPoolExecutor

    import zstandard

    from joblite._core import _filters
    from joblite._core._sections import thread_count

    local = threading.local()

    def decompress(item: tuple[str | None, bytes]) -> None:
        name, frame = item
        if not hasattr(local, "decompressor"):
            local.decompressor = zstandard.ZstdDecompressor()
        raw = local.decompressor.decompress(frame)
        out = np.empty(len(raw), dtype=np.uint8)
        if name is None:
            out[:] = np.frombuffer(raw, dtype=np.uint8)
        else:
            _filters.decode_into(name, raw, memoryview(out))

    with ThreadPoolExecutor(thread_count(len(frames))) as pool:
        list(pool.map(decompress, frames))


def _random_forest(report: Report) -> Any:
    """A RandomForestClassifier of deep trees: ~200 MB in 200 small arrays (~50 MB quick)."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    samples = 15_000 if report.quick else FOREST_SAMPLES
    features, labels = make_classification(
        n_samples=samples,
        n_features=10,
        n_informative=6,
        n_classes=4,
        flip_y=0.2,  # label noise: deep trees, as a real forest grown without max_depth
        random_state=0,
    )
    forest = RandomForestClassifier(n_estimators=FOREST_TREES, n_jobs=2, random_state=0)
    return forest.fit(features, labels)


def _compressed_rows(
    report: Report,
    directory: Path,
    name: str,
    value: object,
    *,
    repeat: int,
) -> None:
    """dump (joblib compress=3, joblite compress=True) and load of ``value``, beside the codec.

    Ratios are of the bytes joblite serializes (its manifest's total_nbytes) to each file.
    """
    import joblib

    import joblite.persistence as persistence
    from joblite._core.pickling import dump_parts

    # The very bytes joblite compresses: every array's buffer, as its pickler hands it out.
    arrays = [buffer.raw() for buffer in dump_parts(value).buffers]

    old_file, new_file = directory / "joblib.pkl", directory / "joblite.jl"
    times = _interleaved(
        lambda: joblib.dump(value, old_file, compress=3),
        lambda: persistence.dump(value, new_file, compress=True),
        repeat=repeat,
    )
    manifest = persistence.inspect(new_file)
    raw = manifest["total_nbytes"]
    joblib_size, joblite_size = old_file.stat().st_size, new_file.stat().st_size
    filters = collections.Counter(entry.get("filter") or "none" for entry in manifest["arrays"])
    limit_s: list[float] = []
    decode_s: list[float] = []
    codec_note = ""
    if manifest["codec"] == "zstd":  # joblite's codec for compress=True, when installed
        frames: list[tuple[str | None, bytes]] = []
        for _ in range(repeat):
            frames.clear()
            limit_s.append(
                _timed(lambda: frames.extend(_codec_frames(new_file, arrays, manifest["level"])))
            )
            decode_s.append(_timed(lambda: _decode_frames(frames)))
        stored = sum(len(frame) for _, frame in frames)
        array_bytes = sum(view.nbytes for view in arrays)
        codec_note = f"; the arrays alone through the codec: {array_bytes / stored:.2f}x"
    joblib_ratio, joblite_ratio = raw / joblib_size, raw / joblite_size
    label = f"zstd level {manifest['level']}, filtered as joblite chose, 8 MiB chunks"
    _compare(
        report,
        f"dump {name}, compress (joblib 3, joblite True)",
        [times[0], times[1], *([limit_s] if limit_s else [])],
        where="disk",
        limit=f"{label}, on every core, in memory" if limit_s else "",
        target=5.0,
        extra_note=(
            f"ratio joblib {joblib_ratio:.2f}x ({joblib_size / 1e6:.1f} MB) vs "
            f"joblite {joblite_ratio:.2f}x ({joblite_size / 1e6:.1f} MB)"
            + ("" if joblite_ratio >= joblib_ratio else " RATIO WORSE")
            + codec_note
            + "; filters "
            + ", ".join(f"{key} {count}" for key, count in sorted(filters.items()))
        ),
    )
    times = _interleaved(
        lambda: joblib.load(old_file),
        lambda: persistence.load(new_file),
        repeat=repeat + 2,
    )
    _compare(
        report,
        f"load {name}, compressed",
        [times[0], times[1], *([decode_s] if decode_s else [])],
        where="disk",
        limit="decompressing and unfiltering those frames, on every core, in memory"
        if decode_s
        else "",
        target=2.0,
    )
    old_file.unlink()
    new_file.unlink()


def _bench_model(report: Report, directory: Path, rng: np.random.Generator) -> None:
    model = _model(rng, _size(report, MODEL_ELEMENTS))
    arrays = [value for value in model.values() if isinstance(value, np.ndarray)]
    raw = sum(array.nbytes for array in arrays)
    # joblib's zlib-3 takes many seconds here: one round each keeps the area short.
    _compressed_rows(report, directory, f"{raw / 1e6:.0f} MB model mix", model, repeat=1)


def _bench_forest(report: Report, directory: Path) -> None:
    if importlib.util.find_spec("sklearn") is None:
        print("      (no scikit-learn: the RandomForest rows are skipped)", flush=True)
        return
    forest = _random_forest(report)
    states = [tree.tree_.__getstate__() for tree in forest.estimators_]
    arrays = [state[key] for state in states for key in ("nodes", "values")]
    raw = sum(array.nbytes for array in arrays)
    trees = len(forest.estimators_)
    name = f"RandomForest, {trees} trees, {raw / 1e6:.0f} MB in {len(arrays)} arrays"
    _compressed_rows(report, directory, name, forest, repeat=3)


def run(report: Report) -> None:
    rng = np.random.default_rng(0)
    for where, parent in storage_places():
        with tempfile.TemporaryDirectory(prefix="bench-persistence-", dir=parent) as tmp:
            _bench_small(report, where, Path(tmp))
            _bench_cached_result(report, where, Path(tmp), rng)
            _bench_array(report, where, Path(tmp), rng)
    # On disk only: zstd and zlib spend their time on the CPU, not the file system.
    with tempfile.TemporaryDirectory(prefix="bench-persistence-", dir=os.getcwd()) as tmp:
        _bench_model(report, Path(tmp), rng)
        _bench_forest(report, Path(tmp))
