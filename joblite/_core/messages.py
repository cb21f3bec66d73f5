"""Where ``verbose=`` messages go: to ``logging`` when it shows them, else printed as joblib does.

joblib ``print``s its verbose lines (Memory's on stdout, Parallel's progress
on stderr). joblite sends them through ``logging`` (loggers ``joblite.*``),
and writes a message to the stream joblib would use only when logging would
not show it: its logger is not enabled for the level, or no handler on the
way up to the root logger takes it. So ``verbose=`` works with no logging
set-up at all, and a program whose logging shows the message (say
``logging.basicConfig(level=logging.INFO)``) sees it once, formatted by its
own handlers. A root handler that drops INFO records (``basicConfig()``'s
default WARNING level, pytest's capture handler) does not count: joblib
users see these lines there too.

Example::

    >>> import logging
    >>> emit(logging.getLogger("joblite.example"), "[Memory] Calling f...")
    [Memory] Calling f...
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Literal

__all__ = ["emit", "format_time", "short_format_time", "shown_by_logging", "warn_at_caller"]

# joblite/ itself: frames in files below it are the library's, not the user's.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` pointing at the first frame outside joblite: the user's call.

    A fixed ``stacklevel`` points into joblite whenever the path to the warning
    changes (a backend hook, an adapter); the user needs the line of their
    ``Parallel(...)`` call.
    """
    frame = sys._getframe(1)
    level = 2  # stacklevel 2 is the frame that called this function
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def shown_by_logging(logger: logging.Logger, level: int) -> bool:
    """Whether a ``level`` record sent to ``logger`` reaches a handler that takes it.

    Walks the loggers as :meth:`logging.Logger.callHandlers` does (stopping at
    ``propagate=False``); handlers' filters are not consulted.
    """
    if not logger.isEnabledFor(level):
        return False
    current: logging.Logger | None = logger
    while current is not None:
        if any(level >= handler.level for handler in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def emit(
    logger: logging.Logger,
    message: str,
    *,
    stream: Literal["stdout", "stderr"] = "stdout",
    level: int = logging.INFO,
) -> None:
    """Log ``message`` on ``logger`` if logging shows it, else write it on ``stream``.

    ``stream`` is looked up in :mod:`sys` at each call (so redirections and
    pytest's capture apply); nothing is written when it is None (``pythonw``).
    The message is written as it is, one line feed added, like ``print``.
    """
    if shown_by_logging(logger, level):
        logger.log(level, "%s", message, stacklevel=2)
        return
    out = sys.stdout if stream == "stdout" else sys.stderr
    if out is not None:
        out.write(message + "\n")


def format_time(t: float) -> str:
    """A duration in seconds as seconds and minutes, joblib's format.

    >>> format_time(75.0)
    '75.0s, 1.2min'
    """
    return f"{t:.1f}s, {t / 60:.1f}min"


def short_format_time(t: float) -> str:
    """A duration in seconds as one 7-character field: minutes above 60 s, else seconds.

    The output matches joblib's character for character, so log lines that
    scikit-learn builds with it keep their alignment.

    >>> short_format_time(42.0), short_format_time(72.0)
    ('  42.0s', ' 1.2min')
    """
    if t > 60:
        return f"{t / 60:4.1f}min"
    return f" {t:5.1f}s"
