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
- a TTL (``ttl``) bounds what a lost broadcast could leave, and at most ``max_entries``
  are held: past the bound a batch of the oldest stored goes, but one read since it was
  stored is spared once (second chance, an approximation of LRU; decision 0054);
- an entry built from other entries (a rendered response body: decision 0024) names
  them as its ``deps``: once any of them is dropped it is never served again, and a
  fill refuses to store it if any of them was dropped since its ticket. Each read of it
  checks its deps against the drops made since it was last found valid (none, mostly:
  one comparison), instead of an index from each dep to what was built from it kept up
  to date at every store, eviction and drop (decision 0054).

Hits and misses are counted in plain integers (``hits``, ``misses``): a page of friends
reads 50 keys, and a labelled counter per read cost more than the read.
"""

from __future__ import annotations

import time
from collections import deque
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


class _Entry(msgspec.Struct, gc=False):
    """``key``'s value, held until ``expires``; one built from others (``deps``) is valid
    while none of them was dropped after ``gen``; ``used``: read since it was stored or
    last spared.
    Never tracked by the garbage collector (a tuple holding a Struct would be, for as
    long as it is held: every collection walked the L1); nothing it holds can refer back
    to it, so it can be in no cycle."""

    key: str
    value: Any
    expires: float
    deps: tuple[str, ...] | None = None
    gen: int = 0
    used: bool = False
    held: bool = True  # False once dropped or replaced (its place in the order is skipped)


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
        self._on = link if max_entries > 0 else None  # None: never holds anything
        self._origin = origin
        self._local_l2 = local_l2
        self.hits = 0
        self.misses = 0
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        # The entries oldest first, and some no longer held (skipped when met). Past the
        # bound the oldest go, but one read since it was stored is spared once (put back
        # at the young end): the "second chance" (CLOCK) approximation of LRU, without a
        # move at each hit (decision 0054).
        self._order: deque[_Entry] = deque()
        self._dead = 0  # entries in the order no longer held
        self._gen = 0  # moves on at every drop
        self._dropped: dict[str, int] = {}  # key -> gen of its last drop (within the horizon)
        self._drops: deque[tuple[float, int, tuple[str, ...]]] = deque()  # (at, gen, keys)
        self._cleared_gen = 0  # the gen of the last clear (link lost)
        self._sweep_at = 0.0  # when the next store looks for expired entries at the old end
        self._sweep_every = min(ttl, _FILL_HORIZON) / 8
        self._batch = max_entries // 64  # evicted beyond the bound, at once, when past it
        if link is not None and max_entries > 0:
            link.follow(self)

    @property
    def enabled(self) -> bool:
        on = self._on
        return on is not None and on.current

    def get(self, key: str) -> Any:
        """The value held for ``key``, or ``MISS``."""
        on = self._on
        if on is None or not on.current:
            return MISS
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return MISS
        if entry.expires < self._clock() or (entry.deps is not None and not self._valid(entry)):
            self._forget(key)
            self.misses += 1
            return MISS
        entry.used = True
        self.hits += 1
        return entry.value

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        """``get`` of each of ``keys``, in order (``MISS`` for each not held): one check of
        the link and one clock read for all of them (a page reads 50 profiles)."""
        on = self._on
        if on is None or not on.current:
            return [MISS] * len(keys)
        now = self._clock()
        get = self._entries.get
        out: list[Any] = []
        hits = 0
        for key in keys:
            entry = get(key)
            if entry is None:
                out.append(MISS)
            elif entry.expires < now or (entry.deps is not None and not self._valid(entry)):
                self._forget(key)
                out.append(MISS)
            else:
                entry.used = True
                out.append(entry.value)
                hits += 1
        self.hits += hits
        self.misses += len(keys) - hits
        return out

    def _valid(self, entry: _Entry) -> bool:
        """Whether none of the deps of an entry built from others was dropped since it was
        last found valid (it is then known valid as of now)."""
        gen = entry.gen
        if gen == self._gen:
            return True
        dropped = self._dropped
        for dep in entry.deps or ():
            was = dropped.get(dep)
            if was is not None and was > gen:
                return False
        entry.gen = self._gen
        return True

    def _forget(self, key: str) -> None:
        self._entries.pop(key).held = False
        self._dead += 1

    def dropped_since(self, gen: int, *, at_most: int = 64) -> list[str] | None:
        """The keys dropped since generation ``gen`` (a ticket's), for a caller holding
        values read since then: None when they cannot be told (more than ``at_most``
        keys, the L1 cleared since, or drops no longer remembered)."""
        if gen < self._cleared_gen:
            return None
        if gen == self._gen:
            return []
        keys: list[str] = []
        was = self._gen + 1
        for _, was, dropped in reversed(self._drops):
            if was <= gen:
                return keys
            keys += dropped
            if len(keys) > at_most:
                return None
        # Every generation after the last clear is a drop's: all of them were met if the
        # oldest drop remembered is the one right after ``gen``.
        return keys if was == gen + 1 else None

    def begin(self) -> tuple[int, float]:
        """A fill's ticket: take it before reading what ``put`` will store."""
        return self._gen, self._clock()

    def put(
        self, key: str, value: Any, ticket: tuple[int, float], deps: Sequence[str] = ()
    ) -> bool:
        """Store ``value`` unless ``key`` (or one of ``deps``, the keys it was built from)
        was invalidated, or the link lost, since ``ticket`` was taken. True when stored."""
        on = self._on
        if on is None or not on.current:
            return False
        gen, began = ticket
        now = self._clock()
        if gen < self._cleared_gen or now - began > _FILL_HORIZON:
            return False
        if gen != self._gen:  # something was dropped since the ticket
            dropped = self._dropped
            was = dropped.get(key)
            if was is not None and was > gen:
                return False
            for dep in deps:
                was = dropped.get(dep)
                if was is not None and was > gen:
                    return False
        if deps:
            # Checked at each read against the drops since: no index to keep. It lives no
            # longer than the drops are remembered (``_FILL_HORIZON`` after its ticket).
            expires = min(now + self._ttl, began + _FILL_HORIZON)
            held = _Entry(key, value, expires, tuple(deps), self._gen)
        else:
            held = _Entry(key, value, now + self._ttl)
        entries = self._entries
        if key in entries:
            self._forget(key)  # the one it replaces
        entries[key] = held
        self._order.append(held)
        if len(entries) > self._max:
            self._evict()
        if now >= self._sweep_at:
            self._sweep(now)
        return True

    def put_many(self, items: Sequence[tuple[str, Any]], ticket: tuple[int, float]) -> int:
        """``put`` of each ``(key, value)`` (none built from others), with the checks made
        once for the batch where they can be: how many were stored. A key already held
        keeps its place, with the new value and ttl, and counts as read (not the first to
        go): a page's users are mostly stored again while held."""
        if not items:
            return 0
        on = self._on
        if on is None or not on.current:
            return 0
        gen, began = ticket
        now = self._clock()
        if gen < self._cleared_gen or now - began > _FILL_HORIZON:
            return 0
        entries = self._entries
        get = entries.get
        append = self._order.append
        expires = now + self._ttl
        dropped = None if gen == self._gen else self._dropped  # None: nothing dropped since
        stored = 0
        for key, value in items:
            if dropped is not None:
                was = dropped.get(key)
                if was is not None and was > gen:
                    continue
            entry = get(key)
            if entry is None:
                entries[key] = entry = _Entry(key, value, expires)
                append(entry)
            else:
                entry.value, entry.expires, entry.deps, entry.used = value, expires, None, True
            stored += 1
        if len(entries) > self._max:
            self._evict()
        if now >= self._sweep_at:
            self._sweep(now)
        return stored

    def _evict(self) -> None:
        """Past the bound: the oldest entries go, a batch at once; one read since it was
        stored or last spared is spared once, at the young end."""
        entries, order = self._entries, self._order
        need = len(entries) - self._max + self._batch
        now = self._clock()
        while need > 0:
            entry = order.popleft()
            if not entry.held:
                self._dead -= 1
            elif entry.used and entry.expires >= now:
                entry.used = False
                order.append(entry)
            else:
                del entries[entry.key]
                need -= 1

    def _sweep(self, now: float) -> None:
        """Expired entries at the old end go, so that what is held follows the live set
        (rate x ttl) and not the bound; every ``ttl / 8`` (at most), at a store. And if
        the order holds more entries no longer held than held, it is rebuilt."""
        self._sweep_at = now + self._sweep_every
        entries, order = self._entries, self._order
        while order:
            entry = order[0]
            if not entry.held:
                self._dead -= 1
            elif entry.expires < now:
                del entries[entry.key]
            else:
                break
            order.popleft()
        if self._dead > len(entries) + 1024:
            self._order = deque(e for e in order if e.held)
            self._dead = 0

    def drop(self, keys: Iterable[str]) -> None:
        """Forget ``keys`` here, and refuse the fills of them already under way (and every
        entry built from them: checked when it is read)."""
        self._gen += 1
        gen, now = self._gen, self._clock()
        keys = tuple(keys)
        dropped, entries = self._dropped, self._entries
        dead = 0
        for key in keys:
            dropped[key] = gen
            entry = entries.pop(key, None)
            if entry is not None:
                entry.held = False
                dead += 1
        self._dead += dead
        drops = self._drops
        drops.append((now, gen, keys))
        horizon = now - _FILL_HORIZON
        while drops[0][0] < horizon:
            _, was, old = drops.popleft()
            for key in old:
                if dropped.get(key) == was:
                    del dropped[key]

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
        self._entries = {}
        self._order = deque()
        self._dead = 0

    async def catch_up(self) -> None:
        """The link hears again: fills begun before now (which may have read a value
        whose invalidation was missed) store nothing; those begun after are heard about."""
        self.lost()

    def __len__(self) -> int:
        return len(self._entries)
