"""The graph's look-aside cache: relationships, list heads, and their invalidation.

Keys: ``r:<a>:<b>`` the edge types from a to b; ``l:<u>:<type>`` the newest edges of a
list (its "head", enough for the first pages); ``p:<u>`` profiles (see profiles.py);
``s:<u>`` suggestions. Writers invalidate after commit; fills are leased.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import msgspec

from socius.domain.graph import INVERSE, EdgeRow, EdgeType
from socius.services.lookaside import LookAside, msgpack_codec
from socius.services.ports import UnitOfWorkFactory
from socius.services.profiles import profile_key

__all__ = ["HEAD_SIZE", "GraphCache", "suggestions_key"]

HEAD_SIZE = 201  # two default pages and the probe row of the second
TTL = 300.0


class _Row(msgspec.Struct, frozen=True, array_like=True):
    dst: int
    pos: int
    created_at: datetime


_encode_types, _decode_types = msgpack_codec(int)
_encode_head, _decode_head = msgpack_codec(list[_Row])


def _mask(types: Iterable[EdgeType]) -> int:
    mask = 0
    for t in types:
        mask |= 1 << int(t)
    return mask


def _types(mask: int) -> frozenset[EdgeType]:
    return frozenset(t for t in EdgeType if mask & (1 << int(t)))


def relationship_key(a: int, b: int) -> str:
    return f"r:{a}:{b}"


def head_key(user_id: int, type_: EdgeType) -> str:
    return f"l:{user_id}:{int(type_)}"


def suggestions_key(user_id: int) -> str:
    return f"s:{user_id}"


class GraphCache:
    def __init__(self, uow: UnitOfWorkFactory, cache: LookAside) -> None:
        self._uow = uow
        self._cache = cache

    async def relationship(self, a: int, b: int) -> frozenset[EdgeType]:
        async def load() -> int:
            async with self._uow(write=False) as uow:
                return _mask(await uow.edges.types_between(a, b))

        mask = await self._cache.get(
            relationship_key(a, b), load, ttl=TTL, encode=_encode_types, decode=_decode_types
        )
        return _types(mask or 0)

    async def relationships(self, a: int, others: Sequence[int]) -> dict[int, frozenset[EdgeType]]:
        async def load(ids: list[int]) -> dict[int, int]:
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

    async def edge_page(
        self, owner: int, type_: EdgeType, *, limit: int, before_pos: int | None
    ) -> list[EdgeRow]:
        """``limit`` rows of a list, newest first, from the cached head when it holds them."""

        async def load() -> list[_Row]:
            async with self._uow(write=False) as uow:
                rows = await uow.edges.range(owner, type_, limit=HEAD_SIZE)
            return [_Row(r.dst, r.pos, r.created_at) for r in rows]

        head = (
            await self._cache.get(
                head_key(owner, type_), load, ttl=TTL, encode=_encode_head, decode=_decode_head
            )
            or []
        )
        rows = [r for r in head if before_pos is None or r.pos < before_pos][:limit]
        if len(rows) == limit or len(head) < HEAD_SIZE:
            return [EdgeRow(r.dst, r.pos, r.created_at) for r in rows]
        async with self._uow(write=False, replica=True) as uow:
            return await uow.edges.range(owner, type_, limit=limit, before_pos=before_pos)

    async def heads(
        self, owners: Sequence[int], type_: EdgeType, *, limit: int
    ) -> dict[int, list[EdgeRow]]:
        """The newest ``limit`` (at most HEAD_SIZE) edges of many lists: one cache
        multi-get, and one query for the lists it did not hold."""

        async def load(ids: list[int]) -> dict[int, list[_Row]]:
            async with self._uow(write=False) as uow:
                found = await uow.edges.range_many(ids, type_, limit=HEAD_SIZE)
            return {
                o: [_Row(r.dst, r.pos, r.created_at) for r in rows] for o, rows in found.items()
            }

        cached = await self._cache.get_many(
            owners,
            load,
            key=lambda o: head_key(o, type_),
            ttl=TTL,
            encode=_encode_head,
            decode=_decode_head,
        )
        return {
            o: [EdgeRow(r.dst, r.pos, r.created_at) for r in (head or [])[:limit]]
            for o, head in zip(owners, cached, strict=True)
        }

    async def pair_changed(self, a: int, b: int, types: set[EdgeType]) -> None:
        keys = [
            relationship_key(a, b),
            relationship_key(b, a),
            profile_key(a),
            profile_key(b),
            suggestions_key(a),
            suggestions_key(b),
        ]
        for t in types:
            keys.append(head_key(a, t))
            inverse = INVERSE[t]
            if inverse is not None:
                keys.append(head_key(b, inverse))
        await self._cache.invalidate(*keys)

    async def user_erased(self, user_id: int, neighbors: set[int]) -> None:
        # Also what presence keeps (see realtime/presence.py): nothing of them stays.
        keys = [
            profile_key(user_id),
            suggestions_key(user_id),
            f"presence:{user_id}",
            f"last_seen:{user_id}",
        ]
        keys += [head_key(user_id, t) for t in EdgeType]
        for n in neighbors:
            keys += [
                profile_key(n),
                suggestions_key(n),
                relationship_key(n, user_id),
                relationship_key(user_id, n),
            ]
            keys += [head_key(n, t) for t in EdgeType]
        await self._cache.invalidate(*keys)
