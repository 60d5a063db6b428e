"""/v1/conversations: conversations, members, messages, reactions, read pointers, typing."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Response, Router, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from socius.api.dependencies import Caller, container_of
from socius.api.options import with_options
from socius.api.rest.fields import (
    ClientMsgId,
    IdText,
    MessageBody,
    MessageTtl,
    SentBody,
    Title,
)
from socius.api.rest.message_views import (
    ConversationOut,
    MemberOut,
    MessageOut,
    conversation_out,
    member_out,
    message_out,
)
from socius.api.rest.params import ActivityCursor, AfterSeq, BeforeSeq, IdPath, Limit, MemberCursor
from socius.domain.attachments import MAX_PER_MESSAGE
from socius.domain.conversations import EMOJI_PATTERN, MAX_GROUP_MEMBERS, Role, not_found
from socius.domain.errors import InvalidInput, NotFound
from socius.domain.ids import parse_id
from socius.domain.pagination import Seq

__all__ = ["attachment_ids_of", "reply_to_of", "router", "thread_root_id_of"]

UNSET = msgspec.UNSET
Emoji = Annotated[
    str,
    Parameter(
        description="The reaction: 1-16 characters, no spaces or `/?#%` (422 `invalid_emoji`)",
        schema_extra={"pattern": EMOJI_PATTERN},
    ),
]


class DirectIn(msgspec.Struct, tag_field="kind", tag="direct", forbid_unknown_fields=True):
    """The one direct conversation with ``member_ids[0]``."""

    member_ids: Annotated[
        list[IdText],
        msgspec.Meta(
            extra_json_schema={"minItems": 1, "maxItems": 1},
            description="Exactly one: the other person (422 `invalid_members`)",
        ),
    ]
    title: None = None


class GroupIn(msgspec.Struct, tag_field="kind", tag="group", forbid_unknown_fields=True):
    """A group owned by the caller."""

    title: Title
    member_ids: Annotated[
        list[IdText],
        msgspec.Meta(
            extra_json_schema={"maxItems": MAX_GROUP_MEMBERS - 1},
            description=f"The others (you are left out); a group has at most "
            f"{MAX_GROUP_MEMBERS} members (422 `too_many_members`)",
        ),
    ]


class ConversationPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    title: Title | msgspec.UnsetType = UNSET
    message_ttl_seconds: MessageTtl | msgspec.UnsetType | None = UNSET


class MembersIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    user_ids: Annotated[list[IdText], msgspec.Meta(min_length=1, max_length=MAX_GROUP_MEMBERS - 1)]


class RoleIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    role: Literal["admin", "member"]


class MessageIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    client_msg_id: ClientMsgId
    body: SentBody
    reply_to: IdText | None = None
    attachment_ids: Annotated[
        list[IdText],
        msgspec.Meta(
            extra_json_schema={"maxItems": MAX_PER_MESSAGE},
            description=f"Up to {MAX_PER_MESSAGE} of your own uploads not sent yet "
            "(POST /v1/uploads), in order (422 `too_many_attachments`, 404 "
            "`attachment_not_found`, 409 `attachment_already_sent`)",
        ),
    ] = []
    thread_root_id: Annotated[
        IdText | None,
        msgspec.Meta(
            description="Reply in the thread of this message: one of this conversation, not "
            "itself a thread reply, not deleted (422 `invalid_thread_root`). Thread replies "
            "stay out of the main timeline (docs/threads.md)"
        ),
    ] = None


class EditIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    body: MessageBody


class ReadIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    seq: Seq


class ReadOut(msgspec.Struct, kw_only=True):
    conversation_id: str
    last_read_seq: int


class ConversationsOut(msgspec.Struct, kw_only=True):
    items: list[ConversationOut]
    next_cursor: str | None


class MembersOut(msgspec.Struct, kw_only=True):
    items: list[MemberOut]
    next_cursor: str | None


class MessagesOut(msgspec.Struct, kw_only=True):
    """Oldest first. ``next_cursor`` is unused: page with before_seq / after_seq."""

    items: list[MessageOut]
    next_cursor: str | None = None


def _conversation_id(text: str) -> int:
    value = parse_id(text)
    if value is None:
        raise not_found()
    return value


def _message_id(text: str) -> int:
    value = parse_id(text)
    if value is None:
        raise not_found("message")
    return value


def _user_ids(texts: list[str]) -> list[int]:
    ids = []
    for text in texts:
        value = parse_id(text)
        if value is None:
            raise NotFound("no such user", code="user_not_found")
        ids.append(value)
    return ids


@post(
    "/",
    status_code=HTTP_201_CREATED,
    summary="Open a direct conversation or create a group",
    responses={
        200: ResponseSpec(
            ConversationOut,
            description="The direct conversation already existed",
            generate_examples=False,
        )
    },
    description="`direct`: get-or-create the one conversation with `member_ids[0]` (200 "
    "when it existed); 403 `blocked` or `dm_not_allowed`. `group`: the caller owns it; "
    "429 `rate_limited` with Retry-After past the per-user group limit.",
)
async def create_conversation(
    data: JSONBody[DirectIn | GroupIn], state: State, principal: Caller
) -> Response[ConversationOut]:
    messaging = container_of(state).messaging
    members = _user_ids(data.member_ids)
    if isinstance(data, DirectIn):
        if len(members) != 1:
            raise InvalidInput(
                "a direct conversation has exactly one other member",
                code="invalid_members",
                details={"field": "member_ids"},
            )
        view, created = await messaging.open_direct(principal.user_id, members[0])
        return Response(conversation_out(view), status_code=201 if created else 200)
    view = await messaging.create_group(principal.user_id, data.title, members)
    return Response(conversation_out(view), status_code=201)


@get("/", summary="Your conversations, most recently active first")
async def list_conversations(
    state: State, principal: Caller, limit: Limit = None, cursor: ActivityCursor = None
) -> ConversationsOut:
    page = await container_of(state).messaging.list_for(
        principal.user_id, limit=limit, cursor=cursor
    )
    return ConversationsOut(
        items=[conversation_out(v) for v in page.items], next_cursor=page.next_cursor
    )


@get("/{conversation_id:str}", summary="A conversation you are in")
async def read_conversation(
    conversation_id: IdPath, state: State, principal: Caller
) -> ConversationOut:
    view = await container_of(state).messaging.get(
        principal.user_id, _conversation_id(conversation_id)
    )
    return conversation_out(view)


_READ_ONLY = (
    "403 `blocked` in a direct conversation whose members are blocked either way: it is "
    "read-only for both until the block is lifted."
)


@patch(
    "/{conversation_id:str}",
    summary="Change title or disappearing messages",
    description="Owner or admin. `message_ttl_seconds` makes new messages disappear; "
    "0 or null turns it off. " + _READ_ONLY,
)
async def update_conversation(
    conversation_id: IdPath,
    data: JSONBody[ConversationPatch],
    state: State,
    principal: Caller,
) -> ConversationOut:
    changes: dict[str, Any] = {
        k: v for k, v in msgspec.structs.asdict(data).items() if v is not UNSET
    }
    view = await container_of(state).messaging.update(
        principal.user_id, _conversation_id(conversation_id), changes
    )
    return conversation_out(view)


@get("/{conversation_id:str}/members", summary="Members of a conversation")
async def list_members(
    conversation_id: IdPath,
    state: State,
    principal: Caller,
    limit: Limit = None,
    cursor: MemberCursor = None,
) -> MembersOut:
    found, next_cursor = await container_of(state).messaging.members(
        principal.user_id, _conversation_id(conversation_id), limit=limit, cursor=cursor
    )
    return MembersOut(items=[member_out(m) for m in found], next_cursor=next_cursor)


@post("/{conversation_id:str}/members", status_code=200, summary="Add members (owner/admin)")
async def add_members(
    conversation_id: IdPath, data: JSONBody[MembersIn], state: State, principal: Caller
) -> ConversationOut:
    view = await container_of(state).messaging.add_members(
        principal.user_id, _conversation_id(conversation_id), _user_ids(data.user_ids)
    )
    return conversation_out(view)


@delete(
    "/{conversation_id:str}/members/{user_id:str}",
    status_code=HTTP_204_NO_CONTENT,
    summary="Remove a member, or leave (your own id)",
)
async def remove_member(
    conversation_id: IdPath, user_id: IdPath, state: State, principal: Caller
) -> None:
    await container_of(state).messaging.remove_member(
        principal.user_id, _conversation_id(conversation_id), _user_ids([user_id])[0]
    )


@patch(
    "/{conversation_id:str}/members/{user_id:str}",
    summary="Make a member admin, or not",
    description="The owner only.",
)
async def set_role(
    conversation_id: IdPath,
    user_id: IdPath,
    data: JSONBody[RoleIn],
    state: State,
    principal: Caller,
) -> MemberOut:
    member = await container_of(state).messaging.set_role(
        principal.user_id,
        _conversation_id(conversation_id),
        _user_ids([user_id])[0],
        Role(data.role),
    )
    return member_out(member)


@post(
    "/{conversation_id:str}/messages",
    status_code=HTTP_201_CREATED,
    summary="Send",
    responses={
        200: ResponseSpec(
            MessageOut,
            description="A retry: this `client_msg_id` was sent before; the original message",
            generate_examples=False,
        )
    },
    description="201 with the new message; the same `client_msg_id` again returns 200 and "
    "the original message. 429 `rate_limited` with Retry-After past the per-user send limit "
    "(nothing is stored). " + _READ_ONLY,
)
async def send_message(
    conversation_id: IdPath, data: JSONBody[MessageIn], state: State, principal: Caller
) -> Response[MessageOut]:
    message, created = await container_of(state).messaging.send(
        principal.user_id,
        _conversation_id(conversation_id),
        client_msg_id=data.client_msg_id,
        body=data.body,
        reply_to=reply_to_of(data.reply_to),
        attachment_ids=attachment_ids_of(data.attachment_ids),
        thread_root_id=thread_root_id_of(data.thread_root_id),
    )
    return Response(message_out(message), status_code=201 if created else 200)


def _message_in_conversation(text: str | None, field: str, code: str) -> int | None:
    """The id of a message the send points at; a malformed one names no message of the
    conversation (422 ``code``, like an unknown one)."""
    if text is None:
        return None
    value = parse_id(text)
    if value is None:
        raise InvalidInput(
            f"{field} is not a message of this conversation", code=code, details={"field": field}
        )
    return value


def reply_to_of(text: str | None) -> int | None:
    """The message replied to (REST and GraphQL sends)."""
    return _message_in_conversation(text, "reply_to", "invalid_reply_to")


def thread_root_id_of(text: str | None) -> int | None:
    """The thread's root (docs/threads.md; REST and GraphQL sends)."""
    return _message_in_conversation(text, "thread_root_id", "invalid_thread_root")


