"""Conversations and messages: the records and the rules for changing them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from socius.domain.attachments import Attachment
from socius.domain.errors import Forbidden, InvalidInput, NotFound
from socius.domain.graph import EdgeType
from socius.domain.text import (
    CONTROL,
    CONTROL_OR_BREAK,
    WHITESPACE,
    check_no_control_chars,
    visible_text_pattern,
)

__all__ = [
    "BODY_MAX",
    "BODY_PATTERN",
    "CLIENT_MSG_ID_PATTERN",
    "EMOJI_PATTERN",
    "MAX_GROUP_MEMBERS",
    "MAX_TTL_SECONDS",
    "SENT_BODY_PATTERN",
    "TITLE_MAX",
    "TITLE_PATTERN",
    "Conversation",
    "ConversationKind",
    "Member",
    "Message",
    "Peer",
    "Role",
    "SendFacts",
    "check_body",
    "check_client_msg_id",
    "check_emoji",
    "check_manager",
    "check_title",
    "check_ttl",
    "direct_key",
    "not_found",
]

# Each *_PATTERN is also published in the OpenAPI document (see domain/text.py).
BODY_MAX = 4000
BODY_PATTERN = visible_text_pattern(CONTROL)
"""Something visible; no control characters but tab and line breaks."""
SENT_BODY_PATTERN = visible_text_pattern(CONTROL, empty=True)
"""As BODY_PATTERN, or empty: a message with attachments needs no text."""
TITLE_MAX = 100
TITLE_PATTERN = visible_text_pattern(CONTROL_OR_BREAK)
"""Something visible, on one line (surrounding spaces are trimmed)."""
CLIENT_MSG_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
EMOJI_PATTERN = f"^[^/?#%{WHITESPACE}{CONTROL_OR_BREAK}]{{1,16}}$"
MAX_GROUP_MEMBERS = 1000
MAX_TTL_SECONDS = 30 * 24 * 3600
_CLIENT_MSG_ID = re.compile(CLIENT_MSG_ID_PATTERN)
_TITLE = re.compile(TITLE_PATTERN)
_EMOJI = re.compile(EMOJI_PATTERN)


class ConversationKind(StrEnum):
    DIRECT = "direct"
    GROUP = "group"


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"

    @property
    def manages(self) -> bool:
        """May add and remove members, edit the conversation, delete others' messages."""
        return self is not Role.MEMBER


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    kind: ConversationKind
    title: str | None
    owner_id: int | None
    message_ttl_seconds: int | None
    last_seq: int
    member_count: int
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Member:
    conversation_id: int
    user_id: int
    role: Role
    joined_at: datetime
    last_read_seq: int
    # The member muted the conversation: no notifications (nor, later, push) for it; the
    # unread count is kept as usual. Private to the member.
    muted: bool = False


# The distinct repliers a thread summary names (the first to reply, in order).
MAX_THREAD_PARTICIPANTS = 10


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """A root's thread: its live replies (deleted and erased ones are not counted), when
    the newest of them was sent, and up to ``MAX_THREAD_PARTICIPANTS`` distinct repliers
    in the order they first replied. ``last_read_seq``/``unread_count`` are the caller's
    own (REST views); events leave them out (None)."""

    reply_count: int
    last_reply_at: datetime | None
    participants: tuple[int, ...]
    last_read_seq: int | None = None
    unread_count: int | None = None


@dataclass(frozen=True, slots=True)
class ThreadRoot:
    """What a send checks and updates of a would-be root."""

    id: int
    conversation_id: int
    is_reply: bool  # it is itself a thread reply: it cannot be a root
    deleted: bool
    reply_count: int
    participants: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    conversation_id: int
    seq: int
    sender_id: int | None  # None once the sender's account is erased
    client_msg_id: str
    body: str | None  # None once deleted (a tombstone stays)
    reply_to: int | None
    created_at: datetime
    edited_at: datetime | None = None
    deleted_at: datetime | None = None
    expires_at: datetime | None = None
    reactions: dict[str, int] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()  # in the order sent; none once deleted
    # Threads (docs/threads.md): the root this message replies in, if it is a thread
    # reply; the summary of its own thread, if it is a root that ever had a reply.
    thread_root_id: int | None = None
    thread: ThreadSummary | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


def not_found(what: str = "conversation") -> NotFound:
    """Non-members learn nothing: a conversation they are not in does not exist."""
    return NotFound(f"no such {what}", code=f"{what}_not_found")


def direct_key(a: int, b: int) -> str:
    """The one key of the direct conversation between a and b, whoever started it."""
    lo, hi = (a, b) if a < b else (b, a)
    return f"{lo}:{hi}"


def check_body(body: str, *, attachments: bool = False) -> str:
    """A message's text. With ``attachments`` (the message carries files) it may be
    empty, though never blank: ``""`` is no text at all, ``"  "`` is a mistake."""
    if attachments and body == "":
        return body
    if not body.strip():
        raise InvalidInput("a message needs a body", code="empty_body", details={"field": "body"})
    if len(body) > BODY_MAX:
        raise InvalidInput(
            f"a message is at most {BODY_MAX} characters",
            code="body_too_long",
            details={"field": "body", "max": BODY_MAX},
        )
    return check_no_control_chars(body, field="body", allow_newlines=True)


def check_client_msg_id(value: str) -> str:
    if not _CLIENT_MSG_ID.fullmatch(value):
        raise InvalidInput(
            "client_msg_id must be 1-64 characters of A-Z a-z 0-9 _ . : -",
            code="invalid_client_msg_id",
            details={"field": "client_msg_id"},
        )
    return value


def check_title(value: str) -> str:
    check_no_control_chars(value, field="title")
    if len(value) > TITLE_MAX or not _TITLE.fullmatch(value):
        raise InvalidInput(
            f"title must be 1-{TITLE_MAX} characters",
            code="invalid_title",
            details={"field": "title"},
        )
    return value.strip()


def check_ttl(value: int | None) -> int | None:
    if value is None or value == 0:
        return None
    if not 1 <= value <= MAX_TTL_SECONDS:
        raise InvalidInput(
            f"message_ttl_seconds must be 1..{MAX_TTL_SECONDS}, or 0/null to turn it off",
            code="invalid_ttl",
            details={"field": "message_ttl_seconds"},
        )
    return value


def check_emoji(value: str) -> str:
    check_no_control_chars(value, field="emoji")
    if not _EMOJI.fullmatch(value):
        raise InvalidInput("not a reaction", code="invalid_emoji", details={"field": "emoji"})
    return value


def check_manager(member: Member) -> None:
    if not member.role.manages:
        raise Forbidden("only the owner or an admin may do that", code="not_an_admin")


# The other member of a direct conversation as a send checks them: id, status and DM
# policy (None: no such user), the edge types from the sender to them.
Peer = tuple[int, str | None, str | None, set[EdgeType]]


@dataclass(frozen=True, slots=True)
class SendTarget:
    """What a group of sends needs of a conversation it holds locked."""

    kind: ConversationKind
    last_seq: int
    message_ttl_seconds: int | None


@dataclass(frozen=True, slots=True)
class SendFacts:
    """What a group of sends reads once its conversations are locked."""

    members: dict[int, set[int]]  # conversation -> its members
    earlier: dict[tuple[int, int, str], int]  # key -> the message sent under it before
    peers: dict[tuple[int, int], Peer]  # (sender, direct conversation) -> its other member
