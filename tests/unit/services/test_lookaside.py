"""LookAside over the in-process cache (and fakes of a failing one)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import msgspec
import pytest

from socius.cache.memory import MemoryCache
from socius.domain.errors import CacheUnavailable
from socius.services.lookaside import LookAside, Lookup, deferred_fills, msgpack_codec

FAST = (0.001, 0.002, 0.004)


class Profile(msgspec.Struct, frozen=True):
    id: int
    name: str


encode, decode = msgpack_codec(Profile)


class Recorder:
    def __init__(self) -> None:
        self.results: list[tuple[str, str]] = []
        self.errors: list[str] = []

    def on_result(self, cache: str, result: str) -> None:
        self.results.append((cache, result))

    def on_error(self, op: str) -> None:
        self.errors.append(op)

    def count(self, result: str) -> int:
        return sum(1 for _, r in self.results if r == result)


@pytest.fixture
def cache() -> MemoryCache:
    return MemoryCache()


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def la(cache: MemoryCache, rec: Recorder) -> LookAside:
    return LookAside(
        cache, name="profile", on_result=rec.on_result, on_error=rec.on_error, waits=FAST
    )


class Loader:
    """Counts calls; optionally sleeps first, returns a value or raises."""

    def __init__(self, value: Profile | None = None, *, delay: float = 0.0) -> None:
        self.value = value
        self.delay = delay
        self.calls = 0
        self.error: Exception | None = None

    async def __call__(self) -> Profile | None:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.value


async def get(la: LookAside, load: Loader, key: str = "user:1") -> Profile | None:
    return await la.get(key, load, ttl=60, encode=encode, decode=decode)


ALICE = Profile(1, "alice")


# ---------------------------------------------------------------- get


async def test_a_miss_loads_and_fills_then_hits(la: LookAside, rec: Recorder) -> None:
    load = Loader(ALICE)
    assert await get(la, load) == ALICE
    assert await get(la, load) == ALICE
    assert load.calls == 1
    assert rec.results == [("profile", "miss"), ("profile", "hit")]
    assert rec.errors == []


async def test_concurrent_misses_on_one_key_load_once(la: LookAside, rec: Recorder) -> None:
    load = Loader(ALICE, delay=0.01)
    results = await asyncio.gather(*(get(la, load) for _ in range(20)))
    assert results == [ALICE] * 20
    assert load.calls == 1
    assert await get(la, load) == ALICE
    assert load.calls == 1
    assert rec.count("hit") == 1


async def test_a_loader_error_reaches_every_waiter_and_is_not_remembered(
    la: LookAside,
) -> None:
    load = Loader(ALICE, delay=0.01)
    load.error = RuntimeError("database down")
    results = await asyncio.gather(*(get(la, load) for _ in range(5)), return_exceptions=True)
    assert load.calls == 1
    assert all(isinstance(r, RuntimeError) and str(r) == "database down" for r in results)
    load.error = None
    assert await get(la, load) == ALICE  # a new flight, not the failed one
    assert load.calls == 2


async def test_a_cancelled_leader_does_not_cancel_its_waiters(la: LookAside) -> None:
    started = asyncio.Event()
    calls = 0

    async def load() -> Profile:
        nonlocal calls
        calls += 1
        if calls == 1:
            started.set()
            await asyncio.Event().wait()  # until cancelled
        return ALICE

    leader = asyncio.create_task(la.get("user:1", load, ttl=60, encode=encode, decode=decode))
    await started.wait()
    waiter = asyncio.create_task(la.get("user:1", load, ttl=60, encode=encode, decode=decode))
    await asyncio.sleep(0)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert await waiter == ALICE
    assert calls == 2


async def test_a_value_invalidated_during_its_fill_is_not_stored(
    la: LookAside, cache: MemoryCache
) -> None:
    stale = Profile(1, "old name")

    async def load() -> Profile:
        # A writer commits and invalidates while this reader is loading the old row.
        await la.invalidate("user:1")
        return stale

    assert await la.get("user:1", load, ttl=60, encode=encode, decode=decode) == stale
    assert await cache.get("user:1") is None
    fresh = Loader(ALICE)
    assert await get(la, fresh) == ALICE
    assert fresh.calls == 1
    assert await cache.get("user:1") is not None


async def test_absent_rows_are_cached(la: LookAside, cache: MemoryCache, rec: Recorder) -> None:
    load = Loader(None)
    assert await get(la, load) is None
    assert await get(la, load) is None
    assert load.calls == 1
    assert await cache.get("user:1") == b"\x00"
    assert rec.results == [("profile", "miss"), ("profile", "hit")]
    await la.invalidate("user:1")
    load.value = ALICE
    assert await get(la, load) == ALICE


async def test_values_that_look_like_the_absent_marker_round_trip(la: LookAside) -> None:
    for key, value in (("empty", b""), ("zero", b"\x00"), ("one", b"\x01")):

        async def load(value: bytes = value) -> bytes:
            return value

        for _ in range(2):  # a miss, then a hit
            got = await la.get(key, load, ttl=60, encode=bytes, decode=bytes)
            assert got == value


async def test_an_undecodable_entry_is_a_miss_and_is_replaced(
    la: LookAside, cache: MemoryCache
) -> None:
    await cache.set("user:1", b"\x01not msgpack of a Profile", ttl=60)
    await cache.set("user:2", b"junk without a tag", ttl=60)
    load = Loader(ALICE)
    assert await get(la, load, "user:1") == ALICE
    assert await get(la, load, "user:2") == ALICE
    assert load.calls == 2
    assert await get(la, load, "user:1") == ALICE
    assert load.calls == 2


async def test_an_undecodable_entry_in_a_multi_get_is_a_miss_and_is_replaced(
    la: LookAside, cache: MemoryCache
) -> None:
    await cache.set("row:1", b"\x01not msgpack of a Profile", ttl=60)
    many = ManyLoader(ROWS)
    assert await get_many(la, many, [1, 2]) == [ROWS[1], ROWS[2]]
    assert await get_many(la, many, [1, 2]) == [ROWS[1], ROWS[2]]
    assert many.calls == [[1, 2]]


async def test_a_failing_lease_after_an_undecodable_entry_still_answers(rec: Recorder) -> None:
    cache = DownCache("lease", "lease_many")
    await cache.set("user:1", b"junk without a tag", ttl=60)
    await cache.set("row:1", b"junk without a tag", ttl=60)
    la = over(cache, rec)
    assert await get(la, Loader(ALICE), "user:1") == ALICE
    assert await get_many(la, ManyLoader(ROWS), [1]) == [ROWS[1]]
    assert rec.errors == ["profile_lease", "profile_lease"]


async def test_a_held_lease_makes_others_wait_then_load_without_filling(
    la: LookAside, cache: MemoryCache
) -> None:
    holder = await cache.lease("user:1", ttl=10)  # another node is filling
    assert holder
    load = Loader(ALICE)
    assert await get(la, load) == ALICE
    assert load.calls == 1
    assert await cache.get("user:1") is None  # not filled over the holder's lease
    assert await cache.fill("user:1", b"\x00", ttl=60, token=holder)


async def test_a_waiter_reads_the_holders_value(cache: MemoryCache) -> None:
    la = LookAside(cache, name="profile", waits=(0.01, 0.05, 0.2))
    holder = await cache.lease("user:1", ttl=10)
    assert holder

    async def holder_fills() -> None:
        await asyncio.sleep(0.005)
        await cache.fill("user:1", b"\x01" + encode(ALICE), ttl=60, token=holder)

    load = Loader(Profile(1, "never read"))
    filler = asyncio.create_task(holder_fills())
    assert await get(la, load) == ALICE
    await filler
    assert load.calls == 0


# ---------------------------------------------------------------- get_many


def key(i: int) -> str:
    return f"user:{i}"


class ManyLoader:
    def __init__(self, rows: dict[int, Profile]) -> None:
        self.rows = rows
        self.calls: list[list[int]] = []

    async def __call__(self, ids: list[int]) -> dict[int, Profile]:
        self.calls.append(ids)
        return {i: self.rows[i] for i in ids if i in self.rows}


async def get_many(la: LookAside, load: ManyLoader, ids: Sequence[int]) -> list[Profile | None]:
    return await la.get_many(ids, load, key=key, ttl=60, encode=encode, decode=decode)


ROWS = {i: Profile(i, f"user {i}") for i in range(1, 60) if i % 10 != 0}


async def test_get_many_loads_the_misses_in_one_call(la: LookAside, rec: Recorder) -> None:
    load = ManyLoader(ROWS)
    assert await get(la, Loader(ROWS[7]), key(7)) == ROWS[7]
    ids = list(range(50, 0, -1))
    got = await get_many(la, load, ids)
    assert got == [ROWS.get(i) for i in ids]
    assert load.calls == [[i for i in ids if i != 7]]
    assert rec.count("hit") == 1
    assert rec.count("miss") == 1 + 49
    # Everything is cached now, absent ids included.
    assert await get_many(la, load, [*ids, 55]) == [*got, ROWS[55]]
    assert load.calls[1:] == [[55]]


class CountingCache(MemoryCache):
    """Counts the calls that would be round trips to a shared cache."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.inner = False

    async def get_many_or_lease(
        self, keys: Sequence[str], *, ttl: float
    ) -> list[tuple[bytes | None, str | None]]:
        self.calls.append("get_many_or_lease")
        self.inner = True  # (the memory cache's own calls below are not round trips)
        try:
            return await super().get_many_or_lease(keys, ttl=ttl)
        finally:
            self.inner = False

    async def get_or_lease(self, key: str, *, ttl: float) -> tuple[bytes | None, str | None]:
        if not self.inner:
            self.calls.append("get_or_lease")
        return await super().get_or_lease(key, ttl=ttl)