def attachment_ids_of(texts: list[str]) -> list[int]:
    """Ids of uploads; a malformed one names nothing (404, like an unknown one)."""
    ids = [parse_id(t) for t in texts]
    bad = [t for t, i in zip(texts, ids, strict=True) if i is None]
    if bad:
        raise NotFound(
            "no such attachment", code="attachment_not_found", details={"attachment_ids": bad}
        )
    return [i for i in ids if i is not None]


@get(
    "/{conversation_id:str}/messages",
    summary="History, oldest first",
    description="The newest `limit` messages, or those before `before_seq`, or after "
    "`after_seq`. Thread replies are left out (they are paged at "
    "`.../messages/{id}/thread`); a root carries `thread` with your `unread_count` in it. "
    "Stays readable across a block.",
)
async def history(
    conversation_id: IdPath,
    state: State,
    principal: Caller,
    before_seq: BeforeSeq = None,
    after_seq: AfterSeq = None,
    limit: Limit = None,
) -> MessagesOut:
    found = await container_of(state).messaging.history(
        principal.user_id,
        _conversation_id(conversation_id),
        before_seq=before_seq,
        after_seq=after_seq,
        limit=limit,
    )
    return MessagesOut(items=[message_out(m) for m in found])


@patch(
    "/{conversation_id:str}/messages/{message_id:str}",
    summary="Edit (sender only)",
    description=_READ_ONLY,
)
async def edit_message(
    conversation_id: IdPath,
    message_id: IdPath,
    data: JSONBody[EditIn],
    state: State,
    principal: Caller,
) -> MessageOut:
    message = await container_of(state).messaging.edit(
        principal.user_id, _conversation_id(conversation_id), _message_id(message_id), data.body
    )
    return message_out(message)


