"""Look-aside caching with leases: read the cache, on a miss load from the database.

- One filler per key across the cluster: a miss takes a lease (``Cache.lease``) before
  loading; whoever cannot get it waits briefly for the holder's value, then loads from
  the database without filling.
- One load per key inside the process: concurrent misses on one key share a future.
- Writers call ``invalidate`` after commit: it deletes the value and breaks the lease,
  so a fill that loaded the old row before the write stores nothing.
- Absent rows are cached too (a negative entry, same ttl), so lookups of missing ids do
  not reach the database each time.
- A cache outage never fails a read: every ``CacheUnavailable`` is counted through
  ``on_error`` and the value comes from the loader.

Stored values are tagged by their first byte: ``b"\\x01" + encode(value)`` for a value,
exactly ``b"\\x00"`` for an absent row. Anything else (an empty or foreign value, or one
that no longer decodes after a schema change) is treated as a miss and refilled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import msgspec
import structlog

from socius.domain.errors import BusUnavailable, CacheUnavailable
from socius.services.near_cache import MISS, SUBJECT, NearCache
from socius.services.ports import Cache, CacheAndBus

Messages = Sequence[tuple[str, bytes]]

__all__ = ["LookAside", "Lookup", "deferred_fills", "msgpack_codec"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

log = structlog.get_logger("socius.cache")

_ABSENT: Final = b"\x00"
_PRESENT: Final = b"\x01"
#: Seconds slept before each re-read while another node holds the lease (~35 ms in all).
DEFAULT_WAITS: Final = (0.005, 0.01, 0.02)


class _Miss:
    """Nothing usable in the cache (distinct from a cached ``None``)."""


_MISS: Final = _Miss()


class _Unleased:
    """No lease was asked for yet (distinct from one held elsewhere: None)."""


_UNLEASED: Final = _Unleased()


class _Retry:
    """The flight's leader was cancelled; its waiters start over."""


_RETRY: Final = _Retry()


def msgpack_codec(type_: type[T]) -> tuple[Callable[[T], bytes], Callable[[bytes], T]]:
    """``(encode, decode)`` for a msgspec Struct, dataclass or other msgspec type."""
    encoder = msgspec.msgpack.Encoder()
    decoder = msgspec.msgpack.Decoder(type_)
    return encoder.encode, decoder.decode


@dataclass(frozen=True, slots=True)
class Lookup(Generic[T]):
    """One key of a ``LookAside.get_each``: what ``get`` is given for it. ``name``: the
    family its hits and misses are counted under (None: the look-aside's own)."""

    key: str
    load: Callable[[], Awaitable[T | None]]
    ttl: float
    encode: Callable[[T], bytes]
    decode: Callable[[bytes], T]
    name: str | None = None


_Deferred = list[tuple["LookAside", float, list[tuple[str, bytes, str]]]]
_DEFERRED: ContextVar[_Deferred | None] = ContextVar("lookaside_deferred", default=None)


@asynccontextmanager
async def deferred_fills() -> AsyncIterator[None]:
    """The fills of the misses read inside the block (by any look-aside of this task),
    made together at its end: one cache call per shared cache and ttl where each miss
    made its own (a request that reads a list's head, then its users' profiles). A fill
    is still refused if its lease was broken meanwhile: only its moment moves (a node
    waiting on one of these leases loads from the database after its short waits)."""
    if _DEFERRED.get() is not None:  # nested: the outer block fills
        yield
        return
    pending: _Deferred = []
    reset = _DEFERRED.set(pending)
    try:
        yield
    finally:
        _DEFERRED.reset(reset)
        groups: dict[tuple[int, float], tuple[LookAside, list[tuple[str, bytes, str]]]] = {}
        for la, ttl, fills in pending:
            group = groups.setdefault((id(la._cache), ttl), (la, []))
            group[1].extend(fills)
        for (_cache, ttl), (la, fills) in groups.items():
            await la._flush(fills, ttl)