async def test_get_each_reads_keys_of_any_kind_in_one_call_and_fills_the_misses(
    rec: Recorder,
) -> None:
    cache = CountingCache()
    la = LookAside(cache, name="graph", on_result=rec.on_result, waits=FAST)
    ints = msgpack_codec(int)
    await get(la, Loader(ALICE), "p:1")  # a hit below
    cache.calls.clear()
    profile, count, absent = Loader(ALICE), Loader(), Loader()

    async def load_count() -> int:
        count.calls += 1
        return 7

    lookups: list[Lookup[object]] = [
        Lookup("p:1", profile, 60, encode, decode, "profile"),  # type: ignore[arg-type]
        Lookup("n:1", load_count, 60, *ints),  # type: ignore[arg-type]
        Lookup("p:2", absent, 60, encode, decode, "profile"),  # type: ignore[arg-type]
    ]
    assert await la.get_each(lookups) == [ALICE, 7, None]
    assert cache.calls == ["get_many_or_lease"]
    assert (profile.calls, count.calls, absent.calls) == (0, 1, 1)
    assert ("profile", "hit") in rec.results
    assert ("graph", "miss") in rec.results
    cache.calls.clear()
    assert await la.get_each(lookups) == [ALICE, 7, None]  # filled: all hits now
    assert (count.calls, absent.calls) == (1, 1)