@delete(
    "/{conversation_id:str}/messages/{message_id:str}",
    status_code=200,
    summary="Delete for everyone (sender or admin)",
    description="The content is erased; a tombstone stays. Allowed across a block: your "
    "own words stay yours to take back.",
)
async def delete_message(
    conversation_id: IdPath, message_id: IdPath, state: State, principal: Caller
) -> MessageOut:
    message = await container_of(state).messaging.delete(
        principal.user_id, _conversation_id(conversation_id), _message_id(message_id)
    )
    return message_out(message)


@put(
    "/{conversation_id:str}/messages/{message_id:str}/reactions/{emoji:str}",
    status_code=200,
    summary="React",
    description=_READ_ONLY,
)
async def react(
    conversation_id: IdPath,
    message_id: IdPath,
    emoji: Emoji,
    state: State,
    principal: Caller,
) -> MessageOut:
    message = await container_of(state).messaging.react(
        principal.user_id,
        _conversation_id(conversation_id),
        _message_id(message_id),
        emoji,
        on=True,
    )
    return message_out(message)


@delete(
    "/{conversation_id:str}/messages/{message_id:str}/reactions/{emoji:str}",
    status_code=200,
    summary="Take a reaction back",
    description="Allowed across a block.",
)
async def unreact(
    conversation_id: IdPath,
    message_id: IdPath,
    emoji: Emoji,
    state: State,
    principal: Caller,
) -> MessageOut:
    message = await container_of(state).messaging.react(
        principal.user_id,
        _conversation_id(conversation_id),
        _message_id(message_id),
        emoji,
        on=False,
    )
    return message_out(message)


