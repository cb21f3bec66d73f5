"""What identifies a cached call: the function, its code version and its arguments.

- The function's identity is its module and qualified name (a lambda also
  gets its line number, so two lambdas of one module do not share entries).
  For ``__main__`` the module name includes the script's absolute path, so
  two scripts sharing a cache do not share (or invalidate) each other's entries.
- Its *version* hashes its source code (or, when no source is available, its
  compiled code object): editing the function moves it to a new version and
  the old entries are dropped. A version without source is only used, never
  compared against the store's other versions: the compiled code differs
  between processes (e.g. a function cloudpickled by value to a worker), so
  a different version there does not mean the code changed. A memoized
  function sent to another process carries its version along (see
  :func:`seed_version`), so the copy uses the sender's version.
- Arguments are bound to the signature (defaults filled in), so ``f(1, b=2)``
  and ``f(1, 2)`` are the same call; ``ignore``d parameters are left out.

Example::

    >>> def f(a, b=2): ...
    >>> binder = ArgumentBinder(f, ignore=["b"])
    >>> binder.bind((1,), {}) == binder.bind((), {"a": 1, "b": 5})
    True
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import marshal
import os
import re
import sys
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .._core.hashing import hash as core_hash

__all__ = ["ArgumentBinder", "FunctionIdentity", "code_version", "identify", "seed_version"]

_UNSAFE_PATH_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")
_VERSION_LENGTH = 16
# func_id is a directory name: file systems refuse names over 255 bytes.
_MAX_FUNC_ID = 160


@dataclass(frozen=True)
class FunctionIdentity:
    """Who a cached function is, without reading its source (cheap, done at decoration).

    ``name`` is ``module.qualname``; ``func_id`` is that name made safe as a
    directory name; ``target`` is the plain function whose signature the
    arguments bind to; ``bound_state`` holds what the call depends on besides
    its arguments (a partial's frozen arguments, a callable instance);
    ``implicit_self`` is the ``self`` of a bound method (passed as a
    regular, hashed argument), else None; ``signature_of`` is what the
    arguments are bound against (the partial itself for a partial).
    """

    name: str
    func_id: str
    target: Callable[..., Any]
    bound_state: tuple[Any, ...]
    implicit_self: Any
    signature_of: Callable[..., Any]


def _unwrap(func: Callable[..., Any]) -> tuple[Callable[..., Any], tuple[Any, ...], Any]:
    if isinstance(func, functools.partial):
        inner, state, implicit_self = _unwrap(func.func)
        # The partial's own signature already hides a bound method's self.
        partial_state = ("partial", implicit_self, func.args, tuple(sorted(func.keywords.items())))
        return inner, (*state, *partial_state), None
    if inspect.ismethod(func):
        return func.__func__, (), func.__self__
    if inspect.isfunction(func) or inspect.isbuiltin(func) or isinstance(func, type):
        return func, (), None
    # A callable instance: what it computes may depend on its attributes.
    return func, ("instance", func), None


def identify(func: Callable[..., Any]) -> FunctionIdentity:
    """The identity of ``func`` (see :class:`FunctionIdentity`)."""
    target, bound_state, implicit_self = _unwrap(func)
    named = target if hasattr(target, "__qualname__") else type(target)
    module = getattr(named, "__module__", None) or "__unknown__"
    qualname = str(getattr(named, "__qualname__", None) or getattr(named, "__name__", "callable"))
    code = getattr(target, "__code__", None)
    if qualname.endswith("<lambda>") and code is not None:
        qualname = f"{qualname}-L{code.co_firstlineno}"
    if module == "__main__":
        module = _main_module_name(target)
    name = f"{module}.{qualname}"
    signature_of = func if isinstance(func, functools.partial) else target
    return FunctionIdentity(name, _func_id(name), target, bound_state, implicit_self, signature_of)


def _main_module_name(target: Callable[..., Any]) -> str:
    """``__main__`` plus the script's path, as joblib does; plain ``__main__`` without a file.

    The script is the ``__file__`` of the function's globals (kept when the
    function is pickled by value to another process); interactive sessions
    and notebooks have none, and their ``co_filename`` changes per session.
    """
    namespace = getattr(target, "__globals__", None)
    if not isinstance(namespace, dict):  # a class or callable instance
        namespace = vars(sys.modules["__main__"]) if "__main__" in sys.modules else {}
    script = namespace.get("__file__")
    if not isinstance(script, str) or not script:
        return "__main__"
    stem, extension = os.path.splitext(os.path.abspath(script))
    if extension != ".py":
        stem += extension
    return "__main__-" + stem.replace(os.sep, "-").strip("-")


def _func_id(name: str) -> str:
    """``name`` as one directory name: only ``[A-Za-z0-9_.-]``, never hidden, ``.`` or ``..``."""
    func_id = _UNSAFE_PATH_CHARS.sub("-", name)
    if len(func_id) > _MAX_FUNC_ID:
        # Keep the end (the most telling part) and a digest of the whole name.
        func_id = f"{func_id[-(_MAX_FUNC_ID - 17) :]}-{core_hash(name)[:16]}"
    # A leading dot would make "." or ".." (the cache root or above) or a name
    # the store hides; real module names never start with one, so ids of
    # normal functions are unchanged.
    return f"_{func_id}" if func_id.startswith(".") or not func_id else func_id


_VERSIONS: weakref.WeakKeyDictionary[Any, tuple[Any, str, str | None]] = weakref.WeakKeyDictionary()


def code_version(target: Callable[..., Any]) -> tuple[str, str | None]:
    """``(version, source)`` of ``target``; the version changes when its code does.

    Computed from the source when there is one (so editing a comment counts,
    as in joblib), else from the compiled code object. Cached per function
    object and code object, so the source is read once per process.
    """
    code = getattr(target, "__code__", None)
    try:
        cached = _VERSIONS.get(target)
    except TypeError:  # not weak-referenceable (some built-ins)
        cached = None
    if cached is not None and cached[0] is code:
        return cached[1], cached[2]
    source = _source_of(target)
    if source is not None:
        basis: object = source
    elif code is not None:
        basis = marshal.dumps(code)
    else:
        basis = f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', '')}"
    version = core_hash(basis)[:_VERSION_LENGTH]
    with contextlib.suppress(TypeError):
        _VERSIONS[target] = (code, version, source)
    return version, source


def seed_version(target: Callable[..., Any], version: str, source: str | None) -> None:
    """Make :func:`code_version` of ``target`` return ``(version, source)``.

    For a function rebuilt from a pickle sent by another process: a copy sent
    by value (a ``__main__`` function through cloudpickle) has no readable
    source, and recomputing its version would disagree with the sender's.
    """
    with contextlib.suppress(TypeError):
        _VERSIONS[target] = (getattr(target, "__code__", None), version, source)


def _source_of(func: Callable[..., Any]) -> str | None:
    try:
        return inspect.getsource(func)
    except (OSError, TypeError):
        # Built-ins, code made by exec(), a REPL session without history.
        return None


class ArgumentBinder:
    """Turns ``(args, kwargs)`` into one tuple of values in signature order.

    Raises :class:`TypeError` if ``ignore`` is not a list of names and
    :class:`ValueError` if it names a parameter ``func`` does not have. At
    call time, arguments that do not fit the signature raise the same
    :class:`TypeError` as calling the function would.
    """

    def __init__(self, func: Callable[..., Any], ignore: Iterable[str] | None = None) -> None:
        try:
            self.signature = inspect.signature(func)
        except (TypeError, ValueError):
            # Some built-ins have no introspectable signature: take anything.
            self.signature = inspect.Signature(
                [
                    inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
                    inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
                ]
            )
        params = list(self.signature.parameters.values())
        named = func.func if isinstance(func, functools.partial) else func
        self._func_name = str(
            getattr(named, "__qualname__", None) or getattr(named, "__name__", None) or named
        )
        self._n_positional = sum(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params
        )
        self.names = tuple(p.name for p in params)
        ignored = _check_ignore(ignore, self.names, func)
        self.ignored = ignored
        self._keep = tuple(i for i, n in enumerate(self.names) if n not in ignored)
        # The names of the values bind() returns, in order.
        self.kept_names = tuple(self.names[i] for i in self._keep)
        self._all_kept = len(self._keep) == len(self.names)
        self._simple = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
        self._defaults = {p.name: p.default for p in params if p.default is not p.empty}
        # How many positional arguments (and no keywords) make a call that
        # bind() returns as it is; -1 if none does.
        self.as_is = len(self.names) if self._simple and self._all_kept else -1

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """The call's argument values in signature order, ignored ones left out."""
        if not kwargs and len(args) == self.as_is:  # the common call: a method call less
            return args
        values = self._fast_bind(args, kwargs) if self._simple else None
        if values is None:
            arguments = self.named_arguments(args, kwargs)
            values = tuple(arguments[name] for name in self.names)
        if self._all_kept:
            return values
        return tuple(values[i] for i in self._keep)

    def _fast_bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
        names = self.names
        n_args = len(args)
        if n_args == len(names) and not kwargs:
            return args
        if n_args > len(names):
            return None
        values = list(args)
        used = 0
        for name in names[n_args:]:
            if name in kwargs:
                values.append(kwargs[name])
                used += 1
            elif name in self._defaults:
                values.append(self._defaults[name])
            else:
                return None  # a missing argument: let Signature.bind word the error
        if used != len(kwargs):
            return None  # unexpected or duplicated keyword
        return tuple(values)

    def named_arguments(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], *, fast: bool = False
    ) -> dict[str, Any]:
        """``{parameter name: value}`` with defaults filled in (for metadata and errors)."""
        if fast and self._simple:
            values = self._fast_bind(args, kwargs)
            if values is not None:
                return dict(zip(self.names, values, strict=True))
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise self._call_error(exc, len(args)) from None
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        for name, param in self.signature.parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                arguments[name] = dict(sorted(arguments[name].items()))
        return arguments

    def _call_error(self, exc: TypeError, n_args: int) -> TypeError:
        """The error, worded like Python's for the function (``Signature.bind`` omits its name)."""
        name = self._func_name
        if str(exc) == "too many positional arguments":
            expected = self._n_positional
            plural = "" if expected == 1 else "s"
            verb = "was" if n_args == 1 else "were"
            return TypeError(
                f"{name}() takes {expected} positional argument{plural} but {n_args} {verb} given"
            )
        return TypeError(f"{name}(): {exc}")


def _check_ignore(
    ignore: Iterable[str] | None, names: tuple[str, ...], func: object
) -> frozenset[str]:
    if ignore is None:
        return frozenset()
    if isinstance(ignore, str) or not isinstance(ignore, (list, tuple, set, frozenset)):
        raise TypeError(f"ignore must be a list of parameter names, got {ignore!r}")
    for name in ignore:
        if not isinstance(name, str):
            raise TypeError(f"ignore must be a list of parameter names, got {ignore!r}")
        if name not in names:
            raise ValueError(
                f"ignore names {name!r}, which is not a parameter of {func!r}; "
                f"its parameters are {list(names)}"
            )
    return frozenset(ignore)
