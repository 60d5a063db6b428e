"""MemoryCache: the shared cache contract, plus what only the in-process cache has."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cache_contract import CacheContract
from socius.cache.memory import MemoryCache


@pytest.fixture
async def cache() -> AsyncIterator[MemoryCache]:
    cache = MemoryCache()
    yield cache
    await cache.close()


class TestMemoryCache(CacheContract):
    pass


async def test_least_recently_used_entries_are_evicted() -> None:
    cache = MemoryCache(max_entries=3)
    for key in ("a", "b", "c"):
        await cache.set(key, key.encode(), ttl=60)
    await cache.set("a", b"a2", ttl=60)  # writing refreshes "a"
    await cache.set("d", b"d", ttl=60)
    assert await cache.get_many(["a", "b", "c", "d"]) == [b"a2", None, b"c", b"d"]


async def test_an_evicted_lease_only_makes_its_fill_fail() -> None:
    cache = MemoryCache(max_entries=2)
    token = await cache.lease("p", ttl=10)
    assert token
    await cache.set("x", b"x", ttl=60)
    await cache.set("y", b"y", ttl=60)  # evicts the lease entry
    assert not await cache.fill("p", b"v", ttl=60, token=token)
    assert await cache.get("p") is None


async def test_leases_are_visible_under_their_key() -> None:
    cache = MemoryCache()
    token = await cache.lease("p", ttl=10)
    assert token
    assert await cache.get("lease:p") == token.encode()


async def test_expired_entries_leave_without_being_read() -> None:
    cache = MemoryCache(max_entries=1000)
    await cache.set_many([(f"old:{i}", b"x", 0.01) for i in range(20)])
    await asyncio.sleep(0.02)
    for i in range(10):  # a long tail of new keys: nobody reads the old ones again
        await cache.set(f"new:{i}", b"y", ttl=60)
    assert len(cache._data) == 10