@post(
    "/{conversation_id:str}/read",
    status_code=200,
    summary="Move your read pointer forward (never back)",
    description="The other members hear of it (`read.updated`), except those blocked either "
    "way with you. " + _READ_ONLY,
)
async def mark_read(
    conversation_id: IdPath, data: JSONBody[ReadIn], state: State, principal: Caller
) -> ReadOut:
    cid = _conversation_id(conversation_id)
    seq = await container_of(state).messaging.mark_read(principal.user_id, cid, data.seq)
    return ReadOut(conversation_id=str(cid), last_read_seq=seq)


@post(
    "/{conversation_id:str}/typing",
    status_code=HTTP_204_NO_CONTENT,
    summary="Tell the others you are typing (ephemeral)",
    description="Reaches neither members blocked either way with you nor those who mute you. "
    "429 `rate_limited` with Retry-After past the per-user typing limit (shared with the "
    "socket's typing frames). " + _READ_ONLY,
)
async def typing(conversation_id: IdPath, state: State, principal: Caller) -> None:
    await container_of(state).messaging.typing(principal.user_id, _conversation_id(conversation_id))


_MUTE = (
    "Muting is the caller's own: no notifications (nor, once push exists, push) for this "
    "conversation; messages, events and `unread_count` go on as usual, and the other "
    "members are not told. Idempotent; the conversation object shows `muted`. 404 for a "
    "conversation you are not in."
)


@put(
    "/{conversation_id:str}/mute",
    status_code=200,
    summary="Mute a conversation's notifications",
    description=_MUTE,
)
async def mute_conversation(
    conversation_id: IdPath, state: State, principal: Caller
) -> ConversationOut:
    view = await container_of(state).messaging.set_muted(
        principal.user_id, _conversation_id(conversation_id), True
    )
    return conversation_out(view)


@delete(
    "/{conversation_id:str}/mute",
    status_code=200,
    summary="Unmute a conversation",
    description=_MUTE,
)
async def unmute_conversation(
    conversation_id: IdPath, state: State, principal: Caller
) -> ConversationOut:
    view = await container_of(state).messaging.set_muted(
        principal.user_id, _conversation_id(conversation_id), False
    )
    return conversation_out(view)


router = Router(
    path="/v1/conversations",
    route_handlers=with_options(
        [
            create_conversation,
            list_conversations,
            read_conversation,
            update_conversation,
            list_members,
            add_members,
            remove_member,
            set_role,
            send_message,
            history,
            edit_message,
            delete_message,
            react,
            unreact,
            mark_read,
            typing,
            mute_conversation,
            unmute_conversation,
        ]
    ),
    tags=["conversations"],
    security=[{"bearer": []}],
)
