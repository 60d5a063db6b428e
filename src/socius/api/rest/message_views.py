"""How conversations, messages, notifications and events look on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from socius.domain.attachments import Attachment
from socius.domain.conversations import Member, Message, ThreadSummary
from socius.domain.events import Event
from socius.domain.notifications import Notification
from socius.services.inbox import cursor_for
from socius.services.messaging import ConversationView

__all__ = [
    "AttachmentOut",
    "ConversationOut",
    "MemberOut",
    "MessageOut",
    "NotificationOut",
    "SyncEventOut",
    "ThreadOut",
    "attachment_out",
    "conversation_out",
    "member_out",
    "message_out",
    "notification_out",
    "sync_event_out",
    "thread_out",
]


class AttachmentOut(msgspec.Struct, kw_only=True):
    """An upload; its bytes are at ``GET /v1/attachments/{id}``."""

    id: str
    content_type: str
    size: int
    sha256: str
    width: int | None = None
    height: int | None = None
    filename: str | None = None


class ThreadOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A root's thread (docs/threads.md): its live replies, when the newest was sent, up
    to 10 distinct repliers in the order they first replied; in listings, the caller's
    read pointer in the thread and the live replies of others past it."""

    reply_count: int
    last_reply_at: datetime | None
    participants: list[str]
    last_read_seq: int | None = None
    unread_count: int | None = None


class MessageOut(msgspec.Struct, kw_only=True):
    id: str
    conversation_id: str
    seq: int
    sender_id: str | None
    client_msg_id: str
    body: str | None
    reply_to: str | None
    created_at: datetime
    edited_at: datetime | None
    deleted: bool
    reactions: dict[str, int]
    attachments: list[AttachmentOut] = []
    thread_root_id: str | None = None  # a thread reply: the root of its thread
    thread: ThreadOut | None = None  # a root that ever had a reply: its thread


class ConversationOut(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    title: str | None
    owner_id: str | None
    message_ttl_seconds: int | None
    member_count: int
    member_ids: list[str] | None
    role: str
    last_seq: int
    last_read_seq: int
    unread_count: int
    muted: bool  # the caller muted it (PUT /v1/conversations/{id}/mute); private to them
    last_message: MessageOut | None
    created_at: datetime
    updated_at: datetime


class MemberOut(msgspec.Struct, kw_only=True):
    user_id: str
    role: str
    joined_at: datetime
    last_read_seq: int


class NotificationOut(msgspec.Struct, kw_only=True):
    id: str
    type: str
    payload: dict[str, Any]
    created_at: datetime
    read: bool


class SyncEventOut(msgspec.Struct, kw_only=True):
    """One event of the caller's log; ``cursor`` resumes right after it."""

    cursor: str
    event: dict[str, Any]


def message_out(m: Message) -> MessageOut:
    return MessageOut(
        id=str(m.id),
        conversation_id=str(m.conversation_id),
        seq=m.seq,
        sender_id=None if m.sender_id is None else str(m.sender_id),
        client_msg_id=m.client_msg_id,
        body=m.body,
        reply_to=None if m.reply_to is None else str(m.reply_to),
        created_at=m.created_at,
        edited_at=m.edited_at,
        deleted=m.deleted,
        reactions=m.reactions,
        attachments=[attachment_out(a) for a in m.attachments],
        thread_root_id=None if m.thread_root_id is None else str(m.thread_root_id),
        thread=None if m.thread is None else thread_out(m.thread),
    )


def thread_out(t: ThreadSummary) -> ThreadOut:
    return ThreadOut(
        reply_count=t.reply_count,
        last_reply_at=t.last_reply_at,
        participants=[str(u) for u in t.participants],
        last_read_seq=t.last_read_seq,
        unread_count=t.unread_count,
    )


def attachment_out(a: Attachment) -> AttachmentOut:
    return AttachmentOut(
        id=str(a.id),
        content_type=a.content_type,
        size=a.size,
        sha256=a.sha256,
        width=a.width,
        height=a.height,
        filename=a.filename,
    )


def conversation_out(view: ConversationView) -> ConversationOut:
    c, m = view.conversation, view.member
    return ConversationOut(
        id=str(c.id),
        kind=c.kind.value,
        title=c.title,
        owner_id=None if c.owner_id is None else str(c.owner_id),
        message_ttl_seconds=c.message_ttl_seconds,
        member_count=c.member_count,
        member_ids=None if view.member_ids is None else [str(u) for u in view.member_ids],
        role=m.role.value,
        last_seq=c.last_seq,
        last_read_seq=m.last_read_seq,
        unread_count=view.unread_count,
        muted=m.muted,
        last_message=message_out(view.last_message) if view.last_message else None,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


def member_out(m: Member) -> MemberOut:
    return MemberOut(
        user_id=str(m.user_id),
        role=m.role.value,
        joined_at=m.joined_at,
        last_read_seq=m.last_read_seq,
    )


def notification_out(n: Notification) -> NotificationOut:
    return NotificationOut(
        id=str(n.id), type=n.type, payload=n.payload, created_at=n.created_at, read=n.read
    )


def event_body(type_: str, payload: dict[str, Any]) -> dict[str, Any]:
    """An event as clients see it: its type and its fields side by side."""
    return {"type": type_, **payload}


def sync_event_out(e: Event) -> SyncEventOut:
    assert e.seq is not None
    return SyncEventOut(cursor=cursor_for(e.seq), event=event_body(e.type, e.payload))
