"""RedisCache against a real Redis: the shared cache contract, prefixing, failures, and
the cross-node lease seen through two LookAside "nodes".

Redis comes from ``SOCIUS_TEST_REDIS_URL``; without it these tests are skipped, except
under CI (``CI=true``), where a missing Redis is an error.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis

from cache_contract import CacheContract
from socius.bus.redis import RedisBus, RedisCacheAndBus
from socius.cache.redis import RedisCache
from socius.domain.errors import CacheUnavailable
from socius.services.lookaside import LookAside

pytestmark = pytest.mark.redis

REDIS_URL = os.environ.get("SOCIUS_TEST_REDIS_URL", "")
IN_CI = os.environ.get("CI") == "true"


def require_redis() -> None:
    if not REDIS_URL:
        if IN_CI:
            pytest.fail("redis is required under CI but SOCIUS_TEST_REDIS_URL is not set")
        pytest.skip("redis not configured (SOCIUS_TEST_REDIS_URL)")


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix unique to the test; every key under it is deleted afterwards."""
    require_redis()
    prefix = f"socius-test:{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def make_cache(prefix: str) -> AsyncIterator[Callable[[], RedisCache]]:
    """RedisCache clients under the test's prefix: each one is another "node"."""
    made: list[RedisCache] = []

    def make() -> RedisCache:
        made.append(RedisCache(REDIS_URL, prefix=prefix))
        return made[-1]

    yield make
    for cache in made:
        await cache.close()


@pytest.fixture
def cache(make_cache: Callable[[], RedisCache]) -> RedisCache:
    return make_cache()


class TestRedisCache(CacheContract):
    pass


def raw_keys(prefix: str) -> set[bytes]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return set(client.scan_iter(match=prefix + "*", count=1000))
    finally:
        client.close()


async def test_values_and_leases_live_under_the_prefix(cache: RedisCache, prefix: str) -> None:
    token = await cache.lease("p", ttl=10)
    assert token
    await cache.set("q", b"v", ttl=60)
    assert raw_keys(prefix) == {f"{prefix}lease:p".encode(), f"{prefix}q".encode()}
    assert await cache.get("lease:p") == token.encode()
    await cache.invalidate("p", "q")
    assert raw_keys(prefix) == set()


async def test_fills_from_two_nodes_race_for_one_lease(
    make_cache: Callable[[], RedisCache],
) -> None:
    a, b = make_cache(), make_cache()
    tokens = await asyncio.gather(*(c.lease("p", ttl=10) for c in (a, b, a, b)))
    winners = [t for t in tokens if t is not None]
    assert len(winners) == 1
    assert not await b.fill("p", b"other", ttl=60, token="x")
    assert await a.fill("p", b"v", ttl=60, token=winners[0])
    assert await b.get("p") == b"v"


async def test_every_operation_fails_as_cache_unavailable() -> None:
    # Nothing listens on port 1: no Redis needed.
    cache = RedisCache("redis://127.0.0.1:1/0", timeout=0.2)
    try:
        calls = [
            cache.get("k"),
            cache.get_many(["k", "l"]),
            cache.set("k", b"v", ttl=1),
            cache.lease("k", ttl=1),
            cache.lease_many(["k", "l"], ttl=1),
            cache.get_or_lease("k", ttl=1),
            cache.get_many_or_lease(["k", "l"], ttl=1),
            cache.fill("k", b"v", ttl=1, token="t"),
            cache.fill_many([("k", b"v", "t")], ttl=1),
            cache.invalidate("k", "l"),
        ]
        for call in calls:
            with pytest.raises(CacheUnavailable):
                await call
    finally:
        await cache.close()


# ---------------------------------------------------------------- two LookAside nodes


def text_codec() -> tuple[Callable[[str], bytes], Callable[[bytes], str]]:
    return str.encode, bytes.decode


async def test_second_node_waits_for_the_first_nodes_fill(
    make_cache: Callable[[], RedisCache],
) -> None:
    encode, decode = text_codec()
    waits = (0.05, 0.1, 0.2, 0.4)  # generous: the holder's fill comes after ~50 ms
    node1 = LookAside(make_cache(), name="profile", waits=waits)
    node2 = LookAside(make_cache(), name="profile", waits=waits)
    calls: list[str] = []
    leased = asyncio.Event()

    async def load_on(node: str) -> str:
        calls.append(node)
        leased.set()  # the loader runs only once its node holds the lease
        await asyncio.sleep(0.05)
        return f"from {node}"

    first = asyncio.create_task(
        node1.get("user:1", lambda: load_on("node1"), ttl=60, encode=encode, decode=decode)
    )
    await leased.wait()
    second = await node2.get(
        "user:1", lambda: load_on("node2"), ttl=60, encode=encode, decode=decode
    )
    assert await first == "from node1"
    assert second == "from node1"
    assert calls == ["node1"]


