"""The memoized ``async def`` function: the same cache, awaited."""

from __future__ import annotations

import time
from typing import Any

from ._calls import VALID
from ._memorized import MemorizedFunc
from ._results import MemorizedResult, NotMemorizedResult

__all__ = ["AsyncMemorizedFunc"]


class AsyncMemorizedFunc(MemorizedFunc):
    """A cached ``async def`` function: ``await f(...)`` returns the cached result.

    Concurrent identical awaits are not de-duplicated (no lock is taken, so
    the event loop never blocks on another caller).
    """

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        entry, values = self._entry_and_values(args, kwargs)
        validity, value = self._load(entry)
        if validity is VALID:
            return value
        value, _ = await self._call_entry(entry, values, args, kwargs)
        return value

    async def call(self, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:  # type: ignore[override]
        entry, values = self._entry_and_values(args, kwargs)
        return await self._call_entry(entry, values, args, kwargs)

    async def _call_entry(
        self, entry: str, values: tuple[Any, ...], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        """Compute and store the call whose key (already hashed) is ``entry``."""
        self._before_call(args, kwargs)
        start = time.time()
        started = time.perf_counter()
        value = await self.func(*args, **kwargs)
        metadata = self._metadata(values, start, time.perf_counter() - started)
        stored = self._store(entry, value, metadata)
        self._after_call(started)
        if stored:
            value = self._stored_value(entry, value)
        return value, metadata

    async def call_and_shelve(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> MemorizedResult | NotMemorizedResult:
        entry, values = self._entry_and_values(args, kwargs)
        validity, metadata = self._validity(entry)
        if validity is not VALID:
            value, metadata = await self._call_entry(entry, values, args, kwargs)
            if not self._exists(entry):
                return NotMemorizedResult(value)
        return self._shelved(entry, metadata)