async def test_get_each_waits_for_a_lease_held_elsewhere_and_survives_an_outage(
    cache: MemoryCache, rec: Recorder
) -> None:
    la = LookAside(cache, name="graph", on_result=rec.on_result, waits=FAST)
    await cache.lease("p:1", ttl=60)  # another node is filling it
    one, two = Loader(ALICE), Loader(Profile(2, "ben"))
    lookups = [Lookup("p:1", one, 60, encode, decode), Lookup("p:2", two, 60, encode, decode)]
    assert await la.get_each(lookups) == [ALICE, Profile(2, "ben")]
    assert await cache.get("p:1") is None  # loaded without filling
    assert await cache.get("p:2") is not None
    broken = LookAside(DownCache(*ALL), name="graph", on_error=rec.on_error, waits=FAST)
    assert await broken.get_each(lookups) == [ALICE, Profile(2, "ben")]
    assert "graph_get_many" in rec.errors


async def test_get_each_loads_the_misses_leased_to_it_together_and_fills_each(
    cache: MemoryCache, rec: Recorder
) -> None:
    """Decision 0059: two or more misses leased to the call are one ``together`` load; a
    key leased elsewhere still waits (and loads alone), a hit is not loaded."""
    la = LookAside(cache, name="graph", on_result=rec.on_result, waits=FAST)
    await get(la, Loader(ALICE), "p:1")  # a hit below
    await cache.lease("p:4", ttl=60)  # another node is filling it
    own = [Loader(ALICE), Loader(Profile(2, "ben")), Loader(Profile(3, "cat"))]
    elsewhere = Loader(Profile(4, "dan"))
    asked: list[list[int]] = []

    async def together(which: list[int]) -> list[object]:
        asked.append(which)
        return [Profile(i + 1, f"joint{i}") for i in which]

    lookups = [Lookup(f"p:{i + 1}", own[i], 60, encode, decode) for i in range(3)]
    lookups.append(Lookup("p:4", elsewhere, 60, encode, decode))
    found = await la.get_each(lookups, together)  # type: ignore[arg-type]
    assert asked == [[1, 2]]
    assert found == [ALICE, Profile(2, "joint1"), Profile(3, "joint2"), Profile(4, "dan")]
    assert [loader.calls for loader in own] == [0, 0, 0]
    assert elsewhere.calls == 1
    assert await cache.get("p:4") is None  # loaded without filling
    again = LookAside(cache, name="graph", waits=FAST)  # another node: the fills are there
    assert await again.get_each(lookups[:3], together) == found[:3]  # type: ignore[arg-type]
    assert asked == [[1, 2]]
    alone = [Lookup("p:9", Loader(Profile(9, "eve")), 60, encode, decode)]
    assert await la.get_each(alone, together) == [Profile(9, "eve")]  # type: ignore[arg-type]
    assert asked == [[1, 2]]  # a single miss: its own load


