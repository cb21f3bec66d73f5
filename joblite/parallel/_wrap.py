"""``wrap_non_picklable_objects``: make lambdas, closures and local classes picklable.

The wrapper pickles its object with cloudpickle inside its own ``__reduce__``,
so any pickler (the standard library's included) can ship it. Example::

    >>> import pickle
    >>> square = wrap_non_picklable_objects(lambda x: x * x)
    >>> pickle.loads(pickle.dumps(square))(3)
    9
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._wire import decode, encode

__all__ = ["wrap_non_picklable_objects"]


def _rebuild(payload: bytes, keep_wrapper: bool) -> Any:
    obj = decode(payload)
    if not keep_wrapper:
        return obj
    return _wrap_instance(obj, keep_wrapper)


class CloudpickledObjectWrapper:
    """Holds ``obj``; pickles as cloudpickle's bytes of it. Attributes read through."""

    __slots__ = ("_keep_wrapper", "_obj")

    def __init__(self, obj: Any, keep_wrapper: bool = True) -> None:
        self._obj = obj
        self._keep_wrapper = keep_wrapper

    def __reduce__(self) -> tuple[Callable[[bytes, bool], Any], tuple[bytes, bool]]:
        return (_rebuild, (encode(self._obj), self._keep_wrapper))

    def __getattr__(self, name: str) -> Any:
        # Only called for names the wrapper lacks; the slots guard avoids a
        # recursion while an instance is half-built.
        if name in CloudpickledObjectWrapper.__slots__:
            raise AttributeError(name)
        return getattr(self._obj, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._obj!r})"


class CallableObjectWrapper(CloudpickledObjectWrapper):
    """A wrapped callable: calling the wrapper calls the object."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._obj(*args, **kwargs)


def _wrap_instance(obj: Any, keep_wrapper: bool) -> CloudpickledObjectWrapper:
    if callable(obj):
        return CallableObjectWrapper(obj, keep_wrapper)
    return CloudpickledObjectWrapper(obj, keep_wrapper)


def wrap_non_picklable_objects(obj: Any, keep_wrapper: bool = True) -> Any:
    """Wrap ``obj`` (a function, object or class) so it pickles through cloudpickle.

    joblib's function of the same name. Useful with backends that pickle with
    the standard :mod:`pickle` (third-party ones, ``multiprocessing`` pools you
    drive yourself); joblite's own process backends already use cloudpickle.
    For a class, returns a class whose instances are wrapped. With
    ``keep_wrapper=False`` the object is unwrapped once unpickled, which
    saves an indirection per call but makes it unpicklable again in the worker.
    Raises ``TypeError`` when ``keep_wrapper`` is not a bool.

    Example::

        >>> square = wrap_non_picklable_objects(lambda x: x * x)
        >>> Parallel(n_jobs=2, backend="multiprocessing")(delayed(square)(i) for i in range(3))
        [0, 1, 4]
    """
    if not isinstance(keep_wrapper, bool):
        raise TypeError(f"keep_wrapper must be a bool, got {keep_wrapper!r}")
    if not isinstance(obj, type):
        return _wrap_instance(obj, keep_wrapper)
    cls: type = obj
    callable_instances = any("__call__" in vars(klass) for klass in cls.__mro__)
    base = CallableObjectWrapper if callable_instances else CloudpickledObjectWrapper

    class CloudpickledClassWrapper(base):  # type: ignore[valid-type,misc]
        __slots__ = ()

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(cls(*args, **kwargs), keep_wrapper)

    CloudpickledClassWrapper.__name__ = cls.__name__
    CloudpickledClassWrapper.__qualname__ = cls.__qualname__
    CloudpickledClassWrapper.__doc__ = cls.__doc__
    return CloudpickledClassWrapper
