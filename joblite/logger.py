"""joblib's small logging helpers: ``Logger``, ``PrintTime`` and the time formatters.

Kept for code written against ``joblib.logger`` (scikit-learn does
``from joblib import logger`` and calls ``logger.short_format_time``);
joblite's own diagnostics go through ``logging.getLogger("joblite...")``.

Example::

    >>> timer = PrintTime(stream=None)
    >>> timer("loaded the data")  # doctest: +ELLIPSIS
    'loaded the data: ...s, ...min'
    >>> short_format_time(90.0)
    ' 1.5min'
"""

from __future__ import annotations

import logging
import os
import pprint
import sys
import time
from typing import IO

from ._core.messages import format_time as format_time
from ._core.messages import short_format_time as short_format_time

__all__ = ["Logger", "PrintTime", "format_time", "short_format_time"]


class Logger:
    """Base class for objects that log messages under a name (``"joblite"`` by default).

    ``depth`` limits how deep :meth:`format` renders nested objects.
    """

    def __init__(self, depth: int = 3, name: str | None = None) -> None:
        self.depth = depth
        self._name = name or "joblite"

    def warn(self, msg: str) -> None:
        logging.getLogger(self._name).warning("[%s]: %s", self, msg)

    def info(self, msg: str) -> None:
        logging.getLogger(self._name).info("[%s]: %s", self, msg)

    def debug(self, msg: str) -> None:
        logging.getLogger(self._name).debug("[%s]: %s", self, msg)

    def format(self, obj: object, indent: int = 0) -> str:
        """``obj`` pretty-printed, nested no deeper than ``self.depth``."""
        return pprint.pformat(obj, indent=indent, depth=self.depth)


class PrintTime:
    """Report the time since the previous call (or since creation, with ``total=True``).

    Each message goes to ``stream`` (stderr by default; ``None`` for none) and
    is appended to ``logfile`` (or ``logdir/joblite.log``) when one is given.
    Raises ``ValueError`` if both ``logfile`` and ``logdir`` are given.
    """

    def __init__(
        self,
        logfile: str | os.PathLike[str] | None = None,
        logdir: str | os.PathLike[str] | None = None,
        *,
        stream: IO[str] | None = sys.stderr,
    ) -> None:
        if logfile is not None and logdir is not None:
            raise ValueError("give `logfile` or `logdir`, not both")
        if logdir is not None:
            logfile = os.path.join(logdir, "joblite.log")
        self.logfile = None if logfile is None else os.fspath(logfile)
        self.stream = stream
        self.start_time = self.last_time = time.time()
        if self.logfile is not None:
            os.makedirs(os.path.dirname(self.logfile) or ".", exist_ok=True)
            with open(self.logfile, "a", encoding="utf-8") as f:
                f.write(f"\n---{time.ctime(self.start_time)}---\n")

    def __call__(self, msg: str = "", total: bool = False) -> str:
        """Write and return ``"msg: <elapsed>"``."""
        now = time.time()
        lapse = now - (self.start_time if total else self.last_time)
        line = f"{msg}: {lapse:.2f}s, {lapse / 60:.1f}min"
        if self.stream is not None:
            self.stream.write(line + "\n")
        if self.logfile is not None:
            with open(self.logfile, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        self.last_time = now
        return line
