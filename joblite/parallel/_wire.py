"""The wire format: how a batch and an initializer travel to a worker process.

The one place that builds and reads these payloads (version it here). A
batch is the pickle stream of::

    (tasks, retries, stop_on_error)

``tasks`` being a list of ``(function, args, kwargs)`` triples or, when every
task calls one function without keywords, ``(function, values, star)`` (see
``_batching.pack_tasks``). An initializer is the stream of ``(initializer,
initargs)``, and a batch's output, going back, the stream of ``(results,
failures, seconds)`` (:class:`EncodedOutput`). Streams are written by the package's one pickler
(:func:`joblite._core.pickling.dumps_stream`: lambdas and closures by value);
workers read them with plain :func:`pickle.loads`, so this module imports
nothing heavy where it is loaded in a worker. Example::

    >>> decode_batch(encode_batch([(abs, (-1,), {})], 0, True))
    ([(<built-in function abs>, (-1,), {})], 0, True)
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

__all__ = [
    "EncodedOutput",
    "decode",
    "decode_batch",
    "decode_initializer",
    "encode",
    "encode_batch",
    "encode_initializer",
]

# Pickle reducer hook: a reduce tuple for an object it takes over, else NotImplemented.
Reducer = Callable[[Any], Any]


def encode(obj: object, reducer: Reducer | None = None) -> bytes:
    """Any object as one self-contained pickle stream for another process."""
    from .._core.pickling import dumps_stream  # lazily: workers only decode

    return dumps_stream(obj, reducer=reducer)


def decode(payload: bytes) -> Any:
    """The object :func:`encode` wrote (runs pickle code: payloads of this call only)."""
    return pickle.loads(payload)


def encode_batch(
    tasks: Any, retries: int, stop_on_error: bool, reducer: Reducer | None = None
) -> bytes:
    """``tasks`` (already packed or a list of triples) and how to run them."""
    return encode((tasks, retries, stop_on_error), reducer)


def decode_batch(payload: bytes) -> tuple[Any, int, bool]:
    """``(tasks, retries, stop_on_error)`` from :func:`encode_batch`'s bytes."""
    tasks, retries, stop_on_error = decode(payload)
    return tasks, retries, stop_on_error


class EncodedOutput(tuple):  # type: ignore[type-arg]
    """A batch's output in a worker process: pickles itself in the wire format.

    Whatever pickler carries results back (loky's, ``multiprocessing``'s at
    protocol 4, dask's) writes this object as one protocol-5 stream of
    :func:`encode`, which the caller's unpickler turns back into the plain
    tuple. At protocol 4 numpy rebuilds a big-endian array in native byte
    order; protocol 5 keeps it as it was, as a user of joblib sees it.
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[Callable[[bytes], Any], tuple[bytes]]:
        return (decode, (encode(tuple(self)),))


def encode_initializer(initializer: object, initargs: tuple[object, ...]) -> bytes | None:
    """``(initializer, initargs)`` for process workers; None without an initializer."""
    if initializer is None:
        return None
    return encode((initializer, tuple(initargs)))


def decode_initializer(payload: bytes) -> tuple[Callable[..., object], tuple[Any, ...]]:
    initializer, initargs = decode(payload)
    return initializer, initargs
