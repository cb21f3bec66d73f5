"""The per-call options of ``Parallel``: checked once, then carried as one frozen value.

``Parallel.__init__`` checks its own arguments here (the ones it shares with
``parallel_config`` are checked in ``_config.settings_layer``); each call then
hands the dispatch loop or the inline loop a :class:`CallOptions`. Example::

    >>> check_call_options("list", "raise", 0, None, "auto", "2 * n_jobs", None, ())
    >>> max_in_flight("2 * n_jobs", n_jobs=4)
    8
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, Final, NamedTuple

__all__ = ["ON_ERROR", "RETURN_AS", "CallOptions", "check_call_options", "max_in_flight"]

RETURN_AS: Final = ("list", "generator", "generator_unordered")
ON_ERROR: Final = ("raise", "collect")


class CallOptions(NamedTuple):
    """How one call runs, decided by ``Parallel`` before it starts (immutable)."""

    batch_size: int | None  # None: sized from measured task durations
    max_in_flight: int
    timeout: float | None  # seconds per task
    collect: bool  # on_error="collect"
    retries: int
    ordered: bool  # results in submission order (else as they complete)
    task_seconds: float | None = None  # per-task duration an earlier call measured

    @classmethod
    def of(cls, parallel: Any, n_jobs: int, task_seconds: float | None) -> CallOptions:
        """The options of a call of ``parallel`` (a ``Parallel``) on ``n_jobs`` workers."""
        in_flight = max_in_flight(parallel.pre_dispatch, n_jobs)
        batch_size = None if parallel.batch_size == "auto" else int(parallel.batch_size)
        if parallel.timeout is not None:
            # Process deadlines count from submission, so nothing may queue behind
            # a busy worker (thread deadlines count from the task's start).
            in_flight = n_jobs
            batch_size = batch_size or 1
        return cls(
            batch_size=batch_size,
            max_in_flight=in_flight,
            timeout=parallel.timeout,
            collect=parallel.on_error == "collect",
            retries=parallel.retries,
            ordered=parallel.return_as != "generator_unordered",
            task_seconds=task_seconds,
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_call_options(
    return_as: object,
    on_error: object,
    retries: object,
    timeout: object,
    batch_size: object,
    pre_dispatch: object,
    initializer: object,
    initargs: object,
) -> None:
    """Raise ``ValueError``/``TypeError`` naming the first bad ``Parallel``-only argument."""
    if return_as not in RETURN_AS:
        raise ValueError(f"return_as must be one of {RETURN_AS}, got {return_as!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if not _is_int(retries) or retries < 0:  # type: ignore[operator]
        raise ValueError(f"retries must be an int >= 0, got {retries!r}")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if batch_size != "auto" and (not _is_int(batch_size) or batch_size < 1):  # type: ignore[operator]
        raise ValueError(f"batch_size must be 'auto' or an int >= 1, got {batch_size!r}")
    if isinstance(pre_dispatch, str):
        if pre_dispatch != "all":
            _eval_pre_dispatch(pre_dispatch, 1)  # a bad expression fails now
    elif not _is_int(pre_dispatch) or pre_dispatch < 1:  # type: ignore[operator]
        raise ValueError(
            "pre_dispatch must be 'all', an int >= 1 or an expression of n_jobs "
            f"such as '2 * n_jobs', got {pre_dispatch!r}"
        )
    if initializer is not None and not callable(initializer):
        raise TypeError(f"initializer must be callable or None, got {initializer!r}")
    if not isinstance(initargs, (tuple, list)):
        raise TypeError(f"initargs must be a tuple, got {initargs!r}")


def max_in_flight(pre_dispatch: str | int, n_jobs: int) -> int:
    """How many batches may be in flight: ``pre_dispatch`` evaluated for ``n_jobs``."""
    if pre_dispatch == "all":
        return sys.maxsize
    if isinstance(pre_dispatch, int):
        return pre_dispatch
    return _eval_pre_dispatch(pre_dispatch, n_jobs)


@functools.lru_cache(maxsize=64)
def _eval_pre_dispatch(expression: str, n_jobs: int) -> int:
    """Evaluate joblib's ``"2 * n_jobs"``-style strings without ``eval``."""
    import ast
    import operator

    operators: dict[type, Callable[[Any, Any], Any]] = {
        ast.Add: operator.add,
        ast.Sub: operator.sub,
        ast.Mult: operator.mul,
        ast.FloorDiv: operator.floordiv,
        ast.Div: operator.truediv,
    }

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Name) and node.id == "n_jobs":
            return n_jobs
        if isinstance(node, ast.BinOp) and type(node.op) in operators:
            return operators[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError

    try:
        return max(1, int(walk(ast.parse(expression, mode="eval"))))
    except (ValueError, SyntaxError, ZeroDivisionError):
        raise ValueError(
            f"pre_dispatch must be 'all', an int or an expression of n_jobs such as "
            f"'2 * n_jobs', got {expression!r}"
        ) from None
