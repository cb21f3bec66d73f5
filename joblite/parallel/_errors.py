"""Task failures that cross the process boundary with their traceback.

A worker process catches the task's exception, formats its traceback and
sends both back. The caller re-raises the task's own exception type with the
remote traceback attached as ``__cause__``, so the user sees the line in their
function that failed (what loky does for ``concurrent.futures``).
"""

from __future__ import annotations

from typing import Final

__all__ = ["RemoteTraceback", "TaskFailure", "capture_failure"]


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process, as text."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class _UnpicklableTaskError(Exception):
    """Stands in for a task exception that could not be pickled back."""


class TaskFailure:
    """One failed task: its position in the batch, the exception, the remote traceback."""

    __slots__ = ("exception", "position", "traceback_text")

    def __init__(self, position: int, exception: BaseException, traceback_text: str | None):
        self.position = position
        self.exception = exception
        self.traceback_text = traceback_text

    def __reduce__(self) -> tuple[type[TaskFailure], tuple[int, BaseException, str | None]]:
        return (TaskFailure, (self.position, self.exception, self.traceback_text))

    def exception_for_caller(self) -> BaseException:
        """The exception to raise or collect, with the remote traceback as its cause."""
        exc = self.exception
        if self.traceback_text is not None and exc.__cause__ is None:
            exc.__cause__ = RemoteTraceback(self.traceback_text)
        return exc


_REMOTE_HEADER: Final = '\n"""\nTraceback in the worker process (most recent call last):\n'


def capture_failure(position: int, exc: BaseException, remote: bool) -> TaskFailure:
    """Package ``exc`` for the caller; for ``remote`` workers make sure it pickles."""
    if not remote:
        return TaskFailure(position, exc, None)
    import traceback  # here, not at the top: workers import this module at start-up

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    text = _REMOTE_HEADER + text + '"""'
    exc.__traceback__ = None  # frames do not pickle; the text carries them
    from ._wire import decode, encode

    try:
        decode(encode(exc))
    except Exception:  # any failure means the caller could not rebuild it
        exc = _UnpicklableTaskError(f"{type(exc).__qualname__}: {exc}")
    return TaskFailure(position, exc, text)
