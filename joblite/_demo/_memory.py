"""The Memory step of ``python -m joblite demo``: a cached feature extraction."""

from __future__ import annotations

import pathlib
import time
from typing import Any

from ._size import Size


def _features(images: Any, bins: int = 32) -> Any:
    """Per-image intensity histograms and spectral energy: a stand-in for real work."""
    import numpy as np

    spectra = np.abs(np.fft.rfft2(images)) ** 2
    energy = spectra.reshape(len(images), -1).sum(axis=1, keepdims=True)
    histograms = np.stack([np.histogram(image, bins=bins, range=(0, 1))[0] for image in images])
    return np.hstack([histograms, np.log1p(energy)])


def _normalized(images: Any) -> Any:
    """A result as big as the input, to show memory-mapped loading."""
    return (images - images.mean()) / images.std()


def _timed(call: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = call()
    return value, time.perf_counter() - start


def run(workdir: pathlib.Path, size: Size) -> None:
    """Call cached functions twice (the second call is a hit) and print timings."""
    import numpy as np

    from joblite.memory import Memory

    images = np.random.default_rng(0).random((size.images, 128, 128))
    memory = Memory(workdir / "memory-cache", verbose=0)
    features = memory.cache(_features)

    first, computed = _timed(lambda: features(images, bins=32))
    was_cached = features.check_call_in_cache(images, bins=32)
    second, loaded = _timed(lambda: features(images, bins=32))
    info = features.lookup(images, bins=32)
    if not (was_cached and np.array_equal(first, second) and info is not None and info.hits):
        raise RuntimeError("demo check failed: the second call was not a cache hit")
    print(f"  features of {images.nbytes / 2**20:.1f} MiB of images -> array {first.shape}")
    print(f"    first call (computed and stored): {computed * 1e3:8.1f} ms")
    print(f"    second call (cache hit):          {loaded * 1e3:8.1f} ms")
    print(f"    entry {info.key}: {info.size} bytes, {info.hits} hit")

    normalize = Memory(workdir / "memory-cache", mmap_mode="r", verbose=0).cache(_normalized)
    _, computed = _timed(lambda: normalize(images))
    mapped, loaded = _timed(lambda: normalize(images))
    if not isinstance(mapped, np.memmap):
        raise RuntimeError("demo check failed: mmap_mode='r' did not map the result")
    print(f"  a {mapped.nbytes / 2**20:.1f} MiB result with mmap_mode='r':")
    print(f"    first call (computed and stored): {computed * 1e3:8.1f} ms")
    print(f"    second call (memory-mapped):      {loaded * 1e3:8.1f} ms")
