"""The Mutation root: the main writes, each the one service call of its REST route, with
its arguments checked by that route's request Struct (inputs.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import strawberry

from socius.api.graphql import inputs
from socius.api.graphql.context import GraphContext, viewer
from socius.api.graphql.conversation import Conversation, conversation_of
from socius.api.graphql.types import (
    Me,
    Message,
    ReadPointer,
    Relationship,
    me_of,
    message_of,
    relationship_of,
)
from socius.api.rest.conversations import (
    EditIn,
    GroupIn,
    MembersIn,
    MessageIn,
    ReadIn,
    attachment_ids_of,
    reply_to_of,
    thread_root_id_of,
)
from socius.api.rest.me import ProfilePatch
from socius.domain.graph import Relationship as DomainRelationship
from socius.services.graph import GraphService

__all__ = ["Mutation", "ProfileInput"]

GraphAction = Callable[[GraphService], Callable[[int, int], Awaitable[DomainRelationship]]]


def _context(info: strawberry.Info) -> GraphContext:
    context: GraphContext = info.context
    return context


async def _graph(
    info: strawberry.Info, user_id: strawberry.ID, action: GraphAction
) -> Relationship:
    principal = await viewer(info)
    graph = _context(info).container.graph
    return relationship_of(await action(graph)(principal.user_id, inputs.user_id(user_id)))


@strawberry.input(description="Only the fields given change (REST's PATCH /v1/me).")
class ProfileInput:
    display_name: str | None = strawberry.UNSET
    bio: str | None = strawberry.UNSET
    avatar_url: str | None = strawberry.UNSET
    is_private: bool | None = strawberry.UNSET
    dm_policy: str | None = strawberry.UNSET


def _given(value: object) -> dict[str, Any]:
    return {k: v for k, v in vars(value).items() if v is not strawberry.UNSET}


_RATE = " `rate_limited` (with `retryAfter`) past the per-user limit."
_READ_ONLY = " `blocked` in a direct conversation across a block (it is read-only)."


@strawberry.type
class Mutation:
    # -- the graph ---------------------------------------------------------------------
    @strawberry.mutation(
        description="Send a friend request; if they asked you already, you become friends." + _RATE
    )
    async def send_friend_request(
        self, info: strawberry.Info, user_id: strawberry.ID
    ) -> Relationship:
        return await _graph(info, user_id, lambda g: g.send_friend_request)

    @strawberry.mutation(description="Accept their friend request.")
    async def accept_friend_request(
        self, info: strawberry.Info, user_id: strawberry.ID
    ) -> Relationship:
        return await _graph(info, user_id, lambda g: g.accept_friend_request)

    @strawberry.mutation(description="Decline their friend request.")
    async def decline_friend_request(
        self, info: strawberry.Info, user_id: strawberry.ID
    ) -> Relationship:
        return await _graph(info, user_id, lambda g: g.decline_friend_request)

    @strawberry.mutation(description="Withdraw your friend request.")
    async def cancel_friend_request(
        self, info: strawberry.Info, user_id: strawberry.ID
    ) -> Relationship:
        return await _graph(info, user_id, lambda g: g.cancel_friend_request)

    @strawberry.mutation
    async def unfriend(self, info: strawberry.Info, user_id: strawberry.ID) -> Relationship:
        return await _graph(info, user_id, lambda g: g.unfriend)

    @strawberry.mutation(description="Follow (a request when they are private).")
    async def follow(self, info: strawberry.Info, user_id: strawberry.ID) -> Relationship:
        return await _graph(info, user_id, lambda g: g.follow)

    @strawberry.mutation
    async def unfollow(self, info: strawberry.Info, user_id: strawberry.ID) -> Relationship:
        return await _graph(info, user_id, lambda g: g.unfollow)

    @strawberry.mutation(
        description="Block: ends friendship, requests and follows both ways and hides each "
        "from the other."
    )
    async def block(self, info: strawberry.Info, user_id: strawberry.ID) -> Relationship:
        return await _graph(info, user_id, lambda g: g.block)

    @strawberry.mutation
    async def unblock(self, info: strawberry.Info, user_id: strawberry.ID) -> Relationship:
        return await _graph(info, user_id, lambda g: g.unblock)

    @strawberry.mutation
    async def mute(self, info: strawberry.Info, user_id: strawberry.ID) -> Relationship:
        return await _graph(info, user_id, lambda g: g.mute)

    @strawberry.mutation
    async def unmute(self, info: strawberry.Info, user_id: strawberry.ID) -> Relationship:
        return await _graph(info, user_id, lambda g: g.unmute)

    # -- your profile --------------------------------------------------------------------
    @strawberry.mutation(description="Update your profile; only the fields given change.")
    async def update_profile(self, info: strawberry.Info, input: ProfileInput) -> Me:
        principal = await viewer(info)
        patch = inputs.struct(ProfilePatch, _given(input))
        changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
        account = await _context(info).container.accounts.update_me(principal, changes)
        return me_of(account.user, account.profile)

    # -- conversations -------------------------------------------------------------------
    @strawberry.mutation(
        description="Get or create the one direct conversation with a user; `blocked` or "
        "`dm_not_allowed` when they may not be messaged."
    )
    async def open_direct_conversation(
        self, info: strawberry.Info, user_id: strawberry.ID
    ) -> Conversation:
        principal = await viewer(info)
        view, _ = await _context(info).container.messaging.open_direct(
            principal.user_id, inputs.user_id(user_id)
        )
        return conversation_of(view)

    @strawberry.mutation(description="Create a group you own." + _RATE)
    async def create_group(
        self, info: strawberry.Info, title: str, member_ids: list[strawberry.ID]
    ) -> Conversation:
        principal = await viewer(info)
        group = inputs.struct(GroupIn, {"kind": "group", "title": title, "member_ids": member_ids})
        view = await _context(info).container.messaging.create_group(
            principal.user_id, group.title, inputs.user_ids(group.member_ids)
        )
        return conversation_of(view)

    @strawberry.mutation(description="Add members to a group (owner or admin).")
    async def add_members(
        self,
        info: strawberry.Info,
        conversation_id: strawberry.ID,
        user_ids: list[strawberry.ID],
    ) -> Conversation:
        principal = await viewer(info)
        body = inputs.struct(MembersIn, {"user_ids": user_ids})
        view = await _context(info).container.messaging.add_members(
            principal.user_id,
            inputs.conversation_id(conversation_id),
            inputs.user_ids(body.user_ids),
        )
        return conversation_of(view)

    @strawberry.mutation(
        description="Send a message. The same `clientMsgId` again returns the original "
        "message. `attachmentIds`: up to 10 of your uploads (POST /v1/uploads) not sent "
        'yet, in order; with them `body` may be empty (`""`).' + _RATE + _READ_ONLY
    )
    async def send_message(
        self,
        info: strawberry.Info,
        conversation_id: strawberry.ID,
        client_msg_id: str,
        body: str,
        reply_to: strawberry.ID | None = None,
        thread_root_id: strawberry.ID | None = None,
        attachment_ids: list[strawberry.ID] | None = None,
    ) -> Message:
        principal = await viewer(info)
        sent = inputs.struct(
            MessageIn,
            {
                "client_msg_id": client_msg_id,
                "body": body,
                "reply_to": reply_to,
                "thread_root_id": thread_root_id,
                "attachment_ids": attachment_ids or [],
            },
        )
        message, _ = await _context(info).container.messaging.send(
            principal.user_id,
            inputs.conversation_id(conversation_id),
            client_msg_id=sent.client_msg_id,
            body=sent.body,
            reply_to=reply_to_of(sent.reply_to),
            thread_root_id=thread_root_id_of(sent.thread_root_id),
            attachment_ids=attachment_ids_of(sent.attachment_ids),
        )
        return message_of(message)

    @strawberry.mutation(description="Edit your message." + _READ_ONLY)
    async def edit_message(
        self,
        info: strawberry.Info,
        conversation_id: strawberry.ID,
        message_id: strawberry.ID,
        body: str,
    ) -> Message:
        principal = await viewer(info)
        edit = inputs.struct(EditIn, {"body": body})
        message = await _context(info).container.messaging.edit(
            principal.user_id,
            inputs.conversation_id(conversation_id),
            inputs.message_id(message_id),
            edit.body,
        )
        return message_of(message)

    @strawberry.mutation(
        description="Delete for everyone (sender or admin): the content is erased, a "
        "tombstone stays."
    )
    async def delete_message(
        self, info: strawberry.Info, conversation_id: strawberry.ID, message_id: strawberry.ID
    ) -> Message:
        principal = await viewer(info)
        message = await _context(info).container.messaging.delete(
            principal.user_id,
            inputs.conversation_id(conversation_id),
            inputs.message_id(message_id),
        )
        return message_of(message)

    @strawberry.mutation(description="React (`add: false` takes it back)." + _READ_ONLY)
    async def react(
        self,
        info: strawberry.Info,
        conversation_id: strawberry.ID,
        message_id: strawberry.ID,
        emoji: str,
        add: bool = True,
    ) -> Message:
        principal = await viewer(info)
        message = await _context(info).container.messaging.react(
            principal.user_id,
            inputs.conversation_id(conversation_id),
            inputs.message_id(message_id),
            emoji,
            on=add,
        )
        return message_of(message)

    @strawberry.mutation(description="Move your read pointer forward (never back)." + _READ_ONLY)
    async def mark_read(
        self, info: strawberry.Info, conversation_id: strawberry.ID, seq: int
    ) -> ReadPointer:
        principal = await viewer(info)
        read = inputs.struct(ReadIn, {"seq": seq})
        cid = inputs.conversation_id(conversation_id)
        at = await _context(info).container.messaging.mark_read(principal.user_id, cid, read.seq)
        return ReadPointer(conversation_id=strawberry.ID(str(cid)), last_read_seq=at)
