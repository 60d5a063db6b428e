"""The Query root: each field makes the one service call its REST route makes."""

from __future__ import annotations

import strawberry

from socius.api.graphql import inputs
from socius.api.graphql.context import GraphContext, viewer
from socius.api.graphql.conversation import (
    Conversation,
    ConversationConnection,
    conversation_connection,
    conversation_of,
)
from socius.api.graphql.pages import (
    NotificationConnection,
    NotificationEdge,
    UserConnection,
    UserSearchConnection,
    edges,
    page_info,
    user_connection,
    user_search_connection,
)
from socius.api.graphql.types import (
    Me,
    Presence,
    Relationship,
    Suggestion,
    User,
    me_of,
    notification_of,
    relationship_of,
    user_of,
)
from socius.domain.errors import InvalidInput, Unavailable
from socius.domain.graph import EdgeType
from socius.services.auth import Principal
from socius.services.graph import EdgePage

__all__ = ["Query"]

_SEARCH_MAX = 64  # as REST's ``q``


def _context(info: strawberry.Info) -> GraphContext:
    context: GraphContext = info.context
    return context


async def _edge_list(
    info: strawberry.Info,
    principal: Principal,
    user_id: strawberry.ID | None,
    type_: EdgeType,
    first: int | None,
    after: str | None,
) -> EdgePage:
    graph = _context(info).container.graph
    if user_id is None:
        return await graph.list_own(principal.user_id, type_, limit=first, cursor=after)
    return await graph.list_edges(
        principal.user_id, inputs.user_id(user_id), type_, limit=first, cursor=after
    )


_LIST = (
    "Without `userId`: yours. Another user's is hidden from non-friends when they are "
    "private (`private_account`) and across a block (`user_not_found`); users blocked "
    "either way with you are left out of it."
)


