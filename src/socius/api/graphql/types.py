"""The GraphQL object types, and the functions that fill them from what the services return.

They show the same fields as the REST bodies (api/rest/*views.py), in camelCase, with a few
links REST leaves to a second request (a message's ``sender``, a member's ``user``, a user's
``relationship``), each read through a DataLoader (loaders.py), so a page of them costs a
bounded number of statements, not one per item.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from socius.api.graphql.context import loaders
from socius.domain.conversations import Member as DomainMember
from socius.domain.conversations import Message as DomainMessage
from socius.domain.graph import Relationship as DomainRelationship
from socius.domain.notifications import Notification as DomainNotification
from socius.domain.users import User as DomainUser
from socius.services.profiles import Profile
from socius.services.threads import thread_payload

__all__ = [
    "Me",
    "Member",
    "Message",
    "Notification",
    "Presence",
    "Reaction",
    "ReadPointer",
    "Relationship",
    "StreamEvent",
    "Suggestion",
    "User",
    "me_of",
    "member_of",
    "message_of",
    "message_of_payload",
    "notification_of",
    "relationship_of",
    "user_of",
]


def _id(value: int | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(value))


@strawberry.type(description="What a user is to you, from your side.")
class Relationship:
    user_id: strawberry.ID
    friend: bool
    request_sent: bool
    request_received: bool
    following: bool
    followed_by: bool
    follow_requested: bool
    blocking: bool
    blocked_by: bool
    muting: bool


def relationship_of(rel: DomainRelationship) -> Relationship:
    return Relationship(
        user_id=strawberry.ID(str(rel.user_id)),
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


@strawberry.type(description="A public profile: what anyone signed in may see of a user.")
class User:
    id: strawberry.ID
    username: str
    display_name: str
    bio: str
    avatar_url: str | None
    is_private: bool
    friends_count: int
    followers_count: int
    following_count: int
    created_at: datetime

    @strawberry.field(description="What this user is to you (batched for a whole page).")
    async def relationship(self, info: strawberry.Info) -> Relationship:
        return relationship_of(await loaders(info).relationships.load(int(self.id)))


def user_of(p: Profile) -> User:
    return User(
        id=strawberry.ID(str(p.id)),
        username=p.username,
        display_name=p.display_name,
        bio=p.bio,
        avatar_url=p.avatar_url,
        is_private=p.is_private,
        friends_count=p.friends_count,
        followers_count=p.followers_count,
        following_count=p.following_count,
        created_at=p.created_at,
    )


@strawberry.type(description="Your own account: the public profile and the private fields.")
class Me(User):
    email: str | None
    dm_policy: str
    settings: JSON
    updated_at: datetime


def me_of(user: DomainUser, profile: Profile | None) -> Me:
    return Me(
        id=strawberry.ID(str(user.id)),
        username=user.username,
        display_name=user.display_name,
        bio=user.bio,
        avatar_url=user.avatar_url,
        is_private=user.is_private,
        friends_count=profile.friends_count if profile else 0,
        followers_count=profile.followers_count if profile else 0,
        following_count=profile.following_count if profile else 0,
        created_at=user.created_at,
        email=user.email,
        dm_policy=user.dm_policy.value,
        settings=JSON(user.settings),
        updated_at=user.updated_at,
    )


@strawberry.type
class Reaction:
    emoji: str
    count: int


@strawberry.type(
    description="A file sent with a message; its bytes are at GET /v1/attachments/{id}."
)
class Attachment:
    id: strawberry.ID
    content_type: str
    size: int
    sha256: str
    width: int | None
    height: int | None
    filename: str | None


@strawberry.type(
    description="A root's thread (docs/threads.md): its live replies, when the newest was "
    "sent, and up to 10 distinct repliers in the order they first replied."
)
class Thread:
    reply_count: int
    last_reply_at: datetime | None
    participants: list[strawberry.ID]


def _thread(t: dict[str, Any] | None) -> Thread | None:
    if t is None:
        return None
    return Thread(
        reply_count=t["reply_count"],
        last_reply_at=_time(t["last_reply_at"]),
        participants=[strawberry.ID(str(u)) for u in t["participants"]],
    )


def _attachments(items: list[dict[str, Any]]) -> list[Attachment]:
    return [
        Attachment(
            id=strawberry.ID(str(a["id"])),
            content_type=a["content_type"],
            size=a["size"],
            sha256=a["sha256"],
            width=a.get("width"),
            height=a.get("height"),
            filename=a.get("filename"),
        )
        for a in items
    ]


@strawberry.type(description="A message; a deleted one is a tombstone (`body` null).")
class Message:
    id: strawberry.ID
    conversation_id: strawberry.ID
    seq: int
    sender_id: strawberry.ID | None
    client_msg_id: str
    body: str | None
    reply_to: strawberry.ID | None
    created_at: datetime
    edited_at: datetime | None
    deleted: bool
    reactions: list[Reaction]
    attachments: list[Attachment]
    thread_root_id: strawberry.ID | None = strawberry.field(
        default=None, description="A thread reply: the root of its thread."
    )
    thread: Thread | None = strawberry.field(
        default=None, description="A root that ever had a reply: its thread."
    )

    @strawberry.field(
        description="The sender's profile; null for an erased account or across a block."
    )
    async def sender(self, info: strawberry.Info) -> User | None:
        if self.sender_id is None:
            return None
        found = await loaders(info).users.load(int(self.sender_id))
        return None if found is None else user_of(found)


def _reactions(counts: dict[str, int]) -> list[Reaction]:
    return [Reaction(emoji=e, count=n) for e, n in counts.items()]


def message_of(m: DomainMessage) -> Message:
    return Message(
        id=strawberry.ID(str(m.id)),
        conversation_id=strawberry.ID(str(m.conversation_id)),
        seq=m.seq,
        sender_id=_id(m.sender_id),
        client_msg_id=m.client_msg_id,
        body=m.body,
        reply_to=_id(m.reply_to),
        created_at=m.created_at,
        edited_at=m.edited_at,
        deleted=m.deleted,
        reactions=_reactions(m.reactions),
        attachments=_attachments([a.snapshot() for a in m.attachments]),
        thread_root_id=_id(m.thread_root_id),
        thread=_thread(None if m.thread is None else thread_payload(m.thread)),
    )


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def message_of_payload(p: dict[str, Any]) -> Message:
    """A message as events carry it (services.messaging.message_payload)."""
    created = _time(p["created_at"])
    assert created is not None
    return Message(
        id=strawberry.ID(p["id"]),
        conversation_id=strawberry.ID(p["conversation_id"]),
        seq=p["seq"],
        sender_id=p["sender_id"],
        client_msg_id=p["client_msg_id"],
        body=p["body"],
        reply_to=p["reply_to"],
        created_at=created,
        edited_at=_time(p["edited_at"]),
        deleted=p["deleted"],
        reactions=_reactions(p["reactions"]),
        attachments=_attachments(p.get("attachments", [])),
        thread_root_id=p.get("thread_root_id"),
        thread=_thread(p.get("thread")),
    )


@strawberry.type(description="A member of a conversation.")
class Member:
    user_id: strawberry.ID
    role: str
    joined_at: datetime
    last_read_seq: int

    @strawberry.field(description="Their profile; null for an erased account or across a block.")
    async def user(self, info: strawberry.Info) -> User | None:
        found = await loaders(info).users.load(int(self.user_id))
        return None if found is None else user_of(found)


def member_of(m: DomainMember) -> Member:
    return Member(
        user_id=strawberry.ID(str(m.user_id)),
        role=m.role.value,
        joined_at=m.joined_at,
        last_read_seq=m.last_read_seq,
    )


@strawberry.type(description="Your read pointer in a conversation.")
class ReadPointer:
    conversation_id: strawberry.ID
    last_read_seq: int


@strawberry.type(description="A notification of your inbox.")
class Notification:
    id: strawberry.ID
    type: str
    payload: JSON
    created_at: datetime
    read: bool


def notification_of(n: DomainNotification) -> Notification:
    return Notification(
        id=strawberry.ID(str(n.id)),
        type=n.type,
        payload=JSON(n.payload),
        created_at=n.created_at,
        read=n.read,
    )


@strawberry.type(description="Whether a friend is online.")
class Presence:
    user_id: strawberry.ID
    online: bool
    last_seen_at: datetime | None


@strawberry.type(description="Someone you may know.")
class Suggestion:
    user: User
    mutual_count: int
    score: float


@strawberry.type(
    description="One item of the `events` subscription: an event of your log (`cursor` "
    "resumes right after it), an ephemeral one (`typing`, `presence`: no cursor), or, "
    "once, `ready` (the replay after your cursor is done; `cursor` is where you are)."
)
class StreamEvent:
    type: str
    cursor: str | None
    event: JSON | None