class LookAside:
    """Look-aside reads over a ``Cache``, for one family of keys (``name`` labels metrics)."""

    def __init__(
        self,
        cache: Cache,
        *,
        name: str,
        on_result: Callable[[str, str], None] = lambda _cache, _result: None,
        on_error: Callable[[str], None] = lambda _op: None,
        lease_ttl: float = 3.0,
        waits: Sequence[float] = DEFAULT_WAITS,
        near: NearCache | None = None,
        publish: Callable[[Messages], Awaitable[None]] | None = None,
        shared: CacheAndBus | None = None,
    ) -> None:
        """``near``: this node's L1 (services/near_cache.py), read before ``cache``.
        ``publish``: the bus's ``publish_many``, for the messages an invalidation is
        followed by (``invalidate(..., then=)``); ``shared``: ``cache`` and the bus on one
        connection, where the invalidation and its messages leave together."""
        self._cache = cache
        self._near = near
        self._publish = publish
        self._shared = shared
        self._name = name
        self._on_result = on_result
        self._on_error = on_error
        self._lease_ttl = lease_ttl
        self._waits = tuple(waits)
        self._flights: dict[str, asyncio.Future[Any]] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def remembers(self) -> bool:
        """Whether what is read now is held in this node's L1 for the next reads."""
        return self._near is not None and self._near.enabled

    def ticket(self) -> tuple[int, float]:
        """An L1 fill's ticket (``NearCache.begin``), for ``remember``."""
        return self._near.begin() if self._near is not None else (0, 0.0)

    def dropped_since(self, gen: int) -> list[str] | None:
        """The keys this node's L1 dropped since a ticket's generation
        (``NearCache.dropped_since``); None when it cannot tell, or has no L1."""
        return None if self._near is None else self._near.dropped_since(gen)

    def remember(self, key: str, value: object, ticket: tuple[int, float]) -> None:
        """Keep ``value`` (read from the database since ``ticket``) in this node's L1
        only, unless ``key`` was invalidated since."""
        if self._near is not None:
            self._near.put(key, value, ticket)

    def remember_many(self, items: Sequence[tuple[str, object]], ticket: tuple[int, float]) -> None:
        """``remember`` of each ``(key, value)``, in one pass over this node's L1."""
        if self._near is not None:
            self._near.put_many(items, ticket)

    async def get_local(self, key: str, load: Callable[[], Awaitable[T | None]]) -> T | None:
        """A value kept in this node's L1 only (never in the shared cache): held, else
        ``load``ed and kept unless ``key`` was invalidated meanwhile. For values that
        writes invalidate so often that a shared copy would seldom be read before being
        dropped (its fill would cost more than it saves). Without L1: ``load`` each time."""
        near = self._near
        if near is None or not near.enabled:
            return await load()
        held = near.get(key)
        if held is not MISS:
            return held  # type: ignore[no-any-return]
        ticket = near.begin()
        value = await load()
        near.put(key, value, ticket)
        return value

    # ------------------------------------------------------------------ one key

    async def get(
        self,
        key: str,
        load: Callable[[], Awaitable[T | None]],
        *,
        ttl: float,
        encode: Callable[[T], bytes],
        decode: Callable[[bytes], T],
    ) -> T | None:
        """The value for ``key``: from L1, else the cache, else ``load`` (None = absent).

        The read and, on a miss, the lease are one cache call (one Redis round trip)."""
        near = self._near
        if near is None:
            return await self._get(key, load, ttl, encode, decode)
        held = near.get(key)
        if held is not MISS:
            return held  # type: ignore[no-any-return]
        ticket = near.begin()
        value = await self._get(key, load, ttl, encode, decode)
        near.put(key, value, ticket)
        return value

    async def get_each(
        self,
        lookups: Sequence[Lookup[Any]],
        together: Callable[[list[int]], Awaitable[list[Any]]] | None = None,
    ) -> list[Any]:
        """The values of keys of any kinds (``get`` of each, in order), those not in L1
        read and, on a miss, leased in one cache call: one Redis round trip for what a
        request needs before it knows anything else. Each miss leased here is loaded by
        its own ``load`` and filled (one fill call); a miss leased elsewhere goes the way
        of ``get`` (wait for that fill, else load).

        ``together``: given the indexes (in ``lookups``) of two or more misses to load here
        (leased to this call, or the cache is away), their values in that order, in one
        load (one statement where each ``load`` is one: decision 0059)."""
        near = self._near
        out: list[Any] = [None] * len(lookups)
        wanted: list[int] = []
        for i, lookup in enumerate(lookups):
            held = MISS if near is None else near.get(lookup.key)
            if held is MISS:
                wanted.append(i)
            else:
                out[i] = held
        if not wanted:
            return out
        ticket = near.begin() if near is not None else (0, 0.0)
        if len(wanted) == 1:
            lookup = lookups[wanted[0]]
            out[wanted[0]] = value = await self._get(
                lookup.key, lookup.load, lookup.ttl, lookup.encode, lookup.decode
            )
            if near is not None:
                near.put(lookup.key, value, ticket)
            return out
        try:
            answers: (
                Sequence[tuple[bytes | None, str | None]] | None
            ) = await self._cache.get_many_or_lease(
                [lookups[i].key for i in wanted], ttl=self._lease_ttl
            )
        except CacheUnavailable:
            self._error("get_many")
            answers = None
        fills: dict[float, list[tuple[str, bytes, str]]] = {}
        loaded: dict[int, Any] = {}
        if together is not None:
            here = [
                i
                for n, i in enumerate(wanted)
                if answers is None or (answers[n][0] is None and answers[n][1] is not None)
            ]
            if len(here) > 1:
                loaded = dict(zip(here, await together(here), strict=True))
        for n, i in enumerate(wanted):
            lookup = lookups[i]
            if answers is None:
                value = loaded[i] if i in loaded else await lookup.load()
            else:
                raw, token = answers[n]
                cached = self._unpack(lookup.key, raw, lookup.decode)
                self._on_result(lookup.name or self._name, "miss" if cached is _MISS else "hit")
                if not isinstance(cached, _Miss):
                    value = cached
                elif raw is None and token is not None:  # leased to this call: fill it
                    value = loaded[i] if i in loaded else await lookup.load()
                    fills.setdefault(lookup.ttl, []).append(
                        (lookup.key, self._pack(value, lookup.encode), token)
                    )
                else:  # leased elsewhere (None), or an unusable value (lease it now)
                    value = await self._fetch(
                        lookup.key,
                        lookup.load,
                        lookup.ttl,
                        lookup.encode,
                        lookup.decode,
                        None if raw is None else _UNLEASED,
                    )
            out[i] = value
            if near is not None:
                near.put(lookup.key, value, ticket)
        for ttl, batch in fills.items():
            await self._fill_many(batch, ttl)
        return out

    async def _get(
        self,
        key: str,
        load: Callable[[], Awaitable[T | None]],
        ttl: float,
        encode: Callable[[T], bytes],
        decode: Callable[[bytes], T],
    ) -> T | None:
        while True:
            flight = self._flights.get(key)
            if flight is None:
                lease: str | _Unleased | None = _UNLEASED
                try:
                    raw, lease = await self._cache.get_or_lease(key, ttl=self._lease_ttl)
                except CacheUnavailable:
                    self._error("get")
                    raw, cache_up = None, False
                else:
                    cache_up = True
                if cache_up:
                    cached = self._unpack(key, raw, decode)
                    self._on_result(self._name, "miss" if cached is _MISS else "hit")
                    if not isinstance(cached, _Miss):
                        return cached
                    if raw is not None:
                        lease = _UNLEASED  # an unusable value: no lease was taken
                # Someone may have started a flight while we were reading. (A lease we
                # took meanwhile then lapses unused: fills of this key pause until then.)
                flight = self._flights.get(key)
                if flight is None:
                    return await self._lead(key, load, ttl, encode, decode, cache_up, lease)
            result = await asyncio.shield(flight)
            if not isinstance(result, _Retry):
                return result  # type: ignore[no-any-return]

    async def peek(self, key: str, *, decode: Callable[[bytes], T]) -> T | None:
        """The cached value of ``key`` if there is one (never loads nor fills the cache):
        None for a miss, an absent row, or a cache outage."""
        near = self._near
        ticket = (0, 0.0)
        if near is not None:
            held = near.get(key)
            if held is not MISS:
                return held  # type: ignore[no-any-return]
            ticket = near.begin()
        try:
            raw = await self._cache.get(key)
        except CacheUnavailable:
            self._error("get")
            return None
        cached = self._unpack(key, raw, decode)
        self._on_result(self._name, "miss" if cached is _MISS else "hit")
        if isinstance(cached, _Miss):
            return None
        if near is not None:
            near.put(key, cached, ticket)
        return cached

    async def _lead(
        self,
        key: str,
        load: Callable[[], Awaitable[T | None]],
        ttl: float,
        encode: Callable[[T], bytes],
        decode: Callable[[bytes], T],
        cache_up: bool,
        lease: str | _Unleased | None,
    ) -> T | None:
        flight: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            if cache_up:
                value = await self._fetch(key, load, ttl, encode, decode, lease)
            else:
                value = await load()
        except Exception as exc:
            flight.set_exception(exc)
            flight.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        except BaseException:
            flight.set_result(_RETRY)  # the leader was cancelled, not its waiters: they retry
            raise
        else:
            flight.set_result(value)
            return value
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]

    async def _fetch(
        self,
        key: str,
        load: Callable[[], Awaitable[T | None]],
        ttl: float,
        encode: Callable[[T], bytes],
        decode: Callable[[bytes], T],
        lease: str | _Unleased | None,
    ) -> T | None:
        """A miss: fill under the lease, or wait for the node that holds it."""
        token = lease
        if isinstance(token, _Unleased):
            try:
                token = await self._cache.lease(key, ttl=self._lease_ttl)
            except CacheUnavailable:
                self._error("lease")
                return await load()
        if token is None:
            cached = await self._wait_for(key, decode)
            if not isinstance(cached, _Miss):
                return cached
            return await load()
        value = await load()
        # If the loader raised, the lease stays until it expires; other nodes meanwhile
        # load without filling, which is correct, only slower.
        await self._fill_many([(key, self._pack(value, encode), token)], ttl)
        return value

    async def _wait_for(self, key: str, decode: Callable[[bytes], T]) -> T | _Miss | None:
        for delay in self._waits:
            await asyncio.sleep(delay)
            try:
                raw = await self._cache.get(key)
            except CacheUnavailable:
                self._error("get")
                return _MISS
            cached = self._unpack(key, raw, decode)
            if not isinstance(cached, _Miss):
                return cached
        return _MISS

    # ------------------------------------------------------------------ many keys

    async def get_many(
        self,
        ids: Sequence[K],
        load_many: Callable[[list[K]], Awaitable[Mapping[K, T]]],
        *,
        key: Callable[[K], str],
        ttl: float,
        encode: Callable[[T], bytes],
        decode: Callable[[bytes], T],
    ) -> list[T | None]:
        """The values for ``ids``, in their order (None for absent ones).

        One multi-get that also leases the misses (one Redis round trip); the misses are
        loaded with one ``load_many`` call (ids missing from its result are absent) and
        filled together.
        """
        near = self._near
        if near is None:
            return await self._get_many(ids, load_many, key, ttl, encode, decode)
        unique = list(dict.fromkeys(ids))
        keys = [key(i) for i in unique]
        values = near.get_many(keys)  # one L1 pass for all of them
        wanted = [n for n, v in enumerate(values) if v is MISS]
        if wanted:
            ticket = near.begin()
            loaded = await self._get_many(
                [unique[n] for n in wanted], load_many, key, ttl, encode, decode
            )
            for n, value in zip(wanted, loaded, strict=True):
                values[n] = value
            near.put_many([(keys[n], values[n]) for n in wanted], ticket)
        if len(unique) == len(ids):  # no id asked twice: the values are in their order
            return values
        held = dict(zip(unique, values, strict=True))
        return [held[i] for i in ids]

    async def _get_many(
        self,
        ids: Sequence[K],
        load_many: Callable[[list[K]], Awaitable[Mapping[K, T]]],
        key: Callable[[K], str],
        ttl: float,
        encode: Callable[[T], bytes],
        decode: Callable[[bytes], T],
    ) -> list[T | None]:
        unique = list(dict.fromkeys(ids))
        if not unique:
            return []
        keys = {i: key(i) for i in unique}
        found: dict[K, T | None] = {}
        try:
            answers = await self._cache.get_many_or_lease(
                [keys[i] for i in unique], ttl=self._lease_ttl
            )
        except CacheUnavailable:
            self._error("get_many")
            loaded = await load_many(unique)
            return [loaded.get(i) for i in ids]

        leased: dict[K, str] = {}
        others: list[K] = []  # leased elsewhere: wait for their fills
        unleased: list[K] = []  # held an unusable value: no lease asked for yet
        misses = 0
        for i, (raw, token) in zip(unique, answers, strict=True):
            cached = self._unpack(keys[i], raw, decode)
            if not isinstance(cached, _Miss):
                found[i] = cached
                continue
            misses += 1
            if raw is not None:
                unleased.append(i)
            elif token is not None:
                leased[i] = token
            else:
                others.append(i)
        for _ in found:
            self._on_result(self._name, "hit")
        for _ in range(misses):
            self._on_result(self._name, "miss")

        if unleased:
            try:
                tokens = await self._cache.lease_many(
                    [keys[i] for i in unleased], ttl=self._lease_ttl
                )
            except CacheUnavailable:
                self._error("lease")
            else:
                for i, t in zip(unleased, tokens, strict=True):
                    if t is not None:
                        leased[i] = t
                    else:
                        others.append(i)
        if others:
            found.update(await self._wait_for_many(others, keys, decode))
        to_load = [i for i in unique if i not in found]
        if to_load:
            loaded = await load_many(to_load)
            fills: list[tuple[str, bytes, str]] = []
            for i in to_load:
                value = loaded.get(i)
                found[i] = value
                if i in leased:
                    fills.append((keys[i], self._pack(value, encode), leased[i]))
            if fills:
                await self._fill_many(fills, ttl)
        return [found.get(i) for i in ids]

    async def _wait_for_many(
        self, ids: list[K], keys: Mapping[K, str], decode: Callable[[bytes], T]
    ) -> dict[K, T | None]:
        found: dict[K, T | None] = {}
        pending = list(ids)
        for delay in self._waits:
            await asyncio.sleep(delay)
            try:
                raws = await self._cache.get_many([keys[i] for i in pending])
            except CacheUnavailable:
                self._error("get_many")
                break
            still: list[K] = []
            for i, raw in zip(pending, raws, strict=True):
                cached = self._unpack(keys[i], raw, decode)
                if isinstance(cached, _Miss):
                    still.append(i)
                else:
                    found[i] = cached
            pending = still
            if not pending:
                break
        return found

    # ------------------------------------------------------------------ writes

    async def invalidate(
        self, *keys: str, near_only: Sequence[str] = (), then: Messages = ()
    ) -> bool:
        """After a commit: drop ``keys`` and break their leases, then drop them from every
        node's L1 (in that order: a node that hears the broadcast reads L2 afresh), with
        ``near_only`` (kept in L1 alone) in the same broadcast; then publish ``then``
        (``(subject, payload)``: a write's events) in the same bus call. Where the cache
        and the bus share a connection (``shared``) all of it is one round trip, which the
        broker runs in that order (decision 0040). Never raises on outage; False when
        ``then`` could not be published."""
        if not keys and not near_only and not then:
            return True
        near = self._near
        if then and self._publish is None:
            raise ValueError("no bus to publish on: pass publish= to LookAside")
        if self._shared is not None:
            # This node's L1 first: a fill that begins now reads L2 on the same connection,
            # behind the DEL, and one that began before is refused by the drop.
            message = near.invalidation([*keys, *near_only]) if near is not None else None
            items = [(SUBJECT, message), *then] if message is not None else then
            invalidated, published = await self._shared.invalidate_and_publish(keys, items)
            if not invalidated:
                self._error("invalidate")
            if not published and message is not None and near is not None:
                near.unheard()
            return published
        if keys:
            try:
                await self._cache.invalidate(*keys)
            except CacheUnavailable:
                # Stale entries outlive the outage until their ttl: keep ttls short.
                self._error("invalidate")
        if not then:
            if near is not None:
                await near.broadcast([*keys, *near_only])
            return True
        message = near.invalidation([*keys, *near_only]) if near is not None else None
        assert self._publish is not None
        try:
            await self._publish([(SUBJECT, message), *then] if message is not None else then)
        except BusUnavailable:
            if message is not None and near is not None:
                near.unheard()
            return False
        return True

    # ------------------------------------------------------------------ helpers

    async def _fill_many(self, fills: list[tuple[str, bytes, str]], ttl: float) -> None:
        """Fill leased keys now, or at the end of the ``deferred_fills`` block around."""
        pending = _DEFERRED.get()
        if pending is not None:
            pending.append((self, ttl, fills))
            return
        await self._flush(fills, ttl)

    async def _flush(self, fills: list[tuple[str, bytes, str]], ttl: float) -> None:
        try:
            if len(fills) == 1:
                key, value, token = fills[0]
                await self._cache.fill(key, value, ttl=ttl, token=token)
            else:
                await self._cache.fill_many(fills, ttl=ttl)
        except CacheUnavailable:
            self._error("fill")

    def _error(self, op: str) -> None:
        self._on_error(f"{self._name}_{op}")

    @staticmethod
    def _pack(value: T | None, encode: Callable[[T], bytes]) -> bytes:
        return _ABSENT if value is None else _PRESENT + encode(value)

    def _unpack(
        self, key: str, raw: bytes | None, decode: Callable[[bytes], T]
    ) -> T | _Miss | None:
        if raw is None:
            return _MISS
        if raw == _ABSENT:
            return None
        if raw[:1] == _PRESENT:
            try:
                return decode(raw[1:])
            except (msgspec.DecodeError, ValueError):
                log.warning("cache_value_undecodable", cache=self._name, key=key)
        return _MISS
