"""Behaviour every ``Cache`` implementation shares, run against each of them.

A test module subclasses ``CacheContract`` (as ``Test...``) and provides a ``cache``
fixture; pytest collects the inherited tests for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from socius.services.ports import Cache

SHORT = 0.05  # seconds: 50 ms, the shortest expiry the tests rely on


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 3.0) -> None:
    """Poll ``check`` until it holds; expiry timing is never assumed exact."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


class CacheContract:
    # ------------------------------------------------------------ the original methods

    async def test_set_get_delete_exists(self, cache: Cache) -> None:
        assert await cache.get("a") is None
        assert not await cache.exists("a")
        await cache.set("a", b"1", ttl=60)
        assert await cache.get("a") == b"1"
        assert await cache.exists("a")
        await cache.delete("a", "never-set")
        assert await cache.get("a") is None

    async def test_incr_keeps_the_first_window(self, cache: Cache) -> None:
        assert await cache.incr("n", ttl=60) == 1
        assert await cache.incr("n", ttl=1) == 2
        assert await cache.get("n") == b"2"
        assert 50 < await cache.ttl("n") <= 60
        assert await cache.ttl("missing") == 0.0

    # ------------------------------------------------------------ get_many

    async def test_get_many_keeps_the_order_of_keys(self, cache: Cache) -> None:
        await cache.set("k1", b"one", ttl=60)
        await cache.set("k3", b"three", ttl=60)
        got = await cache.get_many(["k3", "k2", "k1", "k3"])
        assert got == [b"three", None, b"one", b"three"]
        assert await cache.get_many([]) == []

    async def test_set_many_sets_each_with_its_own_ttl(self, cache: Cache) -> None:
        await cache.set("m2", b"old", ttl=60)
        await cache.set_many([("m1", b"one", 60), ("m2", b"two", SHORT), ("m3", b"three", 60)])
        assert await cache.get_many(["m1", "m2", "m3"]) == [b"one", b"two", b"three"]
        await cache.set_many([])

        async def short_one_gone() -> bool:
            return await cache.get_many(["m1", "m2", "m3"]) == [b"one", None, b"three"]

        await eventually(short_one_gone)

    # ------------------------------------------------------------ leases

    async def test_lease_is_exclusive_until_filled(self, cache: Cache) -> None:
        token = await cache.lease("p", ttl=10)
        assert token
        assert await cache.lease("p", ttl=10) is None
        assert await cache.lease("other", ttl=10) is not None
        assert await cache.fill("p", b"v", ttl=60, token=token)
        assert await cache.get("p") == b"v"
        # Filling released the lease: the next miss on "p" may lease it again.
        assert await cache.lease("p", ttl=10) is not None

    async def test_tokens_are_distinct(self, cache: Cache) -> None:
        first = await cache.lease("a", ttl=10)
        await cache.invalidate("a")
        second = await cache.lease("a", ttl=10)
        assert first
        assert second
        assert first != second

    async def test_fill_with_a_wrong_token_fails_and_keeps_the_lease(self, cache: Cache) -> None:
        token = await cache.lease("p", ttl=10)
        assert token
        assert not await cache.fill("p", b"forged", ttl=60, token="not-the-token")
        assert await cache.get("p") is None
        assert await cache.lease("p", ttl=10) is None  # still held by its owner
        assert await cache.fill("p", b"real", ttl=60, token=token)
        assert await cache.get("p") == b"real"

    async def test_fill_without_a_lease_fails(self, cache: Cache) -> None:
        assert not await cache.fill("p", b"v", ttl=60, token="whatever")
        assert await cache.get("p") is None

    async def test_fill_after_invalidate_fails(self, cache: Cache) -> None:
        token = await cache.lease("p", ttl=10)
        assert token
        await cache.invalidate("p")  # a writer committed while we were loading
        assert not await cache.fill("p", b"stale", ttl=60, token=token)
        assert await cache.get("p") is None
        # The next reader leases afresh and fills what it reads after the write.
        fresh = await cache.lease("p", ttl=10)
        assert fresh
        assert await cache.fill("p", b"fresh", ttl=60, token=fresh)
        assert await cache.get("p") == b"fresh"

    async def test_invalidate_deletes_values_and_leases(self, cache: Cache) -> None:
        await cache.set("a", b"1", ttl=60)
        await cache.set("b", b"2", ttl=60)
        assert await cache.lease("c", ttl=10)
        await cache.invalidate("a", "b", "c", "never-set")
        assert await cache.get_many(["a", "b", "c"]) == [None, None, None]
        assert await cache.lease("c", ttl=10) is not None
        await cache.invalidate()  # nothing to do

    async def test_lease_many_and_fill_many(self, cache: Cache) -> None:
        held = await cache.lease("b", ttl=10)
        assert held
        tokens = await cache.lease_many(["a", "b", "c"], ttl=10)
        assert tokens[1] is None
        ta, tc = tokens[0], tokens[2]
        assert ta
        assert tc
        assert ta != tc
        await cache.invalidate("c")
        await cache.fill_many([("a", b"A", ta), ("b", b"B", "wrong"), ("c", b"C", tc)], ttl=60)
        assert await cache.get_many(["a", "b", "c"]) == [b"A", None, None]
        assert await cache.lease_many([], ttl=10) == []
        await cache.fill_many([], ttl=60)
        # "a"'s lease was released by its fill; "b"'s still belongs to its holder.
        assert await cache.lease_many(["a", "b"], ttl=10) != [None, None]
        assert await cache.fill("b", b"B", ttl=60, token=held)

    # ------------------------------------------------------------ expiry

    async def test_filled_values_expire(self, cache: Cache) -> None:
        token = await cache.lease("p", ttl=10)
        assert token
        assert await cache.fill("p", b"v", ttl=SHORT, token=token)

        async def gone() -> bool:
            return await cache.get("p") is None

        await eventually(gone)

    async def test_get_or_lease_reads_or_leases_in_one_call(self, cache: Cache) -> None:
        await cache.set("v", b"value", ttl=60)
        assert await cache.get_or_lease("v", ttl=10) == (b"value", None)
        assert await cache.lease("v", ttl=10) is not None  # reading a value leased nothing
        value, token = await cache.get_or_lease("p", ttl=10)
        assert value is None
        assert token
        assert await cache.get_or_lease("p", ttl=10) == (None, None)  # held by the first
        assert await cache.lease("p", ttl=10) is None
        assert await cache.fill("p", b"filled", ttl=60, token=token)
        assert await cache.get_or_lease("p", ttl=10) == (b"filled", None)

    async def test_get_many_or_lease_keeps_the_order_of_keys(self, cache: Cache) -> None:
        await cache.set("k1", b"one", ttl=60)
        held = await cache.lease("k2", ttl=10)
        assert held
        got = await cache.get_many_or_lease(["k3", "k2", "k1"], ttl=10)
        assert [value for value, _ in got] == [None, None, b"one"]
        token = got[0][1]
        assert token
        assert got[1][1] is None  # k2's lease belongs to its holder
        assert got[2][1] is None
        await cache.fill_many([("k3", b"three", token), ("k2", b"two", held)], ttl=60)
        assert await cache.get_many(["k3", "k2"]) == [b"three", b"two"]
        assert await cache.get_many_or_lease([], ttl=10) == []

    async def test_leases_expire(self, cache: Cache) -> None:
        token = await cache.lease("p", ttl=SHORT)
        assert token

        async def free() -> bool:
            return await cache.lease("p", ttl=10) is not None

        await eventually(free)
        # The expired holder can no longer fill over the new lease.
        assert not await cache.fill("p", b"late", ttl=60, token=token)

    async def test_set_values_expire(self, cache: Cache) -> None:
        await cache.set("s", b"v", ttl=SHORT)
        await cache.set("kept", b"v", ttl=60)

        async def gone() -> bool:
            return await cache.get_many(["s", "kept"]) == [None, b"v"]

        await eventually(gone)

    # ------------------------------------------------------------ token buckets

    async def test_a_bucket_gives_its_burst_then_says_how_long_to_wait(self, cache: Cache) -> None:
        waits = await cache.take_tokens([("b", 600.0, 3)] * 4)
        assert waits[:3] == [0.0, 0.0, 0.0]
        assert 590 < waits[3] <= 600  # the next token comes one interval after the first
        # A refused take takes nothing: still refused, and another bucket is untouched.
        again = await cache.take_tokens([("b", 600.0, 3), ("other", 600.0, 1)])
        assert again[0] > 590
        assert again[1] == 0.0
        assert await cache.take_tokens([]) == []

    async def test_a_bucket_refills_one_token_per_interval(self, cache: Cache) -> None:
        assert await cache.take_tokens([("r", SHORT, 1)]) == [0.0]
        assert (await cache.take_tokens([("r", SHORT, 1)]))[0] > 0

        async def refilled() -> bool:
            return (await cache.take_tokens([("r", SHORT, 1)]))[0] == 0.0

        await eventually(refilled)

    # ------------------------------------------------------------ slots

    async def test_slots_hold_up_to_the_limit(self, cache: Cache) -> None:
        got = await cache.claim_slots(
            [("s", "a"), ("s", "b"), ("s", "c"), ("s", "a"), ("t", "c")], limit=2, ttl=60
        )
        assert got == [True, True, False, True, True]  # "a" again: already held
        await cache.release_slots([("s", "a"), ("s", "never")])
        assert await cache.claim_slots([("s", "c"), ("s", "d")], limit=2, ttl=60) == [True, False]
        await cache.release_slots([])
        assert await cache.claim_slots([], limit=2, ttl=60) == []

    async def test_slots_expire_unless_renewed(self, cache: Cache) -> None:
        await cache.claim_slots([("e", "old"), ("k", "kept")], limit=1, ttl=SHORT)
        await cache.renew_slots([("k", "kept"), ("k", "never-held")], ttl=60)

        async def expired() -> bool:
            return await cache.claim_slots([("e", "new")], limit=1, ttl=60) == [True]

        await eventually(expired)
        # The renewed one is still held: its set is full; a member never held was not added.
        assert await cache.claim_slots([("k", "other")], limit=1, ttl=60) == [False]
        await cache.renew_slots([], ttl=60)
