"""This node's in-process cache (L1) of hot look-aside entries, kept decoded.

In front of the shared cache (L2: Redis, or the in-process cache embedded). Coherent by
invalidations broadcast on the bus after commit, the memcache/TAO way
(docs/decisions/0016):

- a writer invalidates L2 first (deleting the value and breaking its lease), then drops
  the keys from its own L1, then broadcasts them; every node drops them when it hears;
- a fill races with invalidations: ``begin()`` before reading L2 or the database, and
  ``put`` stores only if no invalidation of that key (nor a loss of the bus link) came
  in between: a value read before a write never outlives the write's broadcast;
- while the bus link is not current (invalidations may be missed), L1 is empty and
  unused; it fills again once the link has caught up;
- a TTL (``ttl``) bounds what a lost broadcast could leave, and entries are kept in LRU
  order up to ``max_entries``;
- an entry built from other entries (a rendered response body: decision 0024) names
  them as its ``deps``: dropping any of them drops it, and a fill refuses to store it if
  any of them was dropped since its ticket.

Hits and misses are counted in plain integers (``hits``, ``misses``): a page of friends
reads 50 keys, and a labelled counter per read cost more than the read.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import msgspec
import structlog

from socius.services.bus_link import BusLink
from socius.services.ports import Cache

__all__ = ["MISS", "SUBJECT", "NearCache", "own_user_key"]

log = structlog.get_logger("socius.cache")

SUBJECT = "cache.invalidate"
_FILL_HORIZON = 30.0  # seconds: a fill that began longer ago than this stores nothing


def own_user_key(user_id: int) -> str:
    """A user's own row (L1 only: it holds the email and credentials)."""
    return f"u:{user_id}"


class _Miss:
    __slots__ = ()


MISS: Final = _Miss()


class _Invalidation(msgspec.Struct, array_like=True):
    origin: str
    keys: list[str]


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Invalidation).decode


