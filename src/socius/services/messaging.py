"""Conversations and messages.

Every change to a conversation takes its row lock first (PostgreSQL ``FOR UPDATE``;
SQLite's single writer), so per conversation: message numbers are gap-free and handed out
in commit order, a retried send finds the original, and events reach each member's log in
the conversation's order.

Blocks and mutes (docs/architecture.md, "Blocks and mutes"): a direct conversation
between two users blocked either way is read-only for both (403 ``blocked`` for send,
edit, react, read pointer, typing and settings; history stays readable, and deleting
your own message or taking back your own reaction stays allowed). In any conversation,
typing and read receipts never reach someone blocked either way with their sender, and
typing never reaches someone who mutes its sender. Messages in groups stay visible.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from socius.domain.attachments import Attachment, check_attachment_count
from socius.domain.conversations import (
    MAX_GROUP_MEMBERS,
    Conversation,
    ConversationKind,
    Member,
    Message,
    Peer,
    Role,
    SendTarget,
    check_body,
    check_client_msg_id,
    check_emoji,
    check_manager,
    check_title,
    check_ttl,
    direct_key,
    not_found,
)
from socius.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    Unavailable,
)
from socius.domain.events import Event
from socius.domain.graph import EdgeType, check_not_self
from socius.domain.ids import IdGenerator
from socius.domain.pagination import (
    ActivityPosition,
    MemberPosition,
    check_limit,
    decode_cursor,
    encode_cursor,
)
from socius.domain.reports import Decision, Verdict
from socius.domain.users import DmPolicy, UserStatus
from socius.services import erasure, threads
from socius.services.attachments import check_attachable, link_attachments
from socius.services.delivery import Delivery
from socius.services.group_commit import GroupCommit
from socius.services.moderation import MessageDraft, Moderation
from socius.services.ports import Clock, UnitOfWork, UnitOfWorkFactory
from socius.services.rate_limits import UserLimits

__all__ = [
    "ConversationPage",
    "ConversationView",
    "MessagingService",
    "SendGroups",
    "conversation_payload",
    "message_payload",
    "tombstone_payload",
]

log = structlog.get_logger("socius.messaging")


@dataclass(frozen=True, slots=True)
class ConversationView:
    conversation: Conversation
    member: Member
    last_message: Message | None = None
    member_ids: list[int] | None = None  # direct conversations: both members

    @property
    def unread_count(self) -> int:
        return max(0, self.conversation.last_seq - self.member.last_read_seq)


@dataclass(frozen=True, slots=True)
class ConversationPage:
    items: list[ConversationView]
    next_cursor: str | None


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def message_payload(m: Message) -> dict[str, Any]:
    """A message as events carry it and the API returns it."""
    return {
        "id": str(m.id),
        "conversation_id": str(m.conversation_id),
        "seq": m.seq,
        "sender_id": None if m.sender_id is None else str(m.sender_id),
        "client_msg_id": m.client_msg_id,
        "body": m.body,
        "reply_to": None if m.reply_to is None else str(m.reply_to),
        "created_at": _time(m.created_at),
        "edited_at": _time(m.edited_at),
        "deleted": m.deleted,
        "reactions": m.reactions,
        "attachments": [a.snapshot() for a in m.attachments],
        # threads (services/threads.py)
        "thread_root_id": None if m.thread_root_id is None else str(m.thread_root_id),
        "thread": None if m.thread is None else threads.thread_payload(m.thread),
    }


def tombstone_payload(m: Message) -> dict[str, Any]:
    """What stays of a deleted message ``m`` (as it is once deleted) in the logs: the
    ``message.deleted`` event that also takes the place of every event about it."""
    return {
        "conversation_id": str(m.conversation_id),
        "message_id": str(m.id),
        "seq": m.seq,
        "message": message_payload(m),
    }


def conversation_payload(c: Conversation) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "kind": c.kind.value,
        "title": c.title,
        "owner_id": None if c.owner_id is None else str(c.owner_id),
        "message_ttl_seconds": c.message_ttl_seconds,
        "member_count": c.member_count,
        "last_seq": c.last_seq,
    }


@dataclass(frozen=True, slots=True)
class _Send:
    actor: int
    conversation_id: int
    client_msg_id: str
    body: str
    reply_to: int | None
    attachment_ids: tuple[int, ...] = ()
    thread_root_id: int | None = None  # a thread reply (services/threads.py)

    @property
    def key(self) -> tuple[int, int, str]:
        """What makes a send the retry of another (one message per key)."""
        return (self.conversation_id, self.actor, self.client_msg_id)

    @property
    def plain(self) -> bool:
        """No attachments, not a thread reply: a group of such sends may go on the driver."""
        return not self.attachment_ids and self.thread_root_id is None

    def locks(self) -> tuple[tuple[str, int], ...]:
        """What its group locks that another group in flight must not (decision 0055):
        its conversation (and the rows under it: members, thread roots), and with
        attachments the sender's uploads."""
        if self.attachment_ids:
            return (("c", self.conversation_id), ("a", self.actor))
        return (("c", self.conversation_id),)

    def message(
        self,
        message_id: int,
        seq: int,
        now: datetime,
        ttl: int | None,
        attachments: Sequence[Attachment],
    ) -> Message:
        """The message this send stores (in a group or alone)."""
        return Message(
            id=message_id,
            conversation_id=self.conversation_id,
            seq=seq,
            sender_id=self.actor,
            client_msg_id=self.client_msg_id,
            body=self.body,
            reply_to=self.reply_to,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl) if ttl else None,
            attachments=tuple(attachments),
            thread_root_id=self.thread_root_id,
        )


class _OffDriver(Exception):
    """A group on the driver met a retry: run it again on the SQL toolkit's path."""


