"""People you may know: friends of friends, ranked by Adamic-Adar.

A mutual friend ``f`` adds ``1 / log(deg(f))`` to a candidate's score, so a mutual friend
with a huge friend list counts less. Fan-out is bounded: the newest ``FANOUT`` friends of
the viewer and the newest ``FANOUT`` friends of each, so a user with thousands of friends
costs the same as one with a hundred. The database counts and ranks (two queries: the
viewer's friends with their degrees, then up to FANOUT x FANOUT rows aggregated where
they are, never shipped to Python). The best ``KEEP * 2`` are then checked against the
viewer's own edges, ``KEEP`` stay. Results are cached per viewer and invalidated by any
change to the viewer's edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

from socius.domain.graph import EdgeType
from socius.services.graph_cache import suggestions_key
from socius.services.lookaside import LookAside, msgpack_codec
from socius.services.ports import UnitOfWorkFactory
from socius.services.profiles import Profile, ProfileService

__all__ = ["FANOUT", "Suggestion", "SuggestionService"]

FANOUT = 100
KEEP = 100
TTL = 300.0
_EXCLUDED = frozenset(
    {
        EdgeType.FRIEND,
        EdgeType.REQUEST_IN,
        EdgeType.REQUEST_OUT,
        EdgeType.BLOCKS,
        EdgeType.BLOCKED_BY,
    }
)


class _Candidate(msgspec.Struct, frozen=True, array_like=True):
    user_id: int
    mutual: int
    score: float


_encode, _decode = msgpack_codec(list[_Candidate])


@dataclass(frozen=True, slots=True)
class Suggestion:
    profile: Profile
    mutual_count: int
    score: float


class SuggestionService:
    def __init__(self, uow: UnitOfWorkFactory, profiles: ProfileService, cache: LookAside) -> None:
        self._uow = uow
        self._profiles = profiles
        self._cache = cache

    async def suggest(self, viewer: int, *, limit: int) -> list[Suggestion]:
        async def compute() -> list[_Candidate]:
            return await self._compute(viewer)

        candidates = (
            await self._cache.get(
                suggestions_key(viewer), compute, ttl=TTL, encode=_encode, decode=_decode
            )
            or []
        )
        top = candidates[:limit]
        profiles = await self._profiles.get_many([c.user_id for c in top])
        return [
            Suggestion(profiles[c.user_id], c.mutual, round(c.score, 6))
            for c in top
            if c.user_id in profiles
        ]

    async def _compute(self, viewer: int) -> list[_Candidate]:
        async with self._uow(write=False, replica=True) as uow:
            friends = await uow.edges.newest_with_degree(viewer, EdgeType.FRIEND, limit=FANOUT)
            # A friend who is not active counts as one of degree 2.
            weights = [(f, 1.0 / math.log(max(d if d is not None else 2, 2))) for f, d in friends]
            found = await uow.edges.second_degree(
                viewer,
                EdgeType.FRIEND,
                weights,
                fanout=FANOUT,
                exclude=_EXCLUDED,
                rank_limit=KEEP * 2,
                limit=KEEP,
            )
        return [_Candidate(u, mutual, score) for u, mutual, score in found]
