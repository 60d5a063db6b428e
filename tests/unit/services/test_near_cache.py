"""The node's L1: fills that race an invalidation store nothing, a lost bus link empties
it and keeps it empty until caught up, and invalidations cross between nodes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from socius.bus.memory import MemoryBroker, MemoryBus
from socius.cache.memory import MemoryCache
from socius.services.bus_link import BusLink
from socius.services.lookaside import LookAside, msgpack_codec
from socius.services.near_cache import MISS, NearCache

encode, decode = msgpack_codec(str)


async def node(broker: MemoryBroker) -> tuple[BusLink, NearCache]:
    link = BusLink(MemoryBus(broker=broker), heartbeat=0.05)
    near = NearCache(max_entries=100, ttl=60, link=link, origin=str(id(link)))
    await link.start()
    assert link.current
    return link, near


async def test_a_fill_that_began_before_an_invalidation_stores_nothing() -> None:
    link, near = await node(MemoryBroker())
    try:
        ticket = near.begin()  # a reader starts loading the old value ...
        near.drop(["p:1"])  # ... a writer's invalidation comes in ...
        assert not near.put("p:1", "old", ticket)  # ... the old value is not kept
        assert near.get("p:1") is MISS
        fresh = near.begin()
        assert near.put("p:1", "new", fresh)
        assert near.get("p:1") == "new"
        # Another key's invalidation does not refuse this one's fill.
        ticket = near.begin()
        near.drop(["p:2"])
        assert near.put("p:1", "newer", ticket)
    finally:
        await link.stop()


async def test_invalidations_cross_to_the_other_node_and_race_its_fills() -> None:
    broker = MemoryBroker()
    (link_a, near_a), (link_b, near_b) = await node(broker), await node(broker)
    try:
        near_b.put("p:1", "old", near_b.begin())
        ticket = near_b.begin()
        await near_a.broadcast(["p:1"])
        for _ in range(100):
            if near_b.get("p:1") is MISS:
                break
            await asyncio.sleep(0.001)
        assert near_b.get("p:1") is MISS
        assert not near_b.put("p:1", "old", ticket)
    finally:
        await link_a.stop()
        await link_b.stop()


async def test_a_lost_link_empties_the_l1_until_it_has_caught_up() -> None:
    link, near = await node(MemoryBroker())
    try:
        near.put("p:1", "v", near.begin())
        ticket = near.begin()
        link.lose("test")
        assert not link.current
        assert near.get("p:1") is MISS
        assert not near.put("p:1", "v", near.begin())  # nothing is held meanwhile
        for _ in range(200):
            if link.current:
                break
            await asyncio.sleep(0.01)
        assert link.current
        assert not near.put("p:1", "v", ticket)  # began before the loss: may be stale
        assert near.put("p:1", "v", near.begin())
    finally:
        await link.stop()


async def test_lookaside_serves_warm_reads_from_l1_and_invalidates_it() -> None:
    link, near = await node(MemoryBroker())
    cache = MemoryCache()
    loads: list[int] = []
    values = {"k": "one"}

    async def load() -> str | None:
        loads.append(1)
        return values["k"]

    look = LookAside(cache, name="t", near=near)
    try:
        assert await look.get("k", load, ttl=60, encode=encode, decode=decode) == "one"
        await cache.delete("k")  # L2 forgets: L1 still answers
        assert await look.get("k", load, ttl=60, encode=encode, decode=decode) == "one"
        assert len(loads) == 1
        values["k"] = "two"
        await look.invalidate("k")
        assert await look.get("k", load, ttl=60, encode=encode, decode=decode) == "two"
    finally:
        await link.stop()


async def test_an_entry_built_from_others_goes_when_any_of_them_is_dropped() -> None:
    link, near = await node(MemoryBroker())
    try:
        assert near.put("b:list:1", b"page", near.begin(), deps=["l:1:0", "p:2", "p:3"])
        assert near.get("b:list:1") == b"page"
        near.drop(["p:9"])  # not one of its deps
        assert near.get("b:list:1") == b"page"
        near.drop(["p:3"])
        assert near.get("b:list:1") is MISS
        # Rebuilt, then its list head is dropped.
        assert near.put("b:list:1", b"page2", near.begin(), deps=["l:1:0", "p:2"])
        near.drop(["l:1:0"])
        assert near.get("b:list:1") is MISS
        # Built from a value read before one of its deps was dropped: not kept.
        ticket = near.begin()
        near.drop(["p:2"])
        assert not near.put("b:list:1", b"stale", ticket, deps=["l:1:0", "p:2"])
        assert near.get("b:list:1") is MISS
    finally:
        await link.stop()


async def test_built_entries_are_dropped_on_other_nodes_through_their_deps() -> None:
    broker = MemoryBroker()
    (link_a, near_a), (link_b, near_b) = await node(broker), await node(broker)
    try:
        assert near_b.put("b:profile:5", b"{}", near_b.begin(), deps=["p:5"])
        await near_a.broadcast(["p:5"])
        for _ in range(100):
            if near_b.get("b:profile:5") is MISS:
                break
            await asyncio.sleep(0.001)
        assert near_b.get("b:profile:5") is MISS
    finally:
        await link_a.stop()
        await link_b.stop()


async def test_built_entries_and_what_is_kept_for_their_checks_stay_bounded() -> None:
    link = BusLink(MemoryBus(broker=MemoryBroker()), heartbeat=0.05)
    now = [0.0]
    near = NearCache(max_entries=4, ttl=60, link=link, origin="x", clock=lambda: now[0])
    await link.start()
    try:
        for i in range(50):
            near.put(f"b:{i}", b"x", near.begin(), deps=[f"p:{i}", "l:shared"])
        assert len(near) <= 4
        # The newest are held (no cliff that drops every built entry at once).
        assert near.get("b:49") == b"x"
        # Whatever is still held is still dropped with its dep.
        near.drop(["p:49"])
        assert near.get("b:49") is MISS
        assert near.get("b:48") == b"x"
        near.drop(["l:shared"])
        assert near.get("b:48") is MISS
        # Drops are remembered for the fill horizon only: past it, one drop's keys.
        for i in range(100):
            now[0] += 1.0
            near.drop([f"k:{i}"])
        assert set(near._dropped) == {f"k:{i}" for i in range(69, 100)}
        assert len(near._drops) == 31
    finally:
        await link.stop()


async def test_the_least_recently_used_go_first_past_the_bound() -> None:
    link = BusLink(MemoryBus(broker=MemoryBroker()), heartbeat=0.05)
    near = NearCache(max_entries=3, ttl=60, link=link, origin="x")
    await link.start()
    try:
        assert near.put_many([("a", 1), ("b", 2), ("c", 3)], near.begin()) == 3
        assert near.get("a") == 1  # read: the most recently used now
        assert near.get_many(["b"]) == [2]
        near.put("d", 4, near.begin())
        assert near.get_many(["a", "b", "c", "d"]) == [1, 2, MISS, 4]
    finally:
        await link.stop()


async def test_what_is_kept_for_the_eviction_order_stays_bounded() -> None:
    """Entries dropped or replaced leave a mark in the eviction order until it is walked
    past; an entry kept alive by stores (never expiring) at its old end must not make
    those marks pile up."""
    link = BusLink(MemoryBus(broker=MemoryBroker()), heartbeat=0.05)
    now = [0.0]
    near = NearCache(max_entries=100_000, ttl=10, link=link, origin="x", clock=lambda: now[0])
    await link.start()
    try:
        for i in range(20_000):
            now[0] += 0.001
            near.put_many([("p:hot", i)], near.begin())  # stored again: never expires
            near.put(f"b:{i % 7}", b"x", near.begin(), deps=["p:hot"])  # replaced
            assert near.put(f"p:{i}", i, near.begin())
            near.drop([f"p:{i}"])
        assert near.get("p:hot") == 19_999
        assert len(near) <= 8
        assert len(near._order) <= len(near) + 1024 + 3 * 1250
    finally:
        await link.stop()


async def test_a_built_entry_never_outlives_the_memory_of_its_deps_drops() -> None:
    """A built entry is checked at each read against the drops remembered (the fill
    horizon, 30 s): it lives no longer than that, whatever the ttl."""
    link = BusLink(MemoryBus(broker=MemoryBroker()), heartbeat=0.05)
    now = [0.0]
    near = NearCache(max_entries=100, ttl=3600, link=link, origin="x", clock=lambda: now[0])
    await link.start()
    try:
        assert near.put("b:1", b"page", near.begin(), deps=["p:1"])
        assert near.put("p:2", "plain", near.begin())
        now[0] = 1.0
        near.drop(["p:1"])
        now[0] = 45.0
        near.drop(["p:9"])  # the drop of p:1 is forgotten now
        assert "p:1" not in near._dropped
        assert near.get("b:1") is MISS
        assert near.get("p:2") == "plain"  # a plain entry keeps its ttl
        # Rebuilt after the drop: served, and gone when one of its deps is dropped.
        assert near.put("b:1", b"page2", near.begin(), deps=["p:1"])
        now[0] = 46.0
        assert near.get("b:1") == b"page2"
        near.drop(["p:1"])
        assert near.get("b:1") is MISS
    finally:
        await link.stop()


async def test_expired_entries_leave_without_being_read() -> None:
    link = BusLink(MemoryBus(broker=MemoryBroker()), heartbeat=0.05)
    now = [0.0]
    near = NearCache(max_entries=1000, ttl=10, link=link, origin="x", clock=lambda: now[0])
    await link.start()
    try:
        for i in range(20):
            near.put(f"b:{i}", b"x", near.begin(), deps=[f"p:{i}"])
        now[0] = 11.0  # all twenty expired; nobody reads them again
        for i in range(10):
            near.put(f"n:{i}", "y", near.begin())
        assert len(near) == 10
    finally:
        await link.stop()


async def test_a_local_value_lives_in_l1_only_and_goes_with_its_invalidation() -> None:
    broker = MemoryBroker()
    (link_a, near_a), (link_b, near_b) = await node(broker), await node(broker)
    cache = MemoryCache()
    a = LookAside(cache, name="graph", near=near_a)
    b = LookAside(cache, name="graph", near=near_b)
    loads: list[str] = []
    value = ["v1"]

    async def load() -> str:
        loads.append(value[0])
        return value[0]

    try:
        assert await a.get_local("e:1", load) == "v1"
        assert await a.get_local("e:1", load) == "v1"  # held
        assert await cache.get("e:1") is None  # never in the shared cache
        assert await b.get_local("e:1", load) == "v1"  # another node loads its own
        assert loads == ["v1", "v1"]
        value[0] = "v2"
        await b.invalidate(near_only=["e:1"])  # a write on node b
        for _ in range(50):
            if near_a.get("e:1") is MISS:
                break
            await asyncio.sleep(0.01)
        assert await a.get_local("e:1", load) == "v2"
        assert await b.get_local("e:1", load) == "v2"
    finally:
        await link_a.stop()
        await link_b.stop()


async def test_batched_reads_and_fills_keep_the_rules_of_single_ones() -> None:
    """``get_many`` / ``put_many`` (a page's 50 profiles in one pass: decision 0039): a
    key invalidated since the ticket is not stored, the others are; expired entries are
    misses; a stored value replaces what was built from others under that key."""
    link = BusLink(MemoryBus(broker=MemoryBroker()), heartbeat=0.05)
    now = [0.0]
    near = NearCache(max_entries=1000, ttl=10, link=link, origin="x", clock=lambda: now[0])
    await link.start()
    try:
        ticket = near.begin()
        near.drop(["p:2"])  # a writer's invalidation while the batch was read
        assert near.put_many([("p:1", "a"), ("p:2", "stale"), ("p:3", "c")], ticket) == 2
        assert near.get_many(["p:1", "p:2", "p:3", "p:4"]) == ["a", MISS, "c", MISS]
        assert near.put("b:1", b"page", near.begin(), deps=["p:1"])
        assert near.put_many([("b:1", "plain")], near.begin()) == 1
        near.drop(["p:1"])  # no longer built from p:1: stays
        assert near.get_many(["b:1"]) == ["plain"]
        now[0] = 11.0
        assert near.get_many(["p:3", "b:1"]) == [MISS, MISS]
        # A fill that began before the link was lost stores nothing.
        ticket = near.begin()
        near.lost()
        assert near.put_many([("p:5", "x")], ticket) == 0
    finally:
        await link.stop()


async def test_an_invalidation_and_the_messages_after_it_reach_the_other_node_in_order() -> None:
    """A write's events go with its invalidation (decision 0040): whoever hears an event
    no longer holds what the write changed."""
    broker = MemoryBroker()
    bus = MemoryBus(broker=broker)
    link_a = BusLink(bus, heartbeat=0.05)
    near_a = NearCache(max_entries=100, ttl=60, link=link_a, origin="a")
    await link_a.start()
    link_b, near_b = await node(broker)
    listener = MemoryBus(broker=broker)
    await listener.start()
    cache = MemoryCache()
    a = LookAside(cache, name="graph", near=near_a, publish=bus.publish_many)
    heard: list[tuple[bytes, object]] = []

    async def on_event(payload: bytes) -> None:
        heard.append((payload, near_b.get("p:1")))

    try:
        await listener.subscribe("user.9", on_event)
        near_b.put("p:1", "old", near_b.begin())
        await cache.set("p:1", b"old", ttl=60)
        assert await a.invalidate("p:1", then=[("user.9", b"e1"), ("user.9", b"e2")])
        for _ in range(100):
            if len(heard) == 2:
                break
            await asyncio.sleep(0.001)
        assert heard == [(b"e1", MISS), (b"e2", MISS)]
        assert await cache.get("p:1") is None
        with pytest.raises(ValueError, match="publish="):
            await LookAside(cache, name="graph").invalidate("p:1", then=[("user.9", b"x")])
    finally:
        await listener.close()
        await link_a.stop()
        await link_b.stop()


class SharedConnection:
    """A cache and a bus on one connection (as bus/redis.py's ``RedisCacheAndBus``)."""

    def __init__(self, result: tuple[bool, bool]) -> None:
        self.result = result
        self.calls: list[tuple[list[str], list[tuple[str, bytes]]]] = []

    async def invalidate_and_publish(
        self, keys: Sequence[str], messages: Sequence[tuple[str, bytes]]
    ) -> tuple[bool, bool]:
        self.calls.append((list(keys), list(messages)))
        return self.result


async def test_on_a_shared_connection_the_invalidation_is_one_call_and_a_failure_counts() -> None:
    link, near = await node(MemoryBroker())
    errors: list[str] = []
    shared = SharedConnection((True, True))
    look = LookAside(
        MemoryCache(),
        name="graph",
        near=near,
        on_error=errors.append,
        publish=lambda _items: asyncio.sleep(0),
        shared=shared,
    )
    try:
        near.put("p:1", "v", near.begin())
        assert await look.invalidate("p:1", near_only=["e:1"], then=[("user.9", b"e")])
        [(keys, messages)] = shared.calls
        assert keys == ["p:1"]
        assert [subject for subject, _ in messages] == ["cache.invalidate", "user.9"]
        assert near.get("p:1") is MISS  # dropped here as the call was made
        assert not errors

        # The connection failed: the cache's error counted, the link lost (L1 empty
        # until it catches up), and False for the caller's messages.
        shared.result = (False, False)
        near.put("p:2", "v", near.begin())
        assert not await look.invalidate("p:2", then=[("user.9", b"e")])
        assert errors == ["graph_invalidate"]
        assert not link.current
        assert near.get("p:2") is MISS
    finally:
        await link.stop()


def test_the_keys_dropped_since_a_ticket_or_none_when_they_cannot_be_told() -> None:
    now = [0.0]
    near = NearCache(max_entries=0, ttl=10, link=None, origin="x", clock=lambda: now[0])
    gen, _ = near.begin()
    assert near.dropped_since(gen) == []
    near.drop(["p:1", "r:1:2"])
    near.drop(["p:3"])
    assert near.dropped_since(gen) == ["p:3", "p:1", "r:1:2"]
    assert near.dropped_since(gen + 1) == ["p:3"]
    assert near.dropped_since(gen, at_most=2) is None
    now[0] = 100.0
    near.drop(["p:4"])  # the drops before are forgotten: what came after gen + 1 is unknown
    assert near.dropped_since(gen + 2) == ["p:4"]
    assert near.dropped_since(gen + 1) is None
    later, _ = near.begin()
    near.lost()
    assert near.dropped_since(later) is None
