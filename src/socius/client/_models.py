"""Typed responses of the public API (see docs/api.md), decoded with msgspec.

Fields the contract lists are required, so a server that drifts from the contract fails
loudly in tests; fields a newer server adds are ignored, so old clients keep working.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

__all__ = [
    "AdminReport",
    "AdminUser",
    "AuditEntry",
    "AuthResult",
    "EventPage",
    "Member",
    "MfaStatus",
    "Notification",
    "NotificationPage",
    "Page",
    "Presence",
    "PrivateUser",
    "PublicUser",
    "Report",
    "ReportedMessage",
    "SessionInfo",
    "StreamEvent",
    "TokenPair",
    "TotpEnrollment",
    "Webhook",
    "WebhookDelivery",
]

T = TypeVar("T")


class PublicUser(msgspec.Struct, frozen=True, kw_only=True):
    """A profile as anyone may see it."""

    id: str
    username: str
    display_name: str
    bio: str
    avatar_url: str | None
    is_private: bool
    friends_count: int
    followers_count: int
    following_count: int
    created_at: datetime


class PrivateUser(PublicUser, frozen=True, kw_only=True):
    """The caller's own profile: the public one plus what only they may see."""

    email: str | None
    dm_policy: str
    settings: dict[str, Any]
    updated_at: datetime
    email_verified: bool = False
    is_admin: bool = False


class TokenPair(msgspec.Struct, frozen=True, kw_only=True):
    """An access token and the refresh token that renews it."""

    access_token: str
    refresh_token: str
    expires_in: int


class AuthResult(TokenPair, frozen=True, kw_only=True):
    """What register, login and refresh answer: the user and a new token pair."""

    user: PrivateUser


class TotpEnrollment(msgspec.Struct, frozen=True, kw_only=True):
    """A pending authenticator: type `secret` into an app, or show `otpauth_uri` as a QR
    code; then confirm with a first code."""

    secret: str
    otpauth_uri: str


class MfaStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The caller's second factors."""

    totp_enabled: bool
    totp_pending: bool
    recovery_codes_left: int


class OidcProvider(msgspec.Struct, frozen=True, kw_only=True):
    """A provider to sign in with: show "Sign in with `display_name`"."""

    name: str
    display_name: str
    start_url: str  # relative to the server: a browser GETs it and is redirected


class LinkedIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """An identity at a provider, linked to the caller's account."""

    id: str  # its provider's name (one identity per provider)
    provider: str
    subject: str
    email: str | None
    created_at: datetime
    last_used_at: datetime | None


class PasskeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One of the caller's passkeys."""

    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None


class SessionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One login on one device."""

    id: str
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool


class Page(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """One page of a list; pass `next_cursor` back to get the next one (None: no more)."""

    items: list[T]
    next_cursor: str | None = None


class Relationship(msgspec.Struct, frozen=True, kw_only=True):
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


class ListedUser(PublicUser, frozen=True, kw_only=True):
    """A user in a friend, follower or request list, and since when."""

    since: datetime


class Suggestion(msgspec.Struct, frozen=True, kw_only=True):
    """Someone the caller may know."""

    user: PublicUser
    mutual_count: int
    score: float


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    """An upload (``upload``); a message carries those sent with it."""

    id: str
    content_type: str
    size: int
    sha256: str
    width: int | None = None
    height: int | None = None
    filename: str | None = None


class AttachmentLink(msgspec.Struct, frozen=True, kw_only=True):
    """A presigned URL of the object store (None where the server keeps files itself)."""

    url: str | None
    expires_at: datetime | None


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """A message; ``body`` is None and ``deleted`` true once deleted."""

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
    attachments: list[Attachment] = []
    thread_root_id: str | None = None  # a thread reply: its root
    thread: Thread | None = None  # a root that ever had a reply: its thread


class Thread(msgspec.Struct, frozen=True, kw_only=True):
    """A root's thread: live replies, newest reply time, up to 10 distinct repliers; in
    listings, your read pointer in it and the live replies of others past it."""

    reply_count: int
    last_reply_at: datetime | None
    participants: list[str]
    last_read_seq: int | None = None
    unread_count: int | None = None


class ThreadPage(msgspec.Struct, frozen=True, kw_only=True):
    """A thread's root and a page of its replies, oldest first."""

    root: Message
    items: list[Message]


class ThreadRead(msgspec.Struct, frozen=True, kw_only=True):
    """Your read pointer in a thread after moving it, and the unread replies left."""

    conversation_id: str
    root_id: str
    last_read_seq: int
    unread_count: int


class SearchHit(msgspec.Struct, frozen=True, kw_only=True):
    """A message that matches a search, and a snippet of it: HTML-escaped text whose
    matches are wrapped in ``<mark>`` and ``</mark>``, the only markup it holds."""

    message: Message
    snippet: str


