"""The hash functions ``hash()`` can feed: xxh3-128 and hashlib's.

``FACTORIES`` makes an incremental hasher by name, ``ONE_SHOT`` digests one
bytes object by name (the common case: a small argument pickles to a single
chunk). hashlib is imported on first use only.

Example::

    >>> ONE_SHOT["md5"](b"") == FACTORIES["md5"]().hexdigest()
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import xxhash

__all__ = ["FACTORIES", "HASH_NAMES", "ONE_SHOT"]


class _Hasher(Protocol):
    def update(self, data: Any, /) -> None: ...

    def hexdigest(self) -> str: ...

    def digest(self) -> bytes: ...


def _hashlib_factory(name: str) -> Callable[[], _Hasher]:
    # hashlib pulls in OpenSSL (milliseconds at import): load it on first use.
    def make() -> _Hasher:
        import hashlib

        return hashlib.new(name)

    return make


def _hashlib_one_shot(name: str) -> Callable[[bytes], str]:
    def digest(data: bytes) -> str:
        import hashlib

        return hashlib.new(name, data).hexdigest()

    return digest


_HASHLIB_NAMES = ("md5", "sha1", "sha256", "blake2b")
FACTORIES: dict[str, Callable[[], _Hasher]] = {
    "xxh3_128": xxhash.xxh3_128,
    **{name: _hashlib_factory(name) for name in _HASHLIB_NAMES},
}
ONE_SHOT: dict[str, Callable[[bytes], str]] = {
    "xxh3_128": xxhash.xxh3_128_hexdigest,
    **{name: _hashlib_one_shot(name) for name in _HASHLIB_NAMES},
}
HASH_NAMES: tuple[str, ...] = tuple(FACTORIES)
