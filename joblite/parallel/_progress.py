"""Progress reporting from the caller's thread: a callback, a tqdm bar, ``verbose`` lines.

Example::

    Parallel(n_jobs=2, progress=lambda done, total: print(done, total))(...)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, Literal

from .._core.messages import emit, short_format_time
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


class _VerboseProgress(Progress):
    """joblib's ``verbose`` lines, through logging or printed where joblib prints them.

    ``[Parallel(n_jobs=2)]: Done  20 out of  20 | elapsed:    0.5s finished``:
    on stderr below ``verbose=50``, stdout from 50 (see ``_core.messages.emit``
    for when logging shows them instead). Up to ``verbose=10`` the lines thin
    out as batches complete (a gap growing with the square root of the batch
    count, wider for lower ``verbose``); above 10 every batch is reported.
    """

    def __init__(
        self,
        verbose: float,
        backend_name: str | None,
        n_jobs: object,
        workers: int,
        total: int | None,
    ) -> None:
        self.verbose = verbose
        self.prefix = f"[Parallel(n_jobs={n_jobs})]: "
        self.stream: Literal["stdout", "stderr"] = "stderr" if verbose < 50 else "stdout"
        # joblib's field width: the digits of the input's len(), 3 without one.
        self.width = len(str(total)) if total else 3
        self.batches = 0
        self.finished = False
        self.start = time.perf_counter()
        if backend_name is not None:  # joblib's plain loop (n_jobs=1) does not say it
            self._say(f"Using backend {backend_name} with {workers} concurrent workers.")

    def _say(self, message: str) -> None:
        emit(logger, self.prefix + message, stream=self.stream)

    def _shown(self, index: int) -> bool:
        """Whether the ``index``-th completed batch (from 1) gets a line."""
        if self.verbose > 10:
            return True
        spacing = 0.5 * (11 - self.verbose) ** 2
        return int(math.sqrt((index + 1) / spacing)) != int(math.sqrt(index / spacing))

    def update(self, done: int, total: int | None) -> None:
        if self.finished:
            return
        self.batches += 1
        width = self.width
        elapsed = short_format_time(time.perf_counter() - self.start)
        if done == total:
            self.finished = True
            self._say(f"Done {done:{width}d} out of {done:{width}d} | elapsed: {elapsed} finished")
        elif not self._shown(self.batches):
            return
        elif total is None:
            pad = " " * (len("out of ") + width - len("tasks"))
            self._say(f"Done {done:{width}d} tasks {pad}| elapsed: {elapsed}")
        else:
            self._say(f"Done {done:{width}d} out of {total:{width}d} | elapsed: {elapsed}")


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
    progress: bool | ProgressCallback | None,
    verbose: float,
    backend_name: str | None,
    n_jobs: object,
    workers: int,
    total: int | None,
) -> Progress | None:
    """None when nobody listens, so the hot loop skips progress entirely.

    ``backend_name`` is None for a plain loop; ``n_jobs`` is what the caller
    asked for (joblib's prefix shows it),
    ``workers`` how many run, ``total`` the input's ``len()`` if it has one.
    """
    parts: list[Progress] = []
    if progress is True:
        parts.append(_TqdmProgress())
    elif callable(progress):
        parts.append(_CallbackProgress(progress))
    elif progress not in (None, False):
        raise TypeError(f"progress must be a bool or a callable(done, total), got {progress!r}")
    if verbose and verbose > 0:
        parts.append(_VerboseProgress(verbose, backend_name, n_jobs, workers, total))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else _Several(parts)
