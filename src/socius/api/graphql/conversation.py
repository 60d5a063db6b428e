"""The Conversation type: its fields, its messages and members, and its connection."""

from __future__ import annotations

from datetime import datetime

import strawberry

from socius.api.graphql.context import loaders, viewer
from socius.api.graphql.pages import MemberConnection, MemberEdge, PageInfo, edges, page_info
from socius.api.graphql.types import Message, member_of, message_of
from socius.domain.conversations import Member as DomainMember
from socius.domain.conversations import not_found
from socius.domain.errors import InvalidInput
from socius.domain.pagination import MAX_INT64, check_limit
from socius.services.messaging import ConversationPage, ConversationView

__all__ = [
    "Conversation",
    "ConversationConnection",
    "ConversationEdge",
    "conversation_connection",
    "conversation_of",
]


def _seq(name: str, value: int | None, low: int) -> int | None:
    """A seq argument, in REST's range (422 ``validation_error`` otherwise)."""
    if value is not None and not low <= value <= MAX_INT64:
        raise InvalidInput(
            f"{name} must be >= {low}", code="validation_error", details={"field": name}
        )
    return value


@strawberry.type(description="A conversation you are in, from your side.")
class Conversation:
    id: strawberry.ID
    kind: str
    title: str | None
    owner_id: strawberry.ID | None
    message_ttl_seconds: int | None
    member_count: int
    member_ids: list[strawberry.ID] | None = strawberry.field(
        description="Direct conversations: both members; null for a group."
    )
    role: str
    last_seq: int
    last_read_seq: int
    unread_count: int
    muted: bool
    last_message: Message | None
    created_at: datetime
    updated_at: datetime

    @strawberry.field(
        description="History, oldest first: the newest `limit` (1-100, default 50) messages, "
        "or those before `beforeSeq`, or after `afterSeq` (as REST's history)."
    )
    async def messages(
        self,
        info: strawberry.Info,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        principal = await viewer(info)
        found = await info.context.container.messaging.history(
            principal.user_id,
            int(self.id),
            before_seq=_seq("beforeSeq", before_seq, 1),
            after_seq=_seq("afterSeq", after_seq, 0),
            limit=limit,
        )
        return [message_of(m) for m in found]

    @strawberry.field(
        description="Members by user id; the first pages of a whole list of "
        "conversations are read together."
    )
    async def members(
        self, info: strawberry.Info, first: int | None = None, after: str | None = None
    ) -> MemberConnection:
        principal = await viewer(info)
        page: tuple[list[DomainMember], str | None] | None
        if after:
            page = await info.context.container.messaging.members(
                principal.user_id, int(self.id), limit=first, cursor=after
            )
        else:
            page = await loaders(info).members.load((int(self.id), check_limit(first)))
        if page is None:  # left the conversation since it was read
            raise not_found()
        found, next_cursor = page
        return MemberConnection(
            edges=edges(
                found, next_cursor, lambda m, cursor: MemberEdge(node=member_of(m), cursor=cursor)
            ),
            page_info=page_info(next_cursor),
        )


def conversation_of(view: ConversationView) -> Conversation:
    c, m = view.conversation, view.member
    return Conversation(
        id=strawberry.ID(str(c.id)),
        kind=c.kind.value,
        title=c.title,
        owner_id=None if c.owner_id is None else strawberry.ID(str(c.owner_id)),
        message_ttl_seconds=c.message_ttl_seconds,
        member_count=c.member_count,
        member_ids=None
        if view.member_ids is None
        else [strawberry.ID(str(u)) for u in view.member_ids],
        role=m.role.value,
        last_seq=c.last_seq,
        last_read_seq=m.last_read_seq,
        unread_count=view.unread_count,
        muted=m.muted,
        last_message=message_of(view.last_message) if view.last_message else None,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


@strawberry.type
class ConversationEdge:
    node: Conversation
    cursor: str | None


@strawberry.type(description="Your conversations, most recently active first.")
class ConversationConnection:
    edges: list[ConversationEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[Conversation]:
        return [e.node for e in self.edges]


def conversation_connection(page: ConversationPage) -> ConversationConnection:
    return ConversationConnection(
        edges=edges(
            page.items,
            page.next_cursor,
            lambda v, cursor: ConversationEdge(node=conversation_of(v), cursor=cursor),
        ),
        page_info=page_info(page.next_cursor),
    )
