"""People you may know: friends of friends, ranked by Adamic-Adar.

A mutual friend ``f`` adds ``1 / log(deg(f))`` to a candidate's score, so a mutual friend
with a huge friend list counts less. Fan-out is bounded: the newest ``FANOUT`` friends of
the viewer and the newest ``FANOUT`` friends of each (read from the cached list heads),
so a user with thousands of friends costs the same as one with a hundred. Results are
cached per viewer and invalidated by any change to the viewer's edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

from socius.domain.graph import EdgeType
from socius.services.graph_cache import GraphCache, suggestions_key
from socius.services.lookaside import LookAside, msgpack_codec
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
    def __init__(self, graph: GraphCache, profiles: ProfileService, cache: LookAside) -> None:
        self._graph = graph
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
        friends = await self._graph.edge_page(
            viewer, EdgeType.FRIEND, limit=FANOUT, before_pos=None
        )
        friend_ids = [f.dst for f in friends]
        friend_profiles = await self._profiles.get_many(friend_ids)
        degrees = {p.id: p.friends_count for p in friend_profiles.values()}
        known = {viewer, *friend_ids}
        mutual: dict[int, int] = {}
        score: dict[int, float] = {}
        # Their friend lists in one cache multi-get (and one query for the misses).
        their_friends = await self._graph.heads(friend_ids, EdgeType.FRIEND, limit=FANOUT)
        for f in friend_ids:
            weight = 1.0 / math.log(max(degrees.get(f, 2), 2))
            for row in their_friends[f]:
                if row.dst in known:
                    continue
                mutual[row.dst] = mutual.get(row.dst, 0) + 1
                score[row.dst] = score.get(row.dst, 0.0) + weight
        ranked = sorted(score, key=lambda u: (-score[u], -mutual[u], u))[: KEEP * 2]
        relations = await self._graph.relationships(viewer, ranked)
        allowed = [u for u in ranked if not relations[u] & _EXCLUDED]
        return [_Candidate(u, mutual[u], score[u]) for u in allowed[:KEEP]]
