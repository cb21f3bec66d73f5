"""Caching ``async def`` functions."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from joblite.memory import AsyncMemorizedFunc, MemorizedResult, Memory


def test_async_function_is_cached(memory: Memory) -> None:
    calls = []

    @memory.cache
    async def fetch(x: int, delay: float = 0.0) -> int:
        calls.append(x)
        await asyncio.sleep(delay)
        return x * 3

    assert isinstance(fetch, AsyncMemorizedFunc)
    assert inspect.iscoroutinefunction(fetch.__wrapped__)

    async def main() -> list[int]:
        first = await fetch(2)
        second = await fetch(2, delay=0.0)
        third = await fetch(x=2)
        return [first, second, third]

    assert asyncio.run(main()) == [6, 6, 6]
    assert calls == [2]
    assert fetch.check_call_in_cache(2)

    output, metadata = asyncio.run(fetch.call(2))
    assert output == 6
    assert "duration" in metadata
    assert calls == [2, 2]

    shelved = asyncio.run(fetch.call_and_shelve(5))
    assert isinstance(shelved, MemorizedResult)
    assert shelved.get() == 15


def test_async_errors_propagate_and_store_nothing(memory: Memory) -> None:
    @memory.cache
    async def broken(x: int) -> int:
        raise KeyError(x)

    async def main() -> None:
        await broken(1)

    with pytest.raises(KeyError) as info:
        asyncio.run(main())
    assert info.value.args == (1,)
    assert not broken.check_call_in_cache(1)


def test_async_with_caching_disabled() -> None:
    mem = Memory(None)

    @mem.cache
    async def f(x: int) -> int:
        return x + 1

    assert asyncio.run(f(1)) == 2


def test_async_calls_hash_the_arguments_once(
    memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from joblite.memory import _memorized

    hashed: list[object] = []
    real = _memorized.core_hash
    monkeypatch.setattr(
        _memorized, "core_hash", lambda obj, *a, **k: hashed.append(obj) or real(obj, *a, **k)
    )

    @memory.cache
    async def triple(x: int) -> int:
        return x * 3

    for call in (triple, triple.call_and_shelve, triple.call_and_shelve, triple.call):
        hashed.clear()
        result = asyncio.run(call(7))
        assert len(hashed) == 1, call
    assert result[0] == 21
    hashed.clear()
    assert asyncio.run(triple.call_and_shelve(8)).get() == 24  # a miss
    assert len(hashed) == 1
