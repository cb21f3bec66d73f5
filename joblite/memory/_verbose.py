"""Memory's ``verbose=`` lines, in joblib's words and layout.

joblib prints them; joblite sends them through :func:`joblite._core.messages.emit`
(stdout unless logging shows them). What each level adds, as in joblib 1.6:

- ``> 0``: a computation: a rule, ``[Memory] Calling module.f...``, the call
  ``f(1, y=2)``, then its duration right-aligned on a rule of underscores;
  a function's ``clear()`` (a WARNING).
- ``> 1``: a hit: ``[Memory]<time since the Memory was made>: Loading f...``.
- ``> 4``: the time a hit took to load.
- ``>= 10``: where the loaded entry is.
- ``> 10``: ``Computing func ...`` (a WARNING) and ``Persisting in ...``.
- ``>= 20``: ``Querying ...`` before every call.

Example::

    >>> duration_line("f", 0.0)
    '________________________________________________________________f - 0.0s, 0.0min'
"""

from __future__ import annotations

import logging
import pprint
import time
from typing import Any, Literal

from .._core.messages import emit, format_time
from ._entries import OUTPUT
from ._keys import FunctionIdentity
from ._settings import CacheSettings

__all__ = [
    "VerboseReports",
    "call_lines",
    "duration_line",
    "loading_line",
    "say",
    "say_warning",
    "signature",
]

_RULE = 80
# joblib's limits for one argument's repr in the call line.
_ARG_LIMIT, _ARG_KEPT = 1500, 700
_SCALARS = frozenset({int, float, bool, complex, type(None)})

logger = logging.getLogger("joblite.memory")


def say(message: str, stream: Literal["stdout", "stderr"] = "stdout") -> None:
    """An INFO message, printed on ``stream`` unless logging shows it."""
    emit(logger, message, stream=stream)


def say_warning(message: str) -> None:
    """A WARNING message (on stderr when logging has no handler, as joblib's)."""
    emit(logger, message, stream="stderr", level=logging.WARNING)


def _format_arg(arg: Any) -> str:
    if type(arg) in _SCALARS:  # pformat gives the repr, in 5.7 µs instead of 0.3
        return repr(arg)
    text = pprint.pformat(arg, indent=2)
    return text if len(text) <= _ARG_LIMIT else text[:_ARG_KEPT] + "..."


def signature(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """``name(arg, ..., key=value)`` as joblib writes a call."""
    parts, previous = [], 0
    for arg in args:
        text = _format_arg(arg)
        if previous > _RULE:  # joblib breaks the line after a long argument
            text = "\n" + text
        previous = len(text)
        parts.append(text)
    parts.extend(f"{key}={_format_arg(value)}" for key, value in kwargs.items())
    return f"{name}({', '.join(parts)})"


def call_lines(path: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The rule, ``[Memory] Calling path...`` and the call, as one message."""
    return f"{'_' * _RULE}\n[Memory] Calling {path}...\n{signature(name, args, kwargs)}"


def duration_line(name: str, duration: float, context: str = "") -> str:
    """``name [context]- 1.0s, 0.0min`` right-aligned on a rule of underscores."""
    message = f"{name} {context}- {format_time(duration)}"
    return "_" * max(0, _RULE - len(message)) + message


def loading_line(description: str, timestamp: float | None, verbose: float, where: str) -> str:
    """``[Memory]<elapsed>: Loading description...`` (``... from where`` at verbose >= 10)."""
    elapsed = "" if timestamp is None else f"{format_time(time.time() - timestamp): <16}"
    message = f"[Memory]{elapsed}: Loading {description}"
    return f"{message}..." if verbose < 10 else f"{message} from {where}"


class VerboseReports:
    """What a memoized function says at each ``verbose`` level (mixed into ``MemorizedFunc``)."""

    verbose: float
    timestamp: float
    _short_name: str
    _identity: FunctionIdentity
    _settings: CacheSettings

    def _report_query(self, entry: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        call = signature(self._short_name, args, kwargs)
        say(
            f"[{self!r}]: \nQuerying {self._short_name} with signature\n{call}.\n\n"
            f"(argument hash {entry.rpartition('/')[2]})\n\n"
            f"The store location is {self._settings.store.location}/{self._identity.func_id}.\n",
            stream="stderr",  # joblib logs it (after logging.basicConfig)
        )

    def _report_hit(self, entry: str, started: float) -> None:
        store, name = self._settings.store, self._short_name
        where = store.local_path(entry + OUTPUT) or f"{store.location}/{entry}"
        say(loading_line(name, self.timestamp, self.verbose, where))
        if self.verbose > 4:
            say(duration_line(name, time.perf_counter() - started, "cache loaded "))

    def _report_computing(self, entry: str) -> None:
        func_dir, args_id = entry.partition("/")[0], entry.rpartition("/")[2]
        say_warning(
            f"[{self!r}]: Computing func {self._short_name}, argument hash {args_id} "
            f"in location {self._settings.store.location}/{func_dir}"
        )

    def _before_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.verbose > 0:
            say(call_lines(self._identity.name, self._short_name, args, kwargs))

    def _after_call(self, started: float) -> None:
        """Report the computation that began at ``started`` (stored or not)."""
        if self.verbose > 0:
            say(duration_line(self._short_name, time.perf_counter() - started))