async def test_deferred_fills_are_made_together_at_the_end_and_still_lose_to_a_write(
    rec: Recorder,
) -> None:
    cache = CountingCache()
    fills: list[int] = []
    fill_many = cache.fill_many

    async def counted(items: Sequence[tuple[str, bytes, str]], *, ttl: float) -> None:
        fills.append(len(items))
        await fill_many(items, ttl=ttl)

    cache.fill_many = counted  # type: ignore[method-assign]
    graph = LookAside(cache, name="graph", waits=FAST)
    profiles = LookAside(cache, name="profile", waits=FAST)
    async with deferred_fills():
        assert await get(graph, Loader(ALICE), "l:1") == ALICE
        many = await profiles.get_many(
            [2, 3],
            lambda ids: _loaded(ids),
            key=lambda i: f"p:{i}",
            ttl=60,
            encode=encode,
            decode=decode,
        )
        assert many == [Profile(2, "u2"), Profile(3, "u3")]
        assert await cache.get("l:1") is None  # not filled yet
        await cache.invalidate("p:3")  # a write meanwhile: that fill is refused
    assert fills == [3]
    assert await cache.get("l:1") is not None
    assert await cache.get("p:2") is not None
    assert await cache.get("p:3") is None


async def _loaded(ids: list[int]) -> dict[int, Profile]:
    return {i: Profile(i, f"u{i}") for i in ids}


async def test_get_many_keeps_order_and_duplicates(la: LookAside) -> None:
    load = ManyLoader(ROWS)
    assert await get_many(la, load, [3, 10, 3, 1]) == [ROWS[3], None, ROWS[3], ROWS[1]]
    assert load.calls == [[3, 10, 1]]
    assert await get_many(la, load, []) == []


