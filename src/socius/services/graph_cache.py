"""The graph's look-aside cache: relationships, list heads, and their invalidation.

Keys: ``r:<a>:<b>`` the edge types from a to b; ``l:<u>:<type>`` the newest edges of a
list (its "head": the rows the first read of its first page asked for, at least a default
page, and whether that is the whole list); ``x:<u>`` whom u blocks or is blocked by (the
block checks of every read u makes: one key, changed only by a block, an unblock or an
erasure); ``e:<u>`` u's relationships with everyone it has an edge to (a map of
edge-type masks, up to ``EDGES_HELD`` edges; in L1 only: decision 0032); ``p:<u>`` profiles (see
profiles.py); ``s:<u>`` suggestions. Writers invalidate after commit; fills are leased.
Misses are read on the driver
(``HotReads``) when it has the database, else in a read-only unit of work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import msgspec

from socius.domain.graph import INVERSE, EdgeRow, EdgeType
from socius.services.lookaside import LookAside, Lookup, msgpack_codec
from socius.services.ports import HotReads, UnitOfWorkFactory
from socius.services.profiles import COUNTED, ProfileService, profile_key

__all__ = [
    "BLOCKED_HELD",
    "EDGES_HELD",
    "HEAD_SIZE",
    "GraphCache",
    "blocked_key",
    "edges_key",
    "suggestions_key",
]

HEAD_SIZE = 201  # the longest head heads() is meant for: two default pages and a probe row
PAGE_HEAD = 51  # a miss on a first page reads at least a default page and its probe row
TTL = 300.0
BLOCKED_HELD = 1000  # a user blocked either way with more: checked pair by pair instead
EDGES_HELD = 1000  # a user with more edges: relationships read pair by pair instead
_BLOCKING = frozenset({EdgeType.BLOCKS, EdgeType.BLOCKED_BY})
_COUNTED = frozenset(COUNTED)
assert all(INVERSE[t] in _COUNTED for t in _COUNTED)  # b's counts change with a's


class _Head(msgspec.Struct, frozen=True, array_like=True):
    """The newest rows of a list; ``complete``: they are the whole list. (Each row
    ``[dst, pos, created_at]``: an ``EdgeRow`` is array-like, and held rows are handed out
    as they are, not copied: decision 0039.)"""

    rows: list[EdgeRow]
    complete: bool


def _head(rows: Sequence[EdgeRow], asked: int) -> _Head:
    return _Head(list(rows), complete=len(rows) < asked)


class _Blocked(msgspec.Struct, frozen=True, array_like=True):
    """Whom a user blocks or is blocked by; ``complete``: all of them (else too many to
    hold, and the checks go pair by pair)."""

    ids: frozenset[int]
    complete: bool


class _Edges(msgspec.Struct, frozen=True, array_like=True):
    """A user's edges: the mask of edge types to each user it has any to; ``complete``:
    all of them (else too many to hold, and relationships are read pair by pair)."""

    masks: dict[int, int]
    complete: bool


_encode_types, _decode_types = msgpack_codec(int)
_encode_head, _decode_head = msgpack_codec(_Head)
_encode_blocked, _decode_blocked = msgpack_codec(_Blocked)


def _mask(types: Iterable[EdgeType]) -> int:
    mask = 0
    for t in types:
        mask |= 1 << int(t)
    return mask


_TYPES: dict[int, frozenset[EdgeType]] = {}


def _types(mask: int) -> frozenset[EdgeType]:
    """The edge types of ``mask`` (read on every relationship check: kept per mask)."""
    found = _TYPES.get(mask)
    if found is None:
        found = frozenset(t for t in EdgeType if mask & (1 << int(t)))
        if len(_TYPES) < 4096:  # masks of the few types there are: never near this
            _TYPES[mask] = found
    return found


def relationship_key(a: int, b: int) -> str:
    return f"r:{a}:{b}"


def head_key(user_id: int, type_: EdgeType) -> str:
    return f"l:{user_id}:{int(type_)}"


def suggestions_key(user_id: int) -> str:
    return f"s:{user_id}"


def blocked_key(user_id: int) -> str:
    return f"x:{user_id}"


def edges_key(user_id: int) -> str:
    return f"e:{user_id}"


class GraphCache:
    def __init__(
        self, uow: UnitOfWorkFactory, cache: LookAside, *, reads: HotReads | None = None
    ) -> None:
        """``reads``: the driver's reads, for the misses (None or unavailable: units of
        work)."""
        self._uow = uow
        self._cache = cache
        self._reads = reads if reads is not None and reads.available else None

    async def _range(self, owner: int, type_: EdgeType, limit: int) -> list[EdgeRow]:
        """The newest ``limit`` rows of a list, from the primary (what a fill stores)."""
        if self._reads is not None:
            return await self._reads.edge_range(owner, type_, limit=limit)
        async with self._uow(write=False) as uow:
            return await uow.edges.range(owner, type_, limit=limit)

    @property
    def remembers(self) -> bool:
        """Whether values read now stay in this node's L1 for the request's next reads."""
        return self._cache.remembers

    async def get_each(
        self,
        lookups: Sequence[Lookup[Any]],
        together: Callable[[list[int]], Awaitable[list[Any]]] | None = None,
    ) -> list[Any]:
        """``LookAside.get_each``: keys of several kinds in one cache round trip."""
        return await self._cache.get_each(lookups, together)

    def blocked_lookup(self, user_id: int) -> Lookup[_Blocked]:
        """What ``blocked`` reads."""

        async def load() -> _Blocked:
            if self._reads is not None:
                ids = await self._reads.blocked(user_id, limit=BLOCKED_HELD + 1)
            else:
                async with self._uow(write=False) as uow:
                    ids = [
                        r.dst
                        for t in _BLOCKING
                        for r in await uow.edges.range(user_id, t, limit=BLOCKED_HELD + 1)
                    ]
            return _Blocked(frozenset(ids[:BLOCKED_HELD]), complete=len(ids) <= BLOCKED_HELD)

        return Lookup(blocked_key(user_id), load, TTL, _encode_blocked, _decode_blocked)

    async def blocked(self, user_id: int) -> frozenset[int] | None:
        """Whom ``user_id`` blocks or is blocked by; None when there are too many to hold
        (ask ``relationships`` then)."""
        lookup = self.blocked_lookup(user_id)
        held = await self._cache.get(
            lookup.key, lookup.load, ttl=TTL, encode=lookup.encode, decode=lookup.decode
        )
        return held.ids if held is not None and held.complete else None

    async def _edge_masks(self, a: int) -> dict[int, int] | None:
        """``a``'s edge-type mask to every user it has an edge to (one cached key for all
        of ``a``'s relationship checks); None when ``a`` has too many edges to hold."""

        async def load() -> _Edges:
            if self._reads is not None:
                found = await self._reads.edge_types_of(a, limit=EDGES_HELD + 1)
            else:
                async with self._uow(write=False) as uow:
                    found = await uow.edges.edge_types_of(a, limit=EDGES_HELD + 1)
            if len(found) > EDGES_HELD:
                return _Edges({}, complete=False)
            masks: dict[int, int] = {}
            for dst, type_ in found:
                masks[dst] = masks.get(dst, 0) | (1 << type_)
            return _Edges(masks, complete=True)

        # In L1 only: every edge change of ``a`` (its follows, friend requests...) drops
        # it, so in W1 a copy in Redis was seldom read before being dropped, and its
        # lease and fill cost two round trips per miss (decision 0032).
        held = await self._cache.get_local(edges_key(a), load)
        return held.masks if held is not None and held.complete else None

    async def relationship(self, a: int, b: int) -> frozenset[EdgeType]:
        masks = await self._edge_masks(a)
        if masks is not None:
            return _types(masks.get(b, 0))

        async def load() -> int:
            if self._reads is not None:
                return _mask((await self._reads.edge_types(a, [b]))[b])
            async with self._uow(write=False) as uow:
                return _mask(await uow.edges.types_between(a, b))

        mask = await self._cache.get(
            relationship_key(a, b), load, ttl=TTL, encode=_encode_types, decode=_decode_types
        )
        return _types(mask or 0)

    async def relationships(self, a: int, others: Sequence[int]) -> dict[int, frozenset[EdgeType]]:
        held = await self._edge_masks(a)
        if held is not None:
            return {b: _types(held.get(b, 0)) for b in others}

        async def load(ids: list[int]) -> dict[int, int]:
            if self._reads is not None:
                found = await self._reads.edge_types(a, ids)
            else:
                async with self._uow(write=False) as uow:
                    found = await uow.edges.types_between_many(a, ids)
            return {b: _mask(t) for b, t in found.items()}

        masks = await self._cache.get_many(
            others,
            load,
            key=lambda b: relationship_key(a, b),
            ttl=TTL,
            encode=_encode_types,
            decode=_decode_types,
        )
        return {b: _types(m or 0) for b, m in zip(others, masks, strict=True)}

    def head_lookup(
        self, owner: int, type_: EdgeType, limit: int, *, users: ProfileService | None = None
    ) -> Lookup[_Head]:
        """What ``edge_page`` reads for a first page of ``limit`` rows. ``users``: a miss
        reads the head's users with it, in the same statement, into their L1 (the page
        shown next needs them: decision 0032)."""
        size = max(limit, PAGE_HEAD)

        async def load() -> _Head:  # a fill reads the primary: a replica may lag
            if users is None or self._reads is None:
                return _head(await self._range(owner, type_, size), size)
            ticket = users.ticket()
            found = await self._reads.edge_range_with_users(owner, type_, limit=size, types=COUNTED)
            users.remember([(edge.dst, user) for edge, user in found], ticket)
            return _head([edge for edge, _ in found], size)

        return Lookup(head_key(owner, type_), load, TTL, _encode_head, _decode_head)

    def first_read(
        self,
        viewer: int,
        owner: int,
        head: tuple[EdgeType, int] | None,
        *,
        users: ProfileService,
    ) -> tuple[list[Lookup[Any]], Callable[[list[int]], Awaitable[list[Any]]] | None]:
        """What a read of ``owner``'s list by ``viewer`` reads first, for a ``get_each``:
        the viewer's blocks, the owner's profile and, with ``head`` (the type and the
        limit of a first page), the list's head (with its users, as ``head_lookup``); and
        the load of two or more of them in one statement on the driver (decision 0059;
        None without the driver: each its own load)."""
        lookups: list[Lookup[Any]] = [self.blocked_lookup(viewer), users.lookup(owner)]
        if head is not None:
            lookups.append(self.head_lookup(owner, head[0], head[1], users=users))
        reads = self._reads
        if reads is None:
            return lookups, None

        async def together(which: list[int]) -> list[Any]:
            size = max(head[1], PAGE_HEAD) if head is not None else 0
            ticket = users.ticket()
            blocked, row, found = await reads.first_read(
                owner=owner,
                blocks_of=viewer if 0 in which else None,
                blocks_limit=BLOCKED_HELD + 1,
                profile=1 in which,
                page=(head[0], size) if head is not None and 2 in which else None,
                types=COUNTED,
            )
            values: dict[int, Any] = {
                0: _Blocked(frozenset(blocked[:BLOCKED_HELD]), len(blocked) <= BLOCKED_HELD),
                1: users.from_row(row),
            }
            if 2 in which:
                users.remember([(edge.dst, user) for edge, user in found], ticket)
                values[2] = _head([edge for edge, _ in found], size)
            return [values[i] for i in which]

        return lookups, together

    async def edge_page(
        self,
        owner: int,
        type_: EdgeType,
        *,
        limit: int,
        before_pos: int | None,
        users: ProfileService | None = None,
    ) -> list[EdgeRow]:
        """``limit`` rows of a list, newest first, from the cached head when it holds them.

        A miss on a first page reads that page only (at least ``PAGE_HEAD`` rows, with
        their ``users``' profiles when given) and caches it as the list's head; a later
        page is served from the head when it lies inside it, otherwise read from the
        database without touching the cache."""
        key = head_key(owner, type_)
        if before_pos is None:
            lookup = self.head_lookup(owner, type_, limit, users=users)
            head = await self._cache.get(
                key, lookup.load, ttl=TTL, encode=_encode_head, decode=_decode_head
            )
            if head is not None and (head.complete or len(head.rows) >= limit):
                return head.rows[:limit]
        else:
            head = await self._cache.peek(key, decode=_decode_head)
            if head is not None:
                rows = [r for r in head.rows if r.pos < before_pos][:limit]
                if len(rows) == limit or head.complete:
                    return rows
        async with self._uow(write=False, replica=True) as uow:
            return await uow.edges.range(owner, type_, limit=limit, before_pos=before_pos)

    async def mutual(
        self,
        a: int,
        b: int,
        type_: EdgeType,
        *,
        limit: int,
        before_pos: int | None,
        users: ProfileService | None = None,
    ) -> list[EdgeRow]:
        """Users both ``a`` and ``b`` have an edge of ``type_`` to, by ``a``'s order (not
        cached: read on the driver, or from a replica); with ``users``, their profiles
        read in the same statement into L1 (decision 0032)."""
        if self._reads is not None:
            if users is None:
                return await self._reads.mutual(a, b, type_, limit=limit, before_pos=before_pos)
            ticket = users.ticket()
            found = await self._reads.mutual_with_users(
                a, b, type_, limit=limit, before_pos=before_pos, types=COUNTED
            )
            users.remember([(edge.dst, user) for edge, user in found], ticket)
            return [edge for edge, _ in found]
        async with self._uow(write=False, replica=True) as uow:
            return await uow.edges.mutual(a, b, type_, limit=limit, before_pos=before_pos)

    async def heads(
        self, owners: Sequence[int], type_: EdgeType, *, limit: int
    ) -> dict[int, list[EdgeRow]]:
        """The newest ``limit`` edges of many lists: one cache multi-get, and one query
        for the lists it did not hold (or held too short a head of)."""

        async def load(ids: list[int]) -> dict[int, _Head]:
            async with self._uow(write=False) as uow:
                found = await uow.edges.range_many(ids, type_, limit=limit)
            return {o: _head(rows, limit) for o, rows in found.items()}

        cached = await self._cache.get_many(
            owners,
            load,
            key=lambda o: head_key(o, type_),
            ttl=TTL,
            encode=_encode_head,
            decode=_decode_head,
        )
        out: dict[int, list[EdgeRow]] = {}
        short: list[int] = []
        for o, head in zip(owners, cached, strict=True):
            if head is not None and (head.complete or len(head.rows) >= limit):
                out[o] = head.rows[:limit]
            else:
                short.append(o)
        if short:
            async with self._uow(write=False, replica=True) as uow:
                out.update(await uow.edges.range_many(short, type_, limit=limit))
        return out

    async def pair_changed(
        self, a: int, b: int, types: set[EdgeType], *, then: Sequence[tuple[str, bytes]] = ()
    ) -> bool:
        """After a write of the pair: its keys invalidated everywhere, then ``then`` (the
        write's events) published, in one round trip where the bus allows (decision
        0040); False when ``then`` could not be published."""
        keys = [
            relationship_key(a, b),
            relationship_key(b, a),
            suggestions_key(a),
            suggestions_key(b),
        ]
        # A profile shows its counts of COUNTED edges only (a counted type's inverse is
        # counted too): a friend request, a follow request, a mute or an unblock leaves
        # both profiles as they were, and every page or body listing either of them kept
        # (decision 0039).
        if not _COUNTED.isdisjoint(types):
            keys += [profile_key(a), profile_key(b)]
        if not _BLOCKING.isdisjoint(types):
            keys += [blocked_key(a), blocked_key(b)]
        for t in types:
            keys.append(head_key(a, t))
            inverse = INVERSE[t]
            if inverse is not None:
                keys.append(head_key(b, inverse))
        return await self._cache.invalidate(
            *keys, near_only=[edges_key(a), edges_key(b)], then=then
        )

    async def user_erased(self, user_id: int, neighbors: set[int]) -> None:
        # Also what presence keeps (see realtime/presence.py): nothing of them stays.
        keys = [
            profile_key(user_id),
            suggestions_key(user_id),
            blocked_key(user_id),
            f"presence:{user_id}",
            f"last_seen:{user_id}",
        ]
        keys += [head_key(user_id, t) for t in EdgeType]
        for n in neighbors:
            keys += [
                profile_key(n),
                suggestions_key(n),
                blocked_key(n),
                relationship_key(n, user_id),
                relationship_key(user_id, n),
            ]
            keys += [head_key(n, t) for t in EdgeType]
        local = [edges_key(u) for u in (user_id, *neighbors)]
        await self._cache.invalidate(*keys, near_only=local)
