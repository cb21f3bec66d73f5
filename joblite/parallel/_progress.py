"""Progress reporting from the caller's thread: a callback, a tqdm bar, or logging.

Example::

    Parallel(n_jobs=2, progress=lambda done, total: print(done, total))(...)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..exceptions import MissingDependencyError

__all__ = ["Progress", "make_progress"]

logger = logging.getLogger("joblite.parallel")

ProgressCallback = Callable[[int, "int | None"], object]


class Progress:
    """Receives ``update(done, total)``; ``total`` is None until the input is exhausted."""

    def update(self, done: int, total: int | None) -> None:
        """Called after each completed batch."""

    def close(self) -> None:
        """Called once when the call ends, however it ends."""


class _CallbackProgress(Progress):
    def __init__(self, callback: ProgressCallback) -> None:
        self.callback = callback

    def update(self, done: int, total: int | None) -> None:
        self.callback(done, total)


class _TqdmProgress(Progress):
    def __init__(self) -> None:
        try:
            from tqdm.auto import tqdm
        except ImportError as exc:
            raise MissingDependencyError("tqdm", "progress", "Parallel(progress=True)") from exc
        self.bar: Any = tqdm(total=None, unit="task")

    def update(self, done: int, total: int | None) -> None:
        if total is not None and self.bar.total != total:
            self.bar.total = total
            self.bar.refresh()
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


class _LogProgress(Progress):
    """joblib's ``verbose`` messages, through logging at INFO level.

    Like joblib, higher ``verbose`` means more frequent messages: above 10
    every batch is reported, otherwise at growing intervals.
    """

    def __init__(self, verbose: float, backend_name: str, n_jobs: int) -> None:
        self.verbose = verbose
        self.start = time.perf_counter()
        self.next_report = 1
        logger.info("Using backend %s with %d concurrent workers.", backend_name, n_jobs)

    def update(self, done: int, total: int | None) -> None:
        if self.verbose <= 10 and done < self.next_report and done != total:
            return
        self.next_report = max(done * 2, done + 1) if self.verbose < 10 else done + 1
        elapsed = time.perf_counter() - self.start
        if total is None:
            logger.info("Done %6d tasks      | elapsed: %8.2fs", done, elapsed)
        else:
            logger.info("Done %6d out of %6d | elapsed: %8.2fs", done, total, elapsed)


class _Several(Progress):
    def __init__(self, parts: list[Progress]) -> None:
        self.parts = parts

    def update(self, done: int, total: int | None) -> None:
        for part in self.parts:
            part.update(done, total)

    def close(self) -> None:
        for part in self.parts:
            part.close()


def make_progress(
    progress: bool | ProgressCallback | None, verbose: float, backend_name: str, n_jobs: int
) -> Progress | None:
    """None when nobody listens, so the hot loop skips progress entirely."""
    parts: list[Progress] = []
    if progress is True:
        parts.append(_TqdmProgress())
    elif callable(progress):
        parts.append(_CallbackProgress(progress))
    elif progress not in (None, False):
        raise TypeError(f"progress must be a bool or a callable(done, total), got {progress!r}")
    if verbose and verbose > 0 and logger.isEnabledFor(logging.INFO):
        parts.append(_LogProgress(verbose, backend_name, n_jobs))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else _Several(parts)