class Conversation(msgspec.Struct, frozen=True, kw_only=True):
    """A conversation as the caller sees it (with their role, unread count, and whether
    they muted it)."""

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
    last_message: Message | None
    created_at: datetime
    updated_at: datetime
    muted: bool = False


class Member(msgspec.Struct, frozen=True, kw_only=True):
    """A member of a conversation (``/v1/conversations/{id}/members``)."""

    user_id: str
    role: str  # owner, admin or member
    joined_at: datetime
    last_read_seq: int


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """An inbox entry: ``type`` is ``message``, ``mention``, ``reply``, ``reaction``, or a
    graph one (``friend.request``, ...); ``payload`` holds ids (docs/push.md)."""

    id: str
    type: str
    payload: dict[str, Any]
    created_at: datetime
    read: bool


class NotificationPage(Page[Notification], frozen=True, kw_only=True):
    """A page of the inbox, newest first, and how many are unread in all."""

    unread_count: int


class Presence(msgspec.Struct, frozen=True, kw_only=True):
    """Whether a friend is online; ``last_seen_at`` is now for one who is."""

    user_id: str
    online: bool
    last_seen_at: datetime | None


class SyncItem(msgspec.Struct, frozen=True, kw_only=True):
    """One event of the caller's log, and the cursor right after it."""

    cursor: str
    event: dict[str, Any]


class NotificationSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Which kinds of notification (and push) you get."""

    message: bool
    mention: bool
    reply: bool
    reaction: bool


class PushDevice(msgspec.Struct, frozen=True, kw_only=True):
    """A push target: ``webpush`` (``endpoint``) or ``gateway`` (``platform``)."""

    id: str
    kind: str
    endpoint: str | None
    platform: str | None
    created_at: datetime
    last_pushed_at: datetime | None


class SyncPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[SyncItem]
    next_cursor: str


class AdminUser(msgspec.Struct, frozen=True, kw_only=True):
    """An account as administrators see it (``/v1/admin/users``)."""

    id: str
    username: str
    email: str | None
    display_name: str
    status: str
    is_active: bool
    is_admin: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None = None


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One administrator action (``/v1/admin/audit``); ``via`` is ``api`` or ``cli``."""

    id: str
    created_at: datetime
    action: str
    via: str
    actor_id: str | None
    actor_username: str | None
    target_type: str | None
    target_id: str | None
    target_username: str | None
    details: dict[str, Any]
    request_id: str | None
    ip: str | None


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """A report of abuse as its reporter sees it (``POST /v1/reports``)."""

    id: str
    target: str  # "user" or "message"
    target_id: str
    reason: str
    note: str | None
    status: str  # "open" or "resolved"
    created_at: datetime


class ReportedMessage(msgspec.Struct, frozen=True, kw_only=True):
    """The reported message as it is now (``body`` None once deleted)."""

    id: str
    conversation_id: str
    sender_id: str | None
    body: str | None
    deleted: bool
    created_at: datetime


class AdminReport(msgspec.Struct, frozen=True, kw_only=True):
    """A report as administrators see it (``/v1/admin/reports``); ``reporter_id`` None:
    the moderation hook flagged the message (``rule`` says which rule)."""

    id: str
    created_at: datetime
    reporter_id: str | None
    target: str
    target_id: str
    user_id: str | None
    conversation_id: str | None
    reason: str
    note: str | None
    rule: str | None
    status: str
    resolved_at: datetime | None
    resolved_by: str | None
    action: str | None
    resolution_note: str | None
    message: ReportedMessage | None


class StreamEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One event of the durable stream (``/v1/admin/events``, docs/events.md)."""

    position: int
    id: str
    type: str
    occurred_at: datetime
    data: dict[str, Any]
    body: str | None = None
    v: int = 1


class EventPage(msgspec.Struct, frozen=True, kw_only=True):
    """Events after a position; pass ``next_after`` as ``after`` for the next page."""

    items: list[StreamEvent]
    next_after: int
    head: int


class Webhook(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook endpoint (``/v1/admin/webhooks``)."""

    id: str
    url: str
    types: list[str]
    secret: str
    enabled: bool
    description: str | None
    position: int
    attempts: int
    failing_since: datetime | None
    next_attempt_at: datetime | None
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime
    bodies: bool = False
    """Message events carry ``body`` while the message still has content."""


class WebhookDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt to deliver an event (or a ping) to a webhook endpoint."""

    id: str
    event_id: str
    event_type: str
    attempt: int
    status: str
    status_code: int | None
    latency_ms: int | None
    error: str | None
    created_at: datetime
