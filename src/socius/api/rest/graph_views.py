"""How the graph looks on the wire."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec

from socius.api.fast import fast_write
from socius.api.rest.bodies import encode
from socius.api.rest.params import user_id_or_404
from socius.api.rest.views import PublicUserOut, public_user_out
from socius.domain.graph import Relationship
from socius.services.auth import Principal
from socius.services.container import Container
from socius.services.graph import EdgePage, GraphService
from socius.services.suggestions import Suggestion

__all__ = [
    "ListedUserOut",
    "RelationshipOut",
    "RelationshipsOut",
    "SuggestionOut",
    "SuggestionsOut",
    "UserListOut",
    "change_relationship",
    "fast_change",
    "relationship_out",
    "user_list_out",
]


class RelationshipOut(msgspec.Struct, kw_only=True):
    """What a user is to the caller, from the caller's side."""

    user_id: str
    friend: bool
    request_sent: bool
    request_received: bool
    following: bool
    followed_by: bool
    follow_requested: bool
    blocking: bool
    blocked_by: bool
    muting: bool


class RelationshipsOut(msgspec.Struct, kw_only=True):
    items: list[RelationshipOut]


class ListedUserOut(PublicUserOut, kw_only=True):
    """A user in a list, and since when they are in it."""

    since: datetime


class UserListOut(msgspec.Struct, kw_only=True):
    items: list[ListedUserOut]
    next_cursor: str | None


class SuggestionOut(msgspec.Struct, kw_only=True):
    user: PublicUserOut
    mutual_count: int
    score: float


class SuggestionsOut(msgspec.Struct, kw_only=True):
    items: list[SuggestionOut]


def relationship_out(rel: Relationship) -> RelationshipOut:
    return RelationshipOut(
        user_id=str(rel.user_id),
        friend=rel.friend,
        request_sent=rel.request_sent,
        request_received=rel.request_received,
        following=rel.following,
        followed_by=rel.followed_by,
        follow_requested=rel.follow_requested,
        blocking=rel.blocking,
        blocked_by=rel.blocked_by,
        muting=rel.muting,
    )


Change = Callable[[GraphService, int, int], Awaitable[Relationship]]
"""A graph write of the caller on another user (``GraphService.follow``...)."""


async def change_relationship(
    container: Container, principal: Principal, user_id: str, change: Change
) -> RelationshipOut:
    """The caller's `change` on the user of `user_id` (a path parameter), as answered."""
    rel = await change(container.graph, principal.user_id, user_id_or_404(user_id))
    return relationship_out(rel)


def fast_change(change: Change) -> dict[str, Any]:
    """The ``opt`` of a ``/.../{user_id}/...`` graph write the front answers itself
    (api/fast.py ``fast_write``): the same `change_relationship` as the handler's."""

    async def write(
        container: Container, principal: Principal, params: tuple[str, ...], _body: bytes
    ) -> bytes:
        return encode(await change_relationship(container, principal, params[0], change))

    return fast_write(write)


def user_list_out(page: EdgePage) -> UserListOut:
    items = [
        ListedUserOut(
            id=str(p.id),
            username=p.username,
            display_name=p.display_name,
            bio=p.bio,
            avatar_url=p.avatar_url,
            is_private=p.is_private,
            friends_count=p.friends_count,
            followers_count=p.followers_count,
            following_count=p.following_count,
            created_at=p.created_at,
            since=listed.since,
        )
        for listed in page.items
        for p in (listed.profile,)
    ]
    return UserListOut(items=items, next_cursor=page.next_cursor)


def suggestion_out(s: Suggestion) -> SuggestionOut:
    return SuggestionOut(
        user=public_user_out(s.profile), mutual_count=s.mutual_count, score=s.score
    )