def _bad_reply_to() -> InvalidInput:
    return InvalidInput(
        "reply_to is not a message of this conversation",
        code="invalid_reply_to",
        details={"field": "reply_to"},
    )


@dataclass(frozen=True, slots=True)
class SendGroups:
    """How sends are grouped (settings ``send_group_max``, ``send_group_window_ms``,
    ``send_groups_in_flight``)."""

    max_group: int = 128
    window: float = 0.002  # seconds
    in_flight: int = 1  # groups committing at once (decision 0055)
    on_driver: bool = False  # plain groups on the driver (PostgreSQL, decision 0060)
    on_group: Callable[[int], None] = lambda _size: None
    on_done: Callable[[float], None] = lambda _seconds: None  # a group's wall time


class MessagingService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        delivery: Delivery,
        *,
        limits: UserLimits | None = None,
        groups: SendGroups | None = None,
        moderation: Moderation | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._delivery = delivery
        self._limits = limits or UserLimits.off()
        grouping = groups or SendGroups()
        self._on_driver = grouping.on_driver
        self._sends: GroupCommit[_Send, tuple[Message, bool]] = GroupCommit(
            self._send_group,
            max_group=grouping.max_group,
            window=grouping.window,
            in_flight=grouping.in_flight,
            keys=_Send.locks,
            on_group=grouping.on_group,
            on_done=grouping.on_done,
        )
        # Set by bootstrap: deletes the bytes of attachments doomed by a commit.
        self.on_attachments_doomed: Callable[[], Awaitable[None]] | None = None
        # The moderation hook (services/moderation.py; None: nothing configured) and,
        # set by bootstrap, what reports a flagged message (services/reports.py).
        self._moderation = moderation
        self.on_flagged: Callable[[Message, Verdict], Awaitable[object]] | None = None

    # helpers -------------------------------------------------------------------------

    async def _membership(
        self, uow: UnitOfWork, actor: int, conversation_id: int, *, lock: bool = False
    ) -> tuple[Conversation, Member]:
        conversation, member = await uow.conversations.with_member(
            conversation_id, actor, lock=lock
        )
        if conversation is None or member is None:
            raise not_found()
        return conversation, member

    async def _tell_members(
        self,
        uow: UnitOfWork,
        conversation_id: int,
        type_: str,
        payload: dict[str, Any],
        *,
        also: list[int] | None = None,
        members: list[int] | None = None,
        about: int | None = None,
    ) -> None:
        """Log an event for every member (``members``: the ids, when already read;
        ``about``: the message it is about, so that erasing it can find the event)."""
        recipients = (
            list(members)
            if members is not None
            else await uow.conversations.member_ids(conversation_id)
        )
        for extra in also or []:
            if extra not in recipients:
                recipients.append(extra)
        await self._delivery.record(
            uow, [Event(u, type_, payload, message_id=about) for u in recipients]
        )

    async def _writable(
        self, uow: UnitOfWork, actor: int, conversation_id: int, *, lock: bool = False
    ) -> tuple[Conversation, Member]:
        """``_membership`` of a conversation ``actor`` may change: not a direct one across
        a block either way (read in the same statement as the membership)."""
        conversation, member, blocked = await uow.conversations.with_member_and_block(
            conversation_id, actor, lock=lock
        )
        if conversation is None or member is None:
            raise not_found()
        if blocked:
            raise Forbidden(
                "this conversation is read-only: one of you has blocked the other",
                code="blocked",
            )
        return conversation, member

    async def _check_reachable(self, uow: UnitOfWork, actor: int, other: int) -> None:
        """May ``actor`` open or write a direct conversation with ``other``?"""
        user = await uow.users.get(other)
        if user is None or not user.is_active:
            raise NotFound("no such user", code="user_not_found")
        edges = await uow.edges.types_between(actor, other)
        if EdgeType.BLOCKS in edges or EdgeType.BLOCKED_BY in edges:
            raise Forbidden("you cannot message this user", code="blocked")
        if user.dm_policy is DmPolicy.FRIENDS and EdgeType.FRIEND not in edges:
            raise Forbidden("this user only takes messages from friends", code="dm_not_allowed")

    # conversations -------------------------------------------------------------------

    async def open_direct(self, actor: int, other: int) -> tuple[ConversationView, bool]:
        """The one direct conversation between the two, created on first use; and whether
        this call created it."""
        check_not_self(actor, other)
        key = direct_key(actor, other)
        created_now = False
        async with self._uow() as uow:
            await self._check_reachable(uow, actor, other)
            existing = await uow.conversations.by_direct_key(key)
            if existing is None:
                now = self._clock()
                conversation = Conversation(
                    id=self._ids.next_id(),
                    kind=ConversationKind.DIRECT,
                    title=None,
                    owner_id=None,
                    message_ttl_seconds=None,
                    last_seq=0,
                    member_count=0,
                    created_at=now,
                    updated_at=now,
                )
                if await uow.conversations.add(conversation, direct_key=key):
                    await uow.conversations.add_members(
                        conversation.id,
                        [(actor, Role.MEMBER), (other, Role.MEMBER)],
                        now,
                        read_seq=0,
                    )
                    created = await uow.conversations.get(conversation.id)
                    assert created is not None
                    await self._delivery.domain(
                        uow, "conversation.created", _conversation_data(created, actor, 2)
                    )
                    await self._tell_members(
                        uow,
                        created.id,
                        "conversation.updated",
                        {"conversation": conversation_payload(created)},
                    )
                    await uow.commit()
                    existing, created_now = created, True
                else:  # another request created it first
                    existing = await uow.conversations.by_direct_key(key)
            assert existing is not None
        return await self.get(actor, existing.id), created_now

    async def create_group(self, actor: int, title: str, member_ids: list[int]) -> ConversationView:
        name = check_title(title)
        others = [u for u in dict.fromkeys(member_ids) if u != actor]
        if len(others) + 1 > MAX_GROUP_MEMBERS:
            raise InvalidInput(
                f"a group has at most {MAX_GROUP_MEMBERS} members",
                code="too_many_members",
                details={"field": "member_ids"},
            )
        await self._limits.groups.check(actor)
        async with self._uow() as uow:
            await self._check_addable(uow, actor, others)
            now = self._clock()
            conversation = Conversation(
                id=self._ids.next_id(),
                kind=ConversationKind.GROUP,
                title=name,
                owner_id=actor,
                message_ttl_seconds=None,
                last_seq=0,
                member_count=0,
                created_at=now,
                updated_at=now,
            )
            await uow.conversations.add(conversation, direct_key=None)
            roles = [(actor, Role.OWNER)] + [(u, Role.MEMBER) for u in others]
            await uow.conversations.add_members(conversation.id, roles, now, read_seq=0)
            created = await uow.conversations.get(conversation.id)
            assert created is not None
            payload = {
                "conversation": conversation_payload(created),
                "user_ids": [str(u) for u in [actor, *others]],
                "by": str(actor),
            }
            events = [Event(u, "member.added", payload) for u in [actor, *others]]
            await self._delivery.record(
                uow, events, notify=await self._unmuted(uow, actor, events[1:])
            )
            await self._delivery.domain(
                uow, "conversation.created", _conversation_data(created, actor, len(events))
            )
            await uow.commit()
        return await self.get(actor, conversation.id)

    async def _unmuted(self, uow: UnitOfWork, actor: int, events: list[Event]) -> list[Event]:
        """Those of ``events`` whose recipient does not mute ``actor``: a mute keeps the
        events (the state they tell) but not the notifications."""
        if not events:
            return []
        muters = await uow.edges.has_from([e.user_id for e in events], EdgeType.MUTES, actor)
        return [e for e in events if e.user_id not in muters]

    async def _check_addable(self, uow: UnitOfWork, actor: int, user_ids: list[int]) -> None:
        if not user_ids:
            return
        found = {u.id: u for u in await uow.users.get_many(user_ids)}
        missing = [u for u in user_ids if u not in found or not found[u].is_active]
        if missing:
            raise NotFound(
                "no such user",
                code="user_not_found",
                details={"user_ids": [str(u) for u in missing]},
            )
        relations = await uow.edges.types_between_many(actor, user_ids)
        blocked = [
            u for u, t in relations.items() if EdgeType.BLOCKS in t or EdgeType.BLOCKED_BY in t
        ]
        if blocked:
            raise Forbidden(
                "you cannot add these users",
                code="blocked",
                details={"user_ids": [str(u) for u in blocked]},
            )

    async def get(self, actor: int, conversation_id: int) -> ConversationView:
        async with self._uow(write=False) as uow:
            conversation, member = await self._membership(uow, actor, conversation_id)
            last = await uow.conversations.last_messages([conversation_id])
            ids = (
                await uow.conversations.member_ids(conversation_id)
                if conversation.kind is ConversationKind.DIRECT
                else None
            )
        return ConversationView(conversation, member, last.get(conversation_id), ids)

    async def list_for(
        self, actor: int, *, limit: int | None, cursor: str | None
    ) -> ConversationPage:
        size = check_limit(limit)
        position = decode_cursor(cursor, ActivityPosition)
        before = None if position is None else (position.t, position.c)
        async with self._uow(write=False) as uow:
            rows = await uow.conversations.for_user(actor, limit=size + 1, before=before)
            shown = rows[:size]
            last = await uow.conversations.last_messages([c.id for c, _ in shown])
            direct = [c.id for c, _ in shown if c.kind is ConversationKind.DIRECT]
            pairs = await uow.conversations.member_ids_many(direct) if direct else {}
            views = [ConversationView(c, m, last.get(c.id), pairs.get(c.id)) for c, m in shown]
        next_cursor = None
        if len(rows) > size and shown:
            c = shown[-1][0]
            activity = c.last_message_at or c.created_at
            next_cursor = encode_cursor(ActivityPosition(c=c.id, t=activity))
        return ConversationPage(views, next_cursor)

    async def update(
        self, actor: int, conversation_id: int, changes: dict[str, Any]
    ) -> ConversationView:
        values: dict[str, Any] = {}
        async with self._uow() as uow:
            conversation, member = await self._writable(uow, actor, conversation_id, lock=True)
            if "title" in changes:
                if conversation.kind is ConversationKind.DIRECT:
                    raise InvalidInput(
                        "a direct conversation has no title",
                        code="direct_conversation",
                        details={"field": "title"},
                    )
                check_manager(member)
                values["title"] = check_title(str(changes["title"]))
            if "message_ttl_seconds" in changes:
                if conversation.kind is ConversationKind.GROUP:
                    check_manager(member)
                values["message_ttl_seconds"] = check_ttl(changes["message_ttl_seconds"])
            if values:
                values["updated_at"] = self._clock()
                updated = await uow.conversations.update(conversation_id, **values)
                assert updated is not None
                await self._tell_members(
                    uow,
                    conversation_id,
                    "conversation.updated",
                    {"conversation": conversation_payload(updated)},
                )
                await uow.commit()
        return await self.get(actor, conversation_id)

    async def members(
        self, actor: int, conversation_id: int, *, limit: int | None, cursor: str | None
    ) -> tuple[list[Member], str | None]:
        size = check_limit(limit)
        position = decode_cursor(cursor, MemberPosition)
        after = position.u if position else None
        async with self._uow(write=False) as uow:
            await self._membership(uow, actor, conversation_id)
            found = await uow.conversations.members(
                conversation_id, limit=size + 1, after_user_id=after
            )
        shown = found[:size]
        more = len(found) > size and shown
        return shown, encode_cursor(MemberPosition(u=shown[-1].user_id)) if more else None

    async def first_members(
        self, actor: int, conversation_ids: Sequence[int], *, limit: int | None
    ) -> dict[int, tuple[list[Member], str | None]]:
        """``members`` (first page) of several conversations in one statement; those
        ``actor`` is not a member of are left out (a caller treats them as not found)."""
        size = check_limit(limit)
        async with self._uow(write=False) as uow:
            found = await uow.conversations.first_members(
                list(dict.fromkeys(conversation_ids)), actor, limit=size + 1
            )
        pages = {}
        for cid, rows in found.items():
            shown = rows[:size]
            more = len(rows) > size and shown
            pages[cid] = (
                shown,
                encode_cursor(MemberPosition(u=shown[-1].user_id)) if more else None,
            )
        return pages

    async def add_members(
        self, actor: int, conversation_id: int, user_ids: list[int]
    ) -> ConversationView:
        wanted = [u for u in dict.fromkeys(user_ids) if u != actor]
        async with self._uow() as uow:
            conversation, member = await self._membership(uow, actor, conversation_id, lock=True)
            if conversation.kind is ConversationKind.DIRECT:
                raise InvalidInput(
                    "members of a direct conversation cannot change", code="direct_conversation"
                )
            check_manager(member)
            present = set(await uow.conversations.member_ids(conversation_id))
            fresh = [u for u in wanted if u not in present]
            if len(present) + len(fresh) > MAX_GROUP_MEMBERS:
                raise Conflict(
                    f"a group has at most {MAX_GROUP_MEMBERS} members", code="too_many_members"
                )
            await self._check_addable(uow, actor, fresh)
            if fresh:
                now = self._clock()
                await uow.conversations.add_members(
                    conversation_id,
                    [(u, Role.MEMBER) for u in fresh],
                    now,
                    read_seq=conversation.last_seq,
                )
                updated = await uow.conversations.get(conversation_id)
                assert updated is not None
                payload = {
                    "conversation": conversation_payload(updated),
                    "user_ids": [str(u) for u in fresh],
                    "by": str(actor),
                }
                recipients = sorted(present | set(fresh))
                events = [Event(u, "member.added", payload) for u in recipients]
                told = [e for e in events if e.user_id in fresh]
                await self._delivery.record(
                    uow, events, notify=await self._unmuted(uow, actor, told)
                )
                await self._delivery.domain(
                    uow,
                    "conversation.members_added",
                    {"conversation_id": conversation_id, "actor_id": actor, "user_ids": fresh},
                )
                await uow.commit()
        return await self.get(actor, conversation_id)

    async def remove_member(self, actor: int, conversation_id: int, user_id: int) -> None:
        """Leave (``user_id`` is the caller) or remove someone (owner or admin)."""
        async with self._uow() as uow:
            conversation, member = await self._membership(uow, actor, conversation_id, lock=True)
            if conversation.kind is ConversationKind.DIRECT:
                raise InvalidInput(
                    "members of a direct conversation cannot change", code="direct_conversation"
                )
            target = await uow.conversations.member(conversation_id, user_id)
            if target is None:
                raise NotFound("no such member", code="member_not_found")
            if user_id != actor:
                check_manager(member)
                if target.role is not Role.MEMBER and member.role is not Role.OWNER:
                    raise Forbidden("only the owner may remove an admin", code="not_the_owner")
            await uow.conversations.remove_member(conversation_id, user_id)
            if target.role is Role.OWNER:
                await self._hand_over(uow, conversation_id)
            await self._tell_members(
                uow,
                conversation_id,
                "member.removed",
                {
                    "conversation_id": str(conversation_id),
                    "user_id": str(user_id),
                    "by": str(actor),
                },
                also=[user_id],
            )
            await self._delivery.domain(
                uow,
                "conversation.member_removed",
                {"conversation_id": conversation_id, "actor_id": actor, "user_id": user_id},
            )
            await uow.commit()

    async def _hand_over(self, uow: UnitOfWork, conversation_id: int) -> None:
        """The owner left: the longest-standing admin, else member, takes over."""
        remaining = await uow.conversations.members(
            conversation_id, limit=MAX_GROUP_MEMBERS, after_user_id=None
        )
        if not remaining:
            await uow.conversations.update(conversation_id, owner_id=None)
            return
        heir = min(remaining, key=lambda m: (m.role is not Role.ADMIN, m.joined_at, m.user_id))
        await uow.conversations.set_role(conversation_id, heir.user_id, Role.OWNER)
        await uow.conversations.update(conversation_id, owner_id=heir.user_id)

    async def set_role(self, actor: int, conversation_id: int, user_id: int, role: Role) -> Member:
        if role is Role.OWNER:
            raise InvalidInput(
                "there is one owner; roles are admin or member",
                code="invalid_role",
                details={"field": "role"},
            )
        async with self._uow() as uow:
            _, member = await self._membership(uow, actor, conversation_id, lock=True)
            if member.role is not Role.OWNER:
                raise Forbidden("only the owner may change roles", code="not_the_owner")
            if user_id == actor:
                raise InvalidInput("the owner's role cannot change", code="invalid_role")
            if not await uow.conversations.set_role(conversation_id, user_id, role):
                raise NotFound("no such member", code="member_not_found")
            updated = await uow.conversations.member(conversation_id, user_id)
            assert updated is not None
            await uow.commit()
        return updated

    async def set_muted(self, actor: int, conversation_id: int, muted: bool) -> ConversationView:
        """Mute (or unmute) the conversation for ``actor`` alone: no notifications (nor,
        later, push) for it; unread counts as usual. Idempotent; the actor's own devices
        hear of a change (``conversation.muted``)."""
        async with self._uow() as uow:
            _, member = await self._membership(uow, actor, conversation_id, lock=True)
            if member.muted != muted:
                await uow.conversations.set_muted(conversation_id, actor, muted)
                payload = {"conversation_id": str(conversation_id), "muted": muted}
                await self._delivery.record(uow, [Event(actor, "conversation.muted", payload)])
                await uow.commit()
        return await self.get(actor, conversation_id)

    # messages ------------------------------------------------------------------------

    async def send(
        self,
        actor: int,
        conversation_id: int,
        *,
        client_msg_id: str,
        body: str,
        reply_to: int | None,
        attachment_ids: Sequence[int] = (),
        thread_root_id: int | None = None,
    ) -> tuple[Message, bool]:
        """The message, and whether it is new (False: a retry found the original).

        Concurrent sends share one transaction (group commit, decision 0011); this
        returns once the group has committed. What is wrong with one send (its input, its
        rate, its conversation) is its own answer and fails no other send of its group.
        ``attachment_ids``: the actor's own uploads not sent yet (services/attachments.py)."""
        check_client_msg_id(client_msg_id)
        check_body(body, attachments=bool(attachment_ids))
        await self._limits.messages.check(actor)
        attached = tuple(check_attachment_count(list(attachment_ids)))
        verdict = None
        if self._moderation is not None:  # per request, before the group (decision 0023)
            draft = MessageDraft(actor, conversation_id, body, None, len(attached))
            verdict = await self._moderation.judge(draft)  # a reject raises here
        message, created = await self._sends.submit(
            _Send(
                actor,
                conversation_id,
                client_msg_id,
                body,
                reply_to,
                attached,
                thread_root_id,
            )
        )
        if verdict is not None and created:
            await self._flagged(message, verdict)
        return message, created

    async def _flagged(self, message: Message, verdict: Verdict) -> None:
        """The moderation hook flagged ``message`` (now stored): report it, by the system,
        for administrators. A report that cannot be written is logged; the message stays."""
        if verdict.decision is not Decision.FLAG or self.on_flagged is None:
            return
        try:
            await self.on_flagged(message, verdict)
        except Exception:
            log.exception("flag_report_failed", message_id=message.id)

    async def _send_group(self, ops: Sequence[_Send]) -> list[tuple[Message, bool] | Exception]:
        """Answer every send of a group: together in one transaction, or, when that
        transaction fails for another reason than an outage, each in its own."""
        try:
            if self._on_driver and all(op.plain for op in ops):
                try:
                    return await self._send_together(ops, driver=True)
                except _OffDriver:
                    pass  # rolled back before any write: the group again, on the toolkit
            return await self._send_together(ops)
        except Unavailable:
            raise  # every send of the group: 503
        except Exception:
            if len(ops) == 1:
                raise
            log.warning("send_group_failed", size=len(ops), exc_info=True)
        answers: list[tuple[Message, bool] | Exception] = []
        for op in ops:
            try:
                answers.append(await self._send_alone(op))
            except Exception as exc:
                answers.append(exc)
        return answers

    async def _send_together(
        self, ops: Sequence[_Send], *, driver: bool = False
    ) -> list[tuple[Message, bool] | Exception]:
        """One transaction for every send of ``ops``; each send is checked as ``_send_alone``
        checks it (same order, same errors), and those that fail are left out.

        ``driver`` (PostgreSQL, plain sends only): the unit of work on the driver, its
        locks sent with ``BEGIN`` (decision 0060: BEGIN + locks, facts, write, COMMIT);
        raises ``_OffDriver`` before writing anything when a send is a retry (whose
        original is read through the toolkit)."""
        answers: list[tuple[Message, bool] | Exception | None] = [None] * len(ops)
        async with self._uow(driver=driver) as uow:
            found: dict[int, SendTarget]
            if driver:
                found, facts = await uow.sends.lock_with_facts(
                    [op.conversation_id for op in ops],
                    sorted({op.key for op in ops}),
                    sorted({(op.actor, op.conversation_id) for op in ops}),
                )
            else:
                found = {
                    cid: SendTarget(c.kind, c.last_seq, c.message_ttl_seconds)
                    for cid, c in (await uow.sends.lock([op.conversation_id for op in ops])).items()
                }
                # Then what the checks read, in one statement on PostgreSQL (decision
                # 0055): for the sends to the conversations found, whoever sends them.
                sent = [op for op in ops if op.conversation_id in found]
                facts = await uow.sends.facts(
                    list(found),
                    sorted({op.key for op in sent}),
                    sorted(
                        {
                            (op.actor, op.conversation_id)
                            for op in sent
                            if found[op.conversation_id].kind is ConversationKind.DIRECT
                        }
                    ),
                )
            members = facts.members
            live: list[int] = []
            for i, op in enumerate(ops):
                if op.conversation_id in found and op.actor in members[op.conversation_id]:
                    live.append(i)
                else:
                    answers[i] = not_found()
            if driver and any(ops[i].key in facts.earlier for i in live):
                raise _OffDriver
            originals = await self._originals(uow, ops, live, facts.earlier)
            refused = _unreachable([ops[i] for i in live], facts.peers)
            replies = await uow.sends.in_conversations(
                [r for i in live if (r := ops[i].reply_to) is not None]
            )
            roots = await uow.threads.roots(
                [r for i in live if (r := ops[i].thread_root_id) is not None]
            )
            now = self._clock()
            last = {cid: c.last_seq for cid, c in found.items()}
            fresh: dict[tuple[int, int, str], Message] = {}
            new: list[Message] = []
            read: dict[tuple[int, int], int] = {}
            taken: set[int] = set()  # attachments claimed by this group's sends
            attach: list[tuple[int, list[Attachment], Message]] = []
            for i in live:
                op = ops[i]
                if op.key in originals:
                    answers[i] = (originals[op.key], False)
                    continue
                if op.key in fresh:  # the same send twice in this group
                    answers[i] = (fresh[op.key], False)
                    continue
                problem = refused.get((op.actor, op.conversation_id))
                if (
                    problem is None
                    and op.reply_to is not None
                    and replies.get(op.reply_to) != op.conversation_id
                ):
                    problem = _bad_reply_to()
                if problem is None and op.thread_root_id is not None:
                    problem = threads.check_root(roots.get(op.thread_root_id), op.conversation_id)
                attached: list[Attachment] = []
                if problem is None and op.attachment_ids:
                    try:
                        attached = await check_attachable(uow, op.actor, op.attachment_ids)
                    except DomainError as exc:
                        problem = exc
                    else:
                        if taken.intersection(op.attachment_ids):  # by a send of this group
                            problem = Conflict(
                                "an attachment goes with one message only; upload it again",
                                code="attachment_already_sent",
                            )
                        taken.update(op.attachment_ids)
                if problem is not None:
                    answers[i] = problem
                    continue
                conversation = found[op.conversation_id]
                seq = last[op.conversation_id] = last[op.conversation_id] + 1
                message = op.message(
                    self._ids.next_id(), seq, now, conversation.message_ttl_seconds, attached
                )
                if attached:
                    attach.append((op.actor, attached, message))
                fresh[op.key] = message
                new.append(message)
                read[(op.conversation_id, op.actor)] = seq
                answers[i] = (message, True)
            if new:
                advanced = {cid: seq for cid, seq in last.items() if seq != found[cid].last_seq}
                pointers = [(c, u, s) for (c, u), s in read.items()]
                # The durable stream (services/events.py): ids and metadata, never the body.
                domain = [
                    ("message.created", _created_data(m, found[m.conversation_id].kind), m.id)
                    for m in new
                ]
                events = [
                    Event(u, "message.created", payload, message_id=m.id)
                    for m in new
                    for payload in ({"message": message_payload(m)},)
                    for u in sorted(members[m.conversation_id])
                ]
                if uow.sends.writes_at_once and not attach:
                    # One statement (decision 0055); the log counters it takes stay
                    # locked to the commit.
                    stored = await uow.sends.write(
                        new,
                        advanced,
                        pointers,
                        self._delivery.prepare_domain_many(uow, domain),
                        events,
                        now,
                    )
                    self._delivery.publish_after_commit(uow, stored)
                else:
                    await uow.sends.insert(new)
                    for actor, items, message in attach:
                        # One taken meanwhile fails the group: each send is then tried
                        # alone.
                        await link_attachments(
                            uow, actor, items, message.id, message.conversation_id
                        )
                    await uow.sends.advance(advanced, now)
                    await uow.sends.read_up_to(pointers)
                    # Before the logs: their counters stay locked from here to the commit.
                    await self._delivery.domain_many(uow, domain)
                    await self._delivery.record(uow, events)
                await threads.add_replies(uow, self._delivery, new, roots, members, now)
                await uow.commit()
        done: list[tuple[Message, bool] | Exception] = []
        for answer in answers:
            assert answer is not None
            done.append(answer)
        return done

    async def _originals(
        self,
        uow: UnitOfWork,
        ops: Sequence[_Send],
        live: list[int],
        earlier: dict[tuple[int, int, str], int],
    ) -> dict[tuple[int, int, str], Message]:
        """The messages sent before under the keys of ``live`` sends (retries)."""
        found: dict[tuple[int, int, str], Message] = {}
        for i in live:
            key = ops[i].key
            if key in earlier and key not in found:
                message = await uow.conversations.message(key[0], earlier[key])
                if message is not None:
                    found[key] = message
        return found

    async def _send_alone(self, op: _Send) -> tuple[Message, bool]:
        """One send in its own transaction (a group whose transaction failed)."""
        actor, conversation_id = op.actor, op.conversation_id
        async with self._uow() as uow:
            conversation, _ = await self._membership(uow, actor, conversation_id, lock=True)
            existing = await uow.conversations.message_by_client_id(
                conversation_id, actor, op.client_msg_id
            )
            if existing is not None:
                return existing, False
            member_ids = await uow.conversations.member_ids(conversation_id)
            if conversation.kind is ConversationKind.DIRECT:
                for peer in member_ids:
                    if peer != actor:
                        await self._check_reachable(uow, actor, peer)
            if (
                op.reply_to is not None
                and await uow.conversations.message(conversation_id, op.reply_to) is None
            ):
                raise _bad_reply_to()
            # threads: the root must be a live, top-level message of this conversation
            roots = await uow.threads.roots([op.thread_root_id] if op.thread_root_id else [])
            if op.thread_root_id is not None and (
                bad := threads.check_root(roots.get(op.thread_root_id), conversation_id)
            ):
                raise bad
            attached = await check_attachable(uow, actor, op.attachment_ids)
            now = self._clock()
            seq = await uow.conversations.next_seq(conversation_id, now)
            message = op.message(
                self._ids.next_id(), seq, now, conversation.message_ttl_seconds, attached
            )
            await uow.conversations.add_message(message)
            await link_attachments(uow, actor, attached, message.id, conversation_id)
            await uow.conversations.advance_read(conversation_id, actor, seq)
            await self._tell_members(
                uow,
                conversation_id,
                "message.created",
                {"message": message_payload(message)},
                members=member_ids,
                about=message.id,
            )
            await threads.add_replies(
                uow, self._delivery, [message], roots, {conversation_id: member_ids}, now
            )
            # The durable stream (services/events.py): ids and metadata, never the body.
            await self._delivery.domain(
                uow,
                "message.created",
                _created_data(message, conversation.kind),
                message_id=message.id,
            )
            await uow.commit()
        return message, True

    async def history(
        self,
        actor: int,
        conversation_id: int,
        *,
        before_seq: int | None,
        after_seq: int | None,
        limit: int | None,
    ) -> list[Message]:
        size = check_limit(limit)
        async with self._uow(write=False) as uow:
            await self._membership(uow, actor, conversation_id)
            found = await uow.conversations.history(
                conversation_id, limit=size, before_seq=before_seq, after_seq=after_seq
            )
            return await threads.with_reads(uow, actor, found)

    async def _own_message(
        self,
        uow: UnitOfWork,
        actor: int,
        conversation_id: int,
        message_id: int,
        *,
        writes: bool = True,
    ) -> tuple[Member, Message]:
        """The actor's membership and the message. ``writes``: the change adds something
        (an edit, a reaction), refused across a block; taking one's own back is not."""
        check = self._writable if writes else self._membership
        _, member = await check(uow, actor, conversation_id, lock=True)
        message = await uow.conversations.message(conversation_id, message_id)
        if message is None:
            raise not_found("message")
        return member, message

    async def edit(self, actor: int, conversation_id: int, message_id: int, body: str) -> Message:
        check_body(body)
        if self._moderation is None:
            return await self._edit(actor, conversation_id, message_id, body)
        draft = MessageDraft(actor, conversation_id, body, message_id)
        verdict = await self._moderation.judge(draft)  # a reject raises here
        edited = await self._edit(actor, conversation_id, message_id, body)
        await self._flagged(edited, verdict)
        return edited

    async def _edit(self, actor: int, conversation_id: int, message_id: int, body: str) -> Message:
        async with self._uow() as uow:
            _, message = await self._own_message(uow, actor, conversation_id, message_id)
            if message.sender_id != actor:
                raise Forbidden("only the sender may edit a message", code="not_the_sender")
            if message.deleted:
                raise Conflict("the message was deleted", code="message_deleted")
            now = self._clock()
            await uow.conversations.update_message(message_id, body=body, edited_at=now)
            edited = await uow.conversations.message(conversation_id, message_id)
            assert edited is not None
            payload = {"message": message_payload(edited)}
            await erasure.reword_message(uow, message_id, payload)  # no old text survives
            await self._tell_members(
                uow, conversation_id, "message.updated", payload, about=message_id
            )
            await self._delivery.domain(
                uow,
                "message.edited",
                {"message_id": message_id, "conversation_id": conversation_id, "sender_id": actor},
                message_id=message_id,
            )
            await uow.commit()
        return edited

    async def delete(self, actor: int, conversation_id: int, message_id: int) -> Message:
        async with self._uow() as uow:
            member, message = await self._own_message(
                uow, actor, conversation_id, message_id, writes=False
            )
            if message.sender_id != actor and not member.role.manages:
                raise Forbidden(
                    "only the sender or an admin may delete a message", code="not_the_sender"
                )
            if message.deleted:
                return message
            deleted = await self._erase_message(uow, message)
            await uow.commit()
        return deleted

    async def delete_as_moderator(self, conversation_id: int, message_id: int) -> Message | None:
        """Delete a message for everyone as a moderator (an administrator resolving a
        report): as its sender deleting it. None when there is no such message; an
        already deleted one is answered as it is."""
        async with self._uow() as uow:
            if await uow.conversations.get(conversation_id, lock=True) is None:
                return None
            message = await uow.conversations.message(conversation_id, message_id)
            if message is None or message.deleted:
                return message
            deleted = await self._erase_message(uow, message)
            await uow.commit()
        return deleted

    async def _erase_message(self, uow: UnitOfWork, message: Message) -> Message:
        now = self._clock()
        await uow.conversations.update_message(
            message.id, body=None, deleted_at=now, attachments=None
        )
        await self._doom_attachments(uow, uow.attachments.doom_for_messages([message.id], now))
        await uow.conversations.unreact_all(message.id)
        erased = await uow.conversations.message(message.conversation_id, message.id)
        assert erased is not None
        tombstone = tombstone_payload(erased)
        await erasure.forget_messages(uow, {erased.id: tombstone})  # in every log, in place
        await self._tell_members(
            uow, erased.conversation_id, erasure.TOMBSTONE, tombstone, about=erased.id
        )
        if erased.thread_root_id is not None:  # a thread reply: its root counts it no more
            await threads.recount(
                uow, self._delivery, {erased.thread_root_id: erased.conversation_id}
            )
        await self._delivery.domain(  # a redaction: consumers forget the message
            uow,
            "message.redacted",
            {"message_id": erased.id, "conversation_id": erased.conversation_id},
            message_id=erased.id,
        )
        return erased

    async def react(
        self, actor: int, conversation_id: int, message_id: int, emoji: str, *, on: bool
    ) -> Message:
        check_emoji(emoji)
        async with self._uow() as uow:
            _, message = await self._own_message(uow, actor, conversation_id, message_id, writes=on)
            if message.deleted:
                raise Conflict("the message was deleted", code="message_deleted")
            if on:
                await uow.conversations.react(message_id, actor, emoji, self._clock())
            else:
                await uow.conversations.unreact(message_id, actor, emoji)
            updated = await uow.conversations.message(conversation_id, message_id)
            assert updated is not None
            if updated.reactions != message.reactions:
                await self._tell_members(
                    uow,
                    conversation_id,
                    "reaction.updated",
                    {
                        "conversation_id": str(conversation_id),
                        "message_id": str(message_id),
                        "reactions": updated.reactions,
                        "user_id": str(actor),
                        "emoji": emoji,
                        "added": on,
                    },
                    about=message_id,
                )
                await self._delivery.domain(
                    uow,
                    "message.reacted",
                    {
                        "message_id": message_id,
                        "conversation_id": conversation_id,
                        "user_id": actor,
                        "added": on,
                    },
                    message_id=message_id,
                )
                await uow.commit()
        return updated

    async def mark_read(self, actor: int, conversation_id: int, seq: int) -> int:
        """Move the read pointer forward (never back); the pointer after."""
        if seq < 0:
            raise InvalidInput("seq must be >= 0", code="invalid_seq", details={"field": "seq"})
        async with self._uow() as uow:
            conversation, member = await self._writable(uow, actor, conversation_id, lock=True)
            target = min(seq, conversation.last_seq)
            if target <= member.last_read_seq:
                return member.last_read_seq
            now_at = await uow.conversations.advance_read(conversation_id, actor, target)
            # The reader's own devices, and the members not blocked either way with them.
            hearing = await uow.conversations.audience(conversation_id, actor, typing=False)
            await self._tell_members(
                uow,
                conversation_id,
                "read.updated",
                {"conversation_id": str(conversation_id), "user_id": str(actor), "seq": now_at},
                members=[actor, *hearing],
            )
            await uow.commit()
        return now_at

    async def typing(self, actor: int, conversation_id: int) -> None:
        """Tell the members who may hear it (not across a block, not those muting the
        typist); a direct conversation across a block refuses it (403 ``blocked``)."""
        await self._limits.typing.check(actor)
        async with self._uow(write=False) as uow:
            await self._writable(uow, actor, conversation_id)
            others = await uow.conversations.audience(conversation_id, actor, typing=True)
        await self._delivery.ephemeral(
            others, "typing", {"conversation_id": str(conversation_id), "user_id": str(actor)}
        )

    async def erase_user(self, uow: UnitOfWork, user_id: int) -> None:
        """Inside an account's erasure: tombstone everything the user wrote, take them out
        of their conversations (handing groups they owned over), and tell the others."""
        involved = await uow.conversations.lock_for_user(user_id)
        reacted = await erasure.reactions_of(uow, user_id)
        now = self._clock()
        live = await uow.conversations.erase_messages_by(user_id, now)
        await self._doom_attachments(uow, uow.attachments.doom_owned_by(user_id, now))
        tombstones = {
            m.id: tombstone_payload(
                replace(m, body=None, sender_id=None, deleted_at=now, reactions={}, attachments=())
            )
            for m in live
        }
        await erasure.forget_messages(uow, tombstones)
        for message in live:
            await self._tell_members(
                uow,
                message.conversation_id,
                erasure.TOMBSTONE,
                tombstones[message.id],
                about=message.id,
            )
        await threads.recount(  # the threads they replied in, without their replies
            uow,
            self._delivery,
            {m.thread_root_id: m.conversation_id for m in live if m.thread_root_id is not None},
        )
        await uow.threads.forget_user(user_id)
        recounted = await erasure.recount_reactions(uow, reacted, skip=set(tombstones))
        for message_id, payload in recounted.items():
            await self._tell_members(
                uow, reacted[message_id], "reaction.updated", payload, about=message_id
            )
        for conversation_id in involved:
            member = await uow.conversations.member(conversation_id, user_id)
            if member is None:
                continue
            await uow.conversations.remove_member(conversation_id, user_id)
            if member.role is Role.OWNER:
                await self._hand_over(uow, conversation_id)
            await self._tell_members(
                uow,
                conversation_id,
                "member.removed",
                {
                    "conversation_id": str(conversation_id),
                    "user_id": str(user_id),
                    "by": str(user_id),
                },
            )

    async def _doom_attachments(self, uow: UnitOfWork, dooming: Awaitable[int]) -> None:
        """Run a statement that dooms attachments; once it commits, their bytes go."""
        if await dooming and self.on_attachments_doomed is not None:
            uow.after_commit(self.on_attachments_doomed)

    async def expire_due(self, *, limit: int = 500) -> int:
        """Erase the content of messages whose time is up; how many were erased."""
        async with self._uow(write=False) as uow:
            due = await uow.conversations.expired(self._clock(), limit=limit)
        erased = 0
        for message in due:
            async with self._uow() as uow:
                await uow.conversations.get(message.conversation_id, lock=True)
                current = await uow.conversations.message(message.conversation_id, message.id)
                if current is not None and not current.deleted:
                    await self._erase_message(uow, current)
                    await uow.commit()
                    erased += 1
        return erased