@strawberry.type
class Query:
    @strawberry.field(description="Your own account.")
    async def me(self, info: strawberry.Info) -> Me:
        principal = await viewer(info)
        account = await _context(info).container.accounts.me(principal)
        return me_of(account.user, account.profile)

    @strawberry.field(
        description="A public profile, by `id` or `username` (one of them); "
        "`user_not_found` for an unknown user and across a block either way."
    )
    async def user(
        self,
        info: strawberry.Info,
        id: strawberry.ID | None = None,
        username: str | None = None,
    ) -> User:
        principal = await viewer(info)
        container = _context(info).container
        if (id is None) == (username is None):
            raise InvalidInput(
                "give either id or username", code="validation_error", details={"field": "id"}
            )
        if id is not None:
            uid = inputs.user_id(id)
        else:
            assert username is not None
            uid = (await container.profiles.by_username(username)).id
        return user_of(await container.graph.visible_profile(principal.user_id, uid))

    @strawberry.field(
        description="Users whose username or display name matches `search`, best first; "
        "never one blocked either way with you."
    )
    async def users(
        self,
        info: strawberry.Info,
        search: str,
        first: int | None = None,
        after: str | None = None,
    ) -> UserSearchConnection:
        principal = await viewer(info)
        if len(search) > _SEARCH_MAX:
            raise InvalidInput(
                f"search is at most {_SEARCH_MAX} characters",
                code="validation_error",
                details={"field": "search"},
            )
        page = await _context(info).container.profiles.search(
            principal.user_id, search, limit=first, cursor=after
        )
        return user_search_connection(page.items, page.next_cursor)

    @strawberry.field(description="Friends, newest first. " + _LIST)
    async def friends(
        self,
        info: strawberry.Info,
        user_id: strawberry.ID | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> UserConnection:
        principal = await viewer(info)
        page = await _edge_list(info, principal, user_id, EdgeType.FRIEND, first, after)
        return user_connection(page)

    @strawberry.field(description="Followers, newest first. " + _LIST)
    async def followers(
        self,
        info: strawberry.Info,
        user_id: strawberry.ID | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> UserConnection:
        principal = await viewer(info)
        page = await _edge_list(info, principal, user_id, EdgeType.FOLLOWED_BY, first, after)
        return user_connection(page)

    @strawberry.field(description="Whom a user follows, newest first. " + _LIST)
    async def following(
        self,
        info: strawberry.Info,
        user_id: strawberry.ID | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> UserConnection:
        principal = await viewer(info)
        page = await _edge_list(info, principal, user_id, EdgeType.FOLLOWS, first, after)
        return user_connection(page)

    @strawberry.field(description="Friends you share with a user (hidden as their lists are).")
    async def mutual_friends(
        self,
        info: strawberry.Info,
        user_id: strawberry.ID,
        first: int | None = None,
        after: str | None = None,
    ) -> UserConnection:
        principal = await viewer(info)
        page = await _context(info).container.graph.mutual_friends(
            principal.user_id, inputs.user_id(user_id), limit=first, cursor=after
        )
        return user_connection(page)

    @strawberry.field(
        description="Pending friend requests, newest first: those you received, or "
        "(`outgoing: true`) those you sent."
    )
    async def friend_requests(
        self,
        info: strawberry.Info,
        outgoing: bool = False,
        first: int | None = None,
        after: str | None = None,
    ) -> UserConnection:
        principal = await viewer(info)
        type_ = EdgeType.REQUEST_OUT if outgoing else EdgeType.REQUEST_IN
        page = await _context(info).container.graph.list_own(
            principal.user_id, type_, limit=first, cursor=after
        )
        return user_connection(page)

    @strawberry.field(
        description="People you may know (friends of friends ranked by mutual friends); "
        "`first` 1-100, default 20."
    )
    async def suggestions(self, info: strawberry.Info, first: int = 20) -> list[Suggestion]:
        principal = await viewer(info)
        if not 1 <= first <= 100:
            raise InvalidInput(
                "first must be 1..100", code="invalid_limit", details={"field": "first"}
            )
        found = await _context(info).container.suggestions.suggest(principal.user_id, limit=first)
        return [
            Suggestion(user=user_of(s.profile), mutual_count=s.mutual_count, score=s.score)
            for s in found
        ]

    @strawberry.field(description="What up to 100 users are to you (`too_many_ids` past that).")
    async def relationships(
        self, info: strawberry.Info, ids: list[strawberry.ID]
    ) -> list[Relationship]:
        principal = await viewer(info)
        found = await _context(info).container.graph.relationships(
            principal.user_id, inputs.id_list(ids)
        )
        return [relationship_of(r) for r in found]

    @strawberry.field(description="Your conversations, most recently active first.")
    async def conversations(
        self, info: strawberry.Info, first: int | None = None, after: str | None = None
    ) -> ConversationConnection:
        principal = await viewer(info)
        page = await _context(info).container.messaging.list_for(
            principal.user_id, limit=first, cursor=after
        )
        return conversation_connection(page)

    @strawberry.field(
        description="A conversation you are in (`conversation_not_found` for any other)."
    )
    async def conversation(self, info: strawberry.Info, id: strawberry.ID) -> Conversation:
        principal = await viewer(info)
        view = await _context(info).container.messaging.get(
            principal.user_id, inputs.conversation_id(id)
        )
        return conversation_of(view)

    @strawberry.field(description="Your notification inbox, newest first.")
    async def notifications(
        self, info: strawberry.Info, first: int | None = None, after: str | None = None
    ) -> NotificationConnection:
        principal = await viewer(info)
        page = await _context(info).container.inbox.notifications(
            principal.user_id, limit=first, cursor=after
        )
        return NotificationConnection(
            edges=edges(
                page.items,
                page.next_cursor,
                lambda n, cursor: NotificationEdge(node=notification_of(n), cursor=cursor),
            ),
            page_info=page_info(page.next_cursor),
            unread_count=page.unread_count,
        )

    @strawberry.field(
        description="Whether these (up to 100) users are online: only your friends are "
        "reported, the other ids are left out. Everyone reads as offline when the "
        "presence store is unreachable."
    )
    async def presence(self, info: strawberry.Info, ids: list[strawberry.ID]) -> list[Presence]:
        principal = await viewer(info)
        realtime = _context(info).container.realtime
        if realtime is None:
            raise Unavailable("presence is not configured")
        found = await realtime.presence.lookup(principal.user_id, inputs.id_list(ids))
        return [
            Presence(
                user_id=strawberry.ID(str(p.user_id)), online=p.online, last_seen_at=p.last_seen_at
            )
            for p in found
        ]