async def test_second_node_loads_without_filling_when_the_holder_is_too_slow(
    make_cache: Callable[[], RedisCache],
) -> None:
    encode, decode = text_codec()
    waits = (0.005, 0.01)
    node1 = LookAside(make_cache(), name="profile", waits=waits)
    node2_cache = make_cache()
    node2 = LookAside(node2_cache, name="profile", waits=waits)
    leased = asyncio.Event()
    release = asyncio.Event()

    async def slow() -> str:
        leased.set()
        await release.wait()
        return "from node1"

    async def fast() -> str:
        return "from node2"

    first = asyncio.create_task(node1.get("user:1", slow, ttl=60, encode=encode, decode=decode))
    await leased.wait()
    assert await node2.get("user:1", fast, ttl=60, encode=encode, decode=decode) == "from node2"
    assert await node2_cache.get("user:1") is None  # node2 had no lease: it did not fill
    release.set()
    assert await first == "from node1"
    assert await node2.get("user:1", fast, ttl=60, encode=encode, decode=decode) == "from node1"


async def test_get_many_across_nodes(make_cache: Callable[[], RedisCache]) -> None:
    encode, decode = text_codec()
    node1 = LookAside(make_cache(), name="profile")
    node2 = LookAside(make_cache(), name="profile")
    loaded: list[list[int]] = []

    async def load_many(ids: list[int]) -> dict[int, str]:
        loaded.append(ids)
        return {i: f"user {i}" for i in ids if i != 3}

    def key(i: int) -> str:
        return f"user:{i}"

    opts = {"key": key, "ttl": 60.0, "encode": encode, "decode": decode}
    assert await node1.get_many([2, 1, 3], load_many, **opts) == ["user 2", "user 1", None]
    got = await node2.get_many([1, 2, 3, 4], load_many, **opts)
    assert got == ["user 1", "user 2", None, "user 4"]
    assert loaded == [[2, 1, 3], [4]]


# ---------------------------------------------------------- the cache and the bus together


async def test_a_bus_on_the_caches_connection_publishes_after_the_del(
    make_cache: Callable[[], RedisCache], prefix: str
) -> None:
    """Decision 0040: the DEL and the PUBLISHes in one round trip on one connection. Who
    hears a message reads the cache afresh: the DEL has run by then."""
    writer, reader = make_cache(), make_cache()
    bus = RedisBus(REDIS_URL, prefix=prefix + "bus.", client=writer.client)
    listener = RedisBus(REDIS_URL, prefix=prefix + "bus.")
    await bus.start()
    await listener.start()
    seen: list[tuple[bytes, bytes | None]] = []
    heard = asyncio.Event()

    async def on_message(payload: bytes) -> None:
        seen.append((payload, await reader.get("p:1")))
        if len(seen) == 2:
            heard.set()

    try:
        await writer.set("p:1", b"old", ttl=60)
        await listener.subscribe("cache.invalidate", on_message)
        await listener.subscribe("user.9", on_message)
        both = RedisCacheAndBus(writer, bus)
        done = await both.invalidate_and_publish(
            ["p:1"], [("cache.invalidate", b"p:1"), ("user.9", b"event")]
        )
        assert done == (True, True)
        async with asyncio.timeout(5):
            await heard.wait()
        assert seen == [(b"p:1", None), (b"event", None)]  # in order, each after the DEL

        # The bus does not close the connection it was lent: the cache goes on.
        await bus.close()
        assert await writer.get("p:1") is None
        await writer.set("p:2", b"v", ttl=60)
        # A closed bus publishes nothing (its part fails), the DEL still goes.
        assert await both.invalidate_and_publish(["p:2"], [("user.9", b"late")]) == (True, False)
        assert await writer.get("p:2") is None
    finally:
        await bus.close()
        await listener.close()


async def test_the_cache_and_bus_pipeline_reports_an_outage_without_raising() -> None:
    cache = RedisCache("redis://127.0.0.1:1/0", timeout=0.2)
    bus = RedisBus("redis://127.0.0.1:1/0", client=cache.client)
    try:
        both = RedisCacheAndBus(cache, bus)
        # (the bus never started: its part fails; the cache's DEL cannot connect)
        assert await both.invalidate_and_publish(["k"], [("user.1", b"x")]) == (False, False)
        assert await both.invalidate_and_publish([], []) == (True, True)
        with pytest.raises(ValueError, match="share one client"):
            RedisCacheAndBus(cache, RedisBus("redis://127.0.0.1:1/0"))
    finally:
        await bus.close()
        await cache.close()
