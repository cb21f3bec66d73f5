"""Which object a global in a restricted stream names, and under which rule.

The name is checked against the deny-list, the safe default set and the
caller's ``allowed`` patterns (see :mod:`._restricted_rules`), in that order;
what the name resolves to is checked again under its own name, so an alias
of a denied object is denied too.

Example::

    >>> obj, rule, name = resolve("collections", "OrderedDict", [])
    >>> obj.__name__, rule.call is not None, name
    ('OrderedDict', True, 'collections.OrderedDict')
"""

from __future__ import annotations

import fnmatch
import importlib
import sys
import types
from collections.abc import Sequence
from typing import Any

from joblite.exceptions import UnsafeLoadError

from ._restricted_rules import SAFE, VALUE, Rule, denied_reason

__all__ = ["BY_VALUE_LOADER", "TRUSTED", "allowed_by_name", "canonical", "matches", "resolve"]

# pickling._load_by_value: it runs an unrestricted pickle.loads.
BY_VALUE_LOADER = "joblite._core.pickling._load_by_value"


def matches(module: str, name: str, patterns: Sequence[str]) -> bool:
    """Whether ``module.name`` (or the module, with ``name=""``) matches a pattern."""
    full = f"{module}.{name}" if name else module
    if full == BY_VALUE_LOADER:
        # It runs an unrestricted pickle.loads: only an exact opt-in unlocks it.
        return full in patterns
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            if fnmatch.fnmatchcase(full, pattern) or fnmatch.fnmatchcase(module, pattern):
                return True
        elif full == pattern or module == pattern or module.startswith(pattern + "."):
            return True
    return False


def canonical(obj: object) -> str | None:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}.{qualname}"
    return None


def _direct(ctx: Any, obj: Any, args: tuple[Any, ...]) -> Any:
    ctx.check_trusted_args(obj, args)
    return obj(*args)


TRUSTED = Rule(_direct)


def _import(module: str, name: str) -> Any:
    found: Any = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    return found


def _allowed_under_another_name(module: str, name: str, patterns: Sequence[str]) -> Any:
    """The object the file names ``module.name``, if ``allowed`` lists it by another name.

    Pickle writes where an object is defined, which moves between versions
    (``pathlib.PurePosixPath`` is ``pathlib._local.PurePosixPath`` from Python
    3.13 on): the name the user listed still means that object. Only modules
    already imported are looked at, so nothing in the file triggers an import.
    """
    owner = sys.modules.get(module)
    if owner is None or "." in name:
        return None
    # The module's own namespace only: getattr would run a module __getattr__
    # (lazy packages import submodules there) for a name the file chose.
    found = vars(owner).get(name)
    if found is None or isinstance(found, types.ModuleType):
        return None
    for pattern in patterns:
        listed_module, _, listed_name = pattern.rpartition(".")
        listed_owner = sys.modules.get(listed_module)
        if listed_owner is not None and vars(listed_owner).get(listed_name) is found:
            return found
    return None


def _check_defined_in_allowed(full: str, found: Any, patterns: Sequence[str]) -> None:
    """Refuse what an allowed module merely imported from elsewhere.

    Allowing ``mypkg`` means trusting the classes and functions ``mypkg``
    defines, not ``os.system`` that one of its modules happens to import.
    """
    if isinstance(found, types.ModuleType):
        raise UnsafeLoadError(full, "it is a module, not a class or function")
    owner = getattr(found, "__module__", None)
    if isinstance(owner, str) and not matches(owner, "", patterns):
        raise UnsafeLoadError(full, f"it is defined in {owner!r}, which is not in `allowed`")


def resolve(module: str, name: str, patterns: Sequence[str]) -> tuple[Any, Rule, str]:
    """The object ``module.name`` names, its rule, and the name it is known by.

    Raises ``UnsafeLoadError`` for a name that is denied or not allowed.
    """
    full = f"{module}.{name}"
    rule = SAFE.get(full)
    if rule is not None:
        return _import(module, name), rule, full
    if full == BY_VALUE_LOADER:
        if full in patterns:
            return _import(module, name), TRUSTED, full
        raise UnsafeLoadError(full, "it runs an unrestricted unpickler: list it exactly")
    dotted = "." in name
    # Protocol 4 resolves a dotted name attribute by attribute, which can
    # walk from any allowed object to builtins (f.__globals__, ...): a
    # dotted name must be listed exactly.
    if dotted and full not in patterns:
        raise UnsafeLoadError(full, "a dotted attribute path must be listed exactly")
    reason = denied_reason(full)
    if reason is not None:
        raise UnsafeLoadError(full, f"{reason}, so joblite never loads it", fixable=False)
    if module == "numpy.dtypes" and not dotted:
        found = _import(module, name)
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(found, type) and issubclass(found, numpy.dtype):
            return found, VALUE, full
        raise UnsafeLoadError(full, "only numpy's dtype classes are allowed there")
    if full in patterns or (not dotted and matches(module, name, patterns)):
        found = _import(module, name)
        if full not in patterns:
            _check_defined_in_allowed(full, found, patterns)
        return _trust(found, full)
    found = _allowed_under_another_name(module, name, patterns)
    if found is not None:
        return _trust(found, full)
    raise UnsafeLoadError(full)


def _trust(found: Any, full: str) -> tuple[Any, Rule, str]:
    if isinstance(found, types.ModuleType):
        raise UnsafeLoadError(full, "it is a module, not a class or function")
    own_name = canonical(found)
    if own_name is not None and own_name != full:
        # The same object under its own name: a deny there wins, a SAFE rule applies.
        reason = denied_reason(own_name)
        if reason is not None:
            raise UnsafeLoadError(full, f"it is {own_name}: {reason}", fixable=False)
        if own_name in SAFE:
            return found, SAFE[own_name], own_name
    return found, TRUSTED, full


def allowed_by_name(cls: type, patterns: Sequence[str]) -> bool:
    """Whether ``patterns`` allow the class ``cls`` by its own name (not a SAFE one)."""
    name = canonical(cls)
    if name is None or name in SAFE or denied_reason(name) is not None:
        return False
    return "." not in cls.__qualname__ and matches(cls.__module__, cls.__qualname__, patterns)
