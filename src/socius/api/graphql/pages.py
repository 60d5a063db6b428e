"""Relay-style connections over the REST lists: the same services, cursors and limits.

``first`` is REST's ``limit`` (1-100, default 50; anything else is ``invalid_limit``) and
``after`` its ``cursor``; ``pageInfo.endCursor`` is REST's ``next_cursor``, null on the
last page. socius's cursors are page positions, so the last edge of a page carries the
cursor (equal to ``endCursor``) and the others none; pages only go forward
(docs/decisions/0014-graphql.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

import strawberry

from socius.api.graphql.types import (
    Member,
    Notification,
    User,
    user_of,
)
from socius.services.graph import EdgePage
from socius.services.profiles import Profile

__all__ = [
    "MemberConnection",
    "MemberEdge",
    "NotificationConnection",
    "NotificationEdge",
    "PageInfo",
    "UserConnection",
    "UserEdge",
    "UserSearchConnection",
    "UserSearchEdge",
    "edges",
    "page_info",
    "user_connection",
    "user_search_connection",
]

S = TypeVar("S")
E = TypeVar("E")


@strawberry.type(
    description="Where a page ends. Pages go forward only: pass `endCursor` as `after`."
)
class PageInfo:
    has_next_page: bool
    end_cursor: str | None
    has_previous_page: bool = False
    start_cursor: str | None = None


def page_info(next_cursor: str | None) -> PageInfo:
    return PageInfo(has_next_page=next_cursor is not None, end_cursor=next_cursor)


def edges(
    items: Sequence[S], next_cursor: str | None, make: Callable[[S, str | None], E]
) -> list[E]:
    """One edge per item; the last one carries ``next_cursor``."""
    last = len(items) - 1
    return [make(item, next_cursor if k == last else None) for k, item in enumerate(items)]


@strawberry.type(description="A user in one of the graph's lists, and since when.")
class UserEdge:
    node: User
    since: datetime
    cursor: str | None


@strawberry.type(description="A page of a graph list (friends, followers, ...), newest first.")
class UserConnection:
    edges: list[UserEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[User]:
        return [e.node for e in self.edges]


def user_connection(page: EdgePage) -> UserConnection:
    return UserConnection(
        edges=edges(
            page.items,
            page.next_cursor,
            lambda listed, cursor: UserEdge(
                node=user_of(listed.profile), since=listed.since, cursor=cursor
            ),
        ),
        page_info=page_info(page.next_cursor),
    )


@strawberry.type
class UserSearchEdge:
    node: User
    cursor: str | None


@strawberry.type(description="A page of search results, best first.")
class UserSearchConnection:
    edges: list[UserSearchEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[User]:
        return [e.node for e in self.edges]


def user_search_connection(
    items: Sequence[Profile], next_cursor: str | None
) -> UserSearchConnection:
    return UserSearchConnection(
        edges=edges(
            items, next_cursor, lambda p, cursor: UserSearchEdge(node=user_of(p), cursor=cursor)
        ),
        page_info=page_info(next_cursor),
    )


@strawberry.type
class MemberEdge:
    node: Member
    cursor: str | None


@strawberry.type(description="Members of a conversation, by user id.")
class MemberConnection:
    edges: list[MemberEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[Member]:
        return [e.node for e in self.edges]


@strawberry.type
class NotificationEdge:
    node: Notification
    cursor: str | None


@strawberry.type(description="Your notification inbox, newest first.")
class NotificationConnection:
    edges: list[NotificationEdge]
    page_info: PageInfo
    unread_count: int

    @strawberry.field
    def nodes(self) -> list[Notification]:
        return [e.node for e in self.edges]
