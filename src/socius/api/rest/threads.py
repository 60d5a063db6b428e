"""/v1/conversations/{id}/messages/{root}/thread: a thread's replies and your read pointer
in it (docs/threads.md). Replies are sent like any message, with ``thread_root_id``."""

from __future__ import annotations

import msgspec
from litestar import Router, get, post
from litestar.datastructures import State
from litestar.params import JSONBody

from socius.api.dependencies import Caller, container_of
from socius.api.options import with_options
from socius.api.rest.message_views import MessageOut, message_out
from socius.api.rest.params import AfterSeq, BeforeSeq, IdPath, Limit
from socius.domain.conversations import not_found
from socius.domain.ids import parse_id
from socius.domain.pagination import Seq

__all__ = ["router"]


class ThreadPageOut(msgspec.Struct, kw_only=True):
    """The root (its ``thread`` with your read pointer and unread count) and a page of its
    replies, oldest first. ``next_cursor`` is unused: page with before_seq / after_seq."""

    root: MessageOut
    items: list[MessageOut]
    next_cursor: str | None = None


class ThreadReadIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    seq: Seq


class ThreadReadOut(msgspec.Struct, kw_only=True):
    conversation_id: str
    root_id: str
    last_read_seq: int
    unread_count: int


def _id(text: str, what: str) -> int:
    value = parse_id(text)
    if value is None:
        raise not_found(what)
    return value


_ROOT = (
    "404 `conversation_not_found` unless you are a member; 404 `message_not_found` unless "
    "`message_id` is a message of it that is not itself a thread reply."
)


@get(
    "/{conversation_id:str}/messages/{message_id:str}/thread",
    summary="A thread's replies, oldest first",
    description="The newest `limit` replies in the thread of `message_id`, or those before "
    "`before_seq`, or after `after_seq` (conversation seqs, as in the history); deleted "
    "replies stay as tombstones. Stays readable across a block. " + _ROOT,
)
async def thread_replies(
    conversation_id: IdPath,
    message_id: IdPath,
    state: State,
    principal: Caller,
    before_seq: BeforeSeq = None,
    after_seq: AfterSeq = None,
    limit: Limit = None,
) -> ThreadPageOut:
    root, found = await container_of(state).threads.replies(
        principal.user_id,
        _id(conversation_id, "conversation"),
        _id(message_id, "message"),
        before_seq=before_seq,
        after_seq=after_seq,
        limit=limit,
    )
    return ThreadPageOut(root=message_out(root), items=[message_out(m) for m in found])


@post(
    "/{conversation_id:str}/messages/{message_id:str}/thread/read",
    status_code=200,
    summary="Move your read pointer in a thread forward (never back)",
    description="`seq` is a conversation seq (that of the last reply you have seen); "
    "`unread_count` is what is left: live replies of others past it. Your own devices hear "
    "of it (`thread.read`), nobody else. 403 `blocked` in a direct conversation across a "
    "block, as the conversation's read pointer. " + _ROOT,
)
async def mark_thread_read(
    conversation_id: IdPath,
    message_id: IdPath,
    data: JSONBody[ThreadReadIn],
    state: State,
    principal: Caller,
) -> ThreadReadOut:
    cid, root_id = _id(conversation_id, "conversation"), _id(message_id, "message")
    at, unread = await container_of(state).threads.mark_read(
        principal.user_id, cid, root_id, data.seq
    )
    return ThreadReadOut(
        conversation_id=str(cid), root_id=str(root_id), last_read_seq=at, unread_count=unread
    )


router = Router(
    path="/v1/conversations",
    route_handlers=with_options([thread_replies, mark_thread_read]),
    tags=["conversations"],
    security=[{"bearer": []}],
)