class NearCache:
    subject = SUBJECT

    def __init__(
        self,
        *,
        max_entries: int,
        ttl: float,
        link: BusLink | None,
        origin: str,
        local_l2: Cache | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``link``: the node's bus link (None: an L1 that never holds anything).
        ``local_l2``: the L2 when it is this process's own (embedded): invalidations
        heard from other nodes drop its keys as well."""
        self._max = max_entries
        self._ttl = ttl
        self._link = link
        self._origin = origin
        self._local_l2 = local_l2
        self.hits = 0
        self.misses = 0
        self._clock = clock
        self._entries: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self._gen = 0  # moves on at every drop
        self._dropped: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (gen, at)
        self._cleared_gen = 0  # the gen of the last clear (link lost)
        self._dependents: dict[str, set[str]] = {}  # dep -> keys built from it
        self._built_from: dict[str, Sequence[str]] = {}  # key -> its deps (built keys only)
        if link is not None and max_entries > 0:
            link.follow(self)

    @property
    def enabled(self) -> bool:
        return self._max > 0 and self._link is not None and self._link.current

    def get(self, key: str) -> Any:
        """The value held for ``key``, or ``MISS``."""
        if not self.enabled:
            return MISS
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return MISS
        value, expires = entry
        if expires < self._clock():
            del self._entries[key]
            self._unlink(key)
            self.misses += 1
            return MISS
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        """``get`` of each of ``keys``, in order (``MISS`` for each not held): one check of
        the link and one clock read for all of them (a page reads 50 profiles)."""
        if not self.enabled:
            return [MISS] * len(keys)
        entries, now = self._entries, self._clock()
        move = entries.move_to_end
        out: list[Any] = []
        hits = 0
        for key in keys:
            entry = entries.get(key)
            if entry is None:
                out.append(MISS)
            elif entry[1] < now:
                del entries[key]
                self._unlink(key)
                out.append(MISS)
            else:
                move(key)
                out.append(entry[0])
                hits += 1
        self.hits += hits
        self.misses += len(keys) - hits
        return out

    def begin(self) -> tuple[int, float]:
        """A fill's ticket: take it before reading what ``put`` will store."""
        return self._gen, self._clock()

    def put(
        self, key: str, value: Any, ticket: tuple[int, float], deps: Sequence[str] = ()
    ) -> bool:
        """Store ``value`` unless ``key`` (or one of ``deps``, the keys it was built from)
        was invalidated, or the link lost, since ``ticket`` was taken. True when stored."""
        if not self.enabled:
            return False
        gen, began = ticket
        now = self._clock()
        if gen < self._cleared_gen or now - began > _FILL_HORIZON:
            return False
        dropped = self._dropped
        for k in (key, *deps):
            was = dropped.get(k)
            if was is not None and was[0] > gen:
                return False
        self._unlink(key)  # what it was built from before
        if deps:
            dependents = self._dependents
            for dep in deps:
                built = dependents.get(dep)
                if built is None:
                    dependents[dep] = {key}
                else:
                    built.add(key)
            self._built_from[key] = deps
        entries = self._entries
        entries[key] = (value, now + self._ttl)
        entries.move_to_end(key)
        if len(entries) > self._max:
            self._unlink(entries.popitem(last=False)[0])
        # Expired entries would stay until read or pushed out at the bound: each put takes
        # up to two off the old end, so what is held follows the live set (rate x ttl).
        for _ in range(2):
            oldest = next(iter(entries))
            if entries[oldest][1] >= now:
                break
            del entries[oldest]
            self._unlink(oldest)
        return True

    def put_many(self, items: Sequence[tuple[str, Any]], ticket: tuple[int, float]) -> int:
        """``put`` of each ``(key, value)`` (none built from others), with the checks made
        once for the batch where they can be: how many were stored."""
        if not items or not self.enabled:
            return 0
        gen, began = ticket
        now = self._clock()
        if gen < self._cleared_gen or now - began > _FILL_HORIZON:
            return 0
        dropped, entries, built_from = self._dropped, self._entries, self._built_from
        expires = now + self._ttl
        stored = 0
        for key, value in items:
            was = dropped.get(key)
            if was is not None and was[0] > gen:
                continue
            if key in built_from:
                self._unlink(key)
            entries[key] = (value, expires)
            entries.move_to_end(key)
            stored += 1
        while len(entries) > self._max:
            self._unlink(entries.popitem(last=False)[0])
        # As ``put``: up to two expired entries off the old end per value stored.
        for _ in range(2 * stored):
            oldest = next(iter(entries))
            if entries[oldest][1] >= now:
                break
            del entries[oldest]
            self._unlink(oldest)
        return stored

    def drop(self, keys: Iterable[str]) -> None:
        """Forget ``keys`` here, and refuse the fills of them already under way."""
        self._gen += 1
        gen, now = self._gen, self._clock()
        dropped = self._dropped
        entries, dependents = self._entries, self._dependents
        for key in keys:
            if entries.pop(key, None) is not None:
                self._unlink(key)
            dropped[key] = (gen, now)
            dropped.move_to_end(key)
            built = dependents.pop(key, None)
            if built:
                for k in built:
                    entries.pop(k, None)
                    self._unlink(k)
        horizon = now - _FILL_HORIZON
        while dropped:
            first = next(iter(dropped.values()))
            if first[1] >= horizon:
                break
            dropped.popitem(last=False)

    async def broadcast(self, keys: list[str]) -> None:
        """After L2 is invalidated: drop ``keys`` here and tell every other node."""
        if self._max <= 0:
            return
        self.drop(keys)
        if self._link is not None:
            await self._link.publish(SUBJECT, _encode(_Invalidation(self._origin, keys)))

    def invalidation(self, keys: list[str]) -> bytes | None:
        """``broadcast`` for a caller that publishes its message itself (on ``SUBJECT``,
        with others: decision 0040): drop ``keys`` here; the message, or None when there
        is nothing to tell. Call ``unheard()`` if its publish fails."""
        if self._max <= 0:
            return None
        self.drop(keys)
        return None if self._link is None else _encode(_Invalidation(self._origin, keys))

    def unheard(self) -> None:
        """A message of ``invalidation`` was not published: the link is lost, as when
        ``broadcast``'s publish fails."""
        if self._link is not None:
            self._link.lose("publish")

    # ------------------------------------------------------------------ the bus link

    async def on_message(self, payload: bytes) -> None:
        try:
            message = _decode(payload)
        except (msgspec.DecodeError, ValueError):
            log.warning("cache invalidation undecodable")
            return
        self.drop(message.keys)
        if self._local_l2 is not None and message.origin != self._origin:
            await self._local_l2.invalidate(*message.keys)

    def lost(self) -> None:
        """Invalidations may be missed from now on: hold nothing, fill nothing."""
        self._gen += 1
        self._cleared_gen = self._gen
        self._entries.clear()
        self._dependents.clear()
        self._built_from.clear()

    def _unlink(self, key: str) -> None:
        """``key`` is no longer held: forget the links from what it was built from, so
        the index holds exactly the entries held (no sweep, no cliff)."""
        deps = self._built_from.pop(key, None)
        if deps is None:
            return
        dependents = self._dependents
        for dep in deps:
            built = dependents.get(dep)
            if built is not None:
                built.discard(key)
                if not built:
                    del dependents[dep]

    async def catch_up(self) -> None:
        """The link hears again: fills begun before now (which may have read a value
        whose invalidation was missed) store nothing; those begun after are heard about."""
        self.lost()

    def __len__(self) -> int:
        return len(self._entries)
