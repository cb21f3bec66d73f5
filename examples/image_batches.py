"""Process image batches on worker threads, with a progress bar and a worker initializer.

The initializer runs once in each worker, before its first task: the place to
load what every task needs (a model, a lookup table, here a blur kernel)
without sending it with each batch. ``progress=True`` draws a tqdm bar on
stderr (``pip install "joblite[progress]"``).

numpy's FFTs release the GIL, so threads work in parallel here, on the images
themselves, without copies. For process workers, put ``load_kernel`` and
``sharpness`` in a module of your own that the workers import: a script's
functions reach worker processes as copies, which do not share the script's
globals, so a task would not see what the initializer stored.

    python examples/image_batches.py

``JOBLITE_EXAMPLE_SIZE=small`` runs it on a few small images.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from joblite import Parallel, delayed

SMALL = os.environ.get("JOBLITE_EXAMPLE_SIZE") == "small"

# each worker thread's own state: set by load_kernel, read by the tasks it runs
_worker = threading.local()


def load_kernel(side: int, sigma: float) -> None:
    """Initializer: build the Gaussian blur kernel's spectrum once per worker."""
    x = np.fft.fftfreq(side)
    gauss = np.exp(-2 * (np.pi * sigma) ** 2 * (x[:, None] ** 2 + x[None, :] ** 2))
    _worker.kernel_spectrum = gauss[:, : side // 2 + 1]


def sharpness(batch: np.ndarray) -> np.ndarray:
    """How much detail each image loses to a blur: a stand-in for real per-image work."""
    spectrum = _worker.kernel_spectrum  # AttributeError if the initializer did not run
    blurred = np.fft.irfft2(np.fft.rfft2(batch) * spectrum, s=batch.shape[1:])
    return np.abs(batch - blurred).mean(axis=(1, 2))


def main() -> None:
    n_images, side, batch_size = (16, 32, 4) if SMALL else (2_000, 256, 50)
    images = np.random.default_rng(0).random((n_images, side, side), dtype=np.float32)
    batches = [images[i : i + batch_size] for i in range(0, n_images, batch_size)]

    parallel = Parallel(
        n_jobs=2,
        prefer="threads",
        progress=True,
        initializer=load_kernel,
        initargs=(side, 2.0),
    )
    scores = np.concatenate(parallel(delayed(sharpness)(batch) for batch in batches))
    print(f"processed {len(scores)} images in {len(batches)} batches on 2 worker threads")
    print(f"sharpest image: #{scores.argmax()} (score {scores.max():.4f})")


if __name__ == "__main__":
    main()