async def test_get_many_does_not_fill_keys_leased_elsewhere(
    la: LookAside, cache: MemoryCache
) -> None:
    holder = await cache.lease(key(2), ttl=10)
    assert holder
    load = ManyLoader(ROWS)
    assert await get_many(la, load, [1, 2, 3]) == [ROWS[1], ROWS[2], ROWS[3]]
    assert load.calls == [[1, 2, 3]]  # still one loader call
    assert await cache.get(key(2)) is None
    assert await cache.get(key(1)) is not None


async def test_get_many_skips_fills_invalidated_meanwhile(
    la: LookAside, cache: MemoryCache
) -> None:
    async def load(ids: list[int]) -> dict[int, Profile]:
        await la.invalidate(key(2))
        return {i: ROWS[i] for i in ids}

    got = await la.get_many([1, 2], load, key=key, ttl=60, encode=encode, decode=decode)
    assert got == [ROWS[1], ROWS[2]]
    assert await cache.get(key(1)) is not None
    assert await cache.get(key(2)) is None


# ---------------------------------------------------------------- cache failures


class DownCache(MemoryCache):
    """Every operation named in ``down`` fails as if Redis were unreachable."""

    def __init__(self, *down: str) -> None:
        super().__init__()
        self.down = set(down)

    def __getattribute__(self, name: str) -> object:
        attr = super().__getattribute__(name)
        if name in super().__getattribute__("down"):

            async def fail(*_a: object, **_k: object) -> None:
                raise CacheUnavailable(f"{name}: connection refused")

            return fail
        return attr


ALL = (
    "get",
    "get_many",
    "get_or_lease",
    "get_many_or_lease",
    "lease",
    "lease_many",
    "fill",
    "fill_many",
    "invalidate",
)


def over(cache: MemoryCache, rec: Recorder) -> LookAside:
    return LookAside(
        cache, name="profile", on_result=rec.on_result, on_error=rec.on_error, waits=FAST
    )


async def test_a_cache_outage_falls_back_to_the_loader(rec: Recorder) -> None:
    la = over(DownCache(*ALL), rec)
    load = Loader(ALICE)
    assert await get(la, load) == ALICE
    assert await get(la, load) == ALICE
    assert load.calls == 2
    many = ManyLoader(ROWS)
    assert await get_many(la, many, [2, 1]) == [ROWS[2], ROWS[1]]
    assert many.calls == [[2, 1]]
    await la.invalidate("user:1")
    assert rec.errors == ["profile_get", "profile_get", "profile_get_many", "profile_invalidate"]
    assert rec.results == []  # no look-up was answered


async def test_an_outage_still_loads_once_per_key_in_the_process(rec: Recorder) -> None:
    la = over(DownCache(*ALL), rec)
    load = Loader(ALICE, delay=0.01)
    assert await asyncio.gather(*(get(la, load) for _ in range(10))) == [ALICE] * 10
    assert load.calls == 1


@pytest.mark.parametrize(
    ("down", "errors"),
    [
        (("get_or_lease", "get_many_or_lease"), ["profile_get", "profile_get_many"]),
        (("fill", "fill_many"), ["profile_fill", "profile_fill"]),
    ],
)
async def test_a_failing_lease_or_fill_still_answers(
    rec: Recorder, down: tuple[str, ...], errors: list[str]
) -> None:
    la = over(DownCache(*down), rec)
    load = Loader(ALICE)
    many = ManyLoader(ROWS)
    assert await get(la, load) == ALICE
    assert await get_many(la, many, [1, 2]) == [ROWS[1], ROWS[2]]
    assert load.calls == 1
    assert many.calls == [[1, 2]]
    assert rec.errors == errors


async def test_callbacks_default_to_nothing(cache: MemoryCache) -> None:
    la = LookAside(cache, name="profile")
    assert await get(la, Loader(ALICE)) == ALICE


def test_msgpack_codec_round_trips() -> None:
    enc: Callable[[list[int]], bytes]
    enc, dec = msgpack_codec(list[int])
    assert dec(enc([3, 1, 2])) == [3, 1, 2]
    assert decode(encode(ALICE)) == ALICE