def _conversation_data(conversation: Conversation, actor: int, members: int) -> dict[str, Any]:
    """A ``conversation.created`` event's data: ids, kind and size; never the title."""
    return {
        "conversation_id": conversation.id,
        "conversation_kind": conversation.kind.value,
        "actor_id": actor,
        "member_count": members,
    }


def _created_data(message: Message, kind: ConversationKind) -> dict[str, Any]:
    """A ``message.created`` domain event's data: ids and metadata, never the body."""
    return {
        "message_id": message.id,
        "conversation_id": message.conversation_id,
        "conversation_kind": kind.value,
        "sender_id": message.sender_id,
        "seq": message.seq,
        "reply_to": message.reply_to,
    }


def _unreachable(
    live: Sequence[_Send], peers: dict[tuple[int, int], Peer]
) -> dict[tuple[int, int], Exception]:
    """``(actor, conversation)`` -> why ``actor`` may not write that direct conversation
    now (``_check_reachable`` of its other member, from ``peers``), for the sends of
    ``live`` (members of their conversations) to direct conversations."""
    refused: dict[tuple[int, int], Exception] = {}
    for op in live:
        found = peers.get((op.actor, op.conversation_id))
        if found is None:
            continue  # not a direct conversation, or no other member
        _, status, policy, types = found
        if status != UserStatus.ACTIVE:
            problem: Exception | None = NotFound("no such user", code="user_not_found")
        elif EdgeType.BLOCKS in types or EdgeType.BLOCKED_BY in types:
            problem = Forbidden("you cannot message this user", code="blocked")
        elif policy == DmPolicy.FRIENDS and EdgeType.FRIEND not in types:
            problem = Forbidden("this user only takes messages from friends", code="dm_not_allowed")
        else:
            problem = None
        if problem is not None:
            refused[(op.actor, op.conversation_id)] = problem
    return refused
