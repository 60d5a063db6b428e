"""Threads (docs/threads.md, decision 0021).

A message sent with ``thread_root_id`` is a reply in the thread of that root: a message
of the same conversation, not itself a reply, not deleted (422 ``invalid_thread_root``).
Replies take conversation seqs like any message, but the main timeline
(``GET .../messages``) leaves them out; ``GET .../messages/{root}/thread`` pages them.

The root carries its thread's summary (``ThreadSummary``), kept in the transaction of
every change under the conversation's lock: a group of sends adds its replies
(``add_replies``), a deletion or an erasure counts the live replies again (``recount``).
Either way the members hear ``thread.updated``; every such event logged before is
rewritten to the new summary, so an erased replier's id leaves the logs too.

Read pointers are per thread and per user (``thread_reads``): a reply moves its
sender's; ``mark_read`` moves the caller's and tells the caller's own devices
(``thread.read``), nobody else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from socius.domain.conversations import (
    MAX_THREAD_PARTICIPANTS,
    Message,
    ThreadRoot,
    ThreadSummary,
    not_found,
)
from socius.domain.errors import Forbidden, InvalidInput
from socius.domain.events import Event
from socius.domain.pagination import check_limit
from socius.services.delivery import Delivery
from socius.services.ports import Clock, UnitOfWork, UnitOfWorkFactory

__all__ = [
    "THREAD_READ",
    "THREAD_UPDATED",
    "ThreadService",
    "add_replies",
    "check_root",
    "recount",
    "thread_payload",
    "with_reads",
]

THREAD_UPDATED = "thread.updated"
THREAD_READ = "thread.read"


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def thread_payload(t: ThreadSummary) -> dict[str, Any]:
    """A summary as events carry it and the API returns it (the caller's own read
    pointer and unread count only where there is a caller)."""
    out: dict[str, Any] = {
        "reply_count": t.reply_count,
        "last_reply_at": _time(t.last_reply_at),
        "participants": [str(u) for u in t.participants],
    }
    if t.unread_count is not None:
        out["last_read_seq"] = t.last_read_seq
        out["unread_count"] = t.unread_count
    return out


def _updated(conversation_id: int, root_id: int, summary: ThreadSummary) -> dict[str, Any]:
    return {
        "conversation_id": str(conversation_id),
        "root_id": str(root_id),
        "thread": thread_payload(summary),
    }


def check_root(root: ThreadRoot | None, conversation_id: int) -> InvalidInput | None:
    """Why a send may not reply in the thread of ``root``, if it may not."""
    if root is None or root.conversation_id != conversation_id:
        why = "thread_root_id is not a message of this conversation"
    elif root.is_reply:
        why = "thread_root_id is itself a thread reply; reply in its root's thread"
    elif root.deleted:
        why = "thread_root_id was deleted"
    else:
        return None
    return InvalidInput(why, code="invalid_thread_root", details={"field": "thread_root_id"})


async def add_replies(
    uow: UnitOfWork,
    delivery: Delivery,
    replies: Sequence[Message],
    roots: Mapping[int, ThreadRoot],
    members: Mapping[int, Iterable[int]],
    now: datetime,
) -> None:
    """Inside a send's transaction (the conversations locked): count ``replies`` (new
    messages with a ``thread_root_id`` among ``roots``) in their roots' summaries, move
    each sender's read pointer in the thread to their reply, and tell the members."""
    by_root: dict[int, list[Message]] = {}
    for m in replies:
        if m.thread_root_id is not None:
            by_root.setdefault(m.thread_root_id, []).append(m)
    if not by_root:
        return
    events: list[Event] = []
    pointers: dict[tuple[int, int], int] = {}
    for root_id, batch in sorted(by_root.items()):
        root = roots[root_id]
        people = list(root.participants)
        for m in batch:
            if m.sender_id is not None:
                pointers[(root_id, m.sender_id)] = m.seq
                if m.sender_id not in people and len(people) < MAX_THREAD_PARTICIPANTS:
                    people.append(m.sender_id)
        summary = ThreadSummary(
            reply_count=root.reply_count + len(batch),
            last_reply_at=now,
            participants=tuple(people),
        )
        await uow.threads.set_summary(root_id, summary)
        payload = _updated(root.conversation_id, root_id, summary)
        events += [
            Event(u, THREAD_UPDATED, payload, message_id=root_id)
            for u in sorted(members[root.conversation_id])
        ]
    await uow.threads.read_up_to([(r, u, s) for (r, u), s in pointers.items()])
    await delivery.record(uow, events)


async def recount(uow: UnitOfWork, delivery: Delivery, roots: Mapping[int, int]) -> None:
    """After replies were deleted or erased (root id -> conversation id, the
    conversations locked): each root's summary from its live replies, every
    ``thread.updated`` logged about it rewritten to it, and the members told."""
    for root_id, conversation_id in sorted(roots.items()):
        summary = await uow.threads.recount(root_id)
        await uow.threads.set_summary(root_id, summary)
        payload = _updated(conversation_id, root_id, summary)
        await uow.outbox.rewrite([(root_id, payload)], types=(THREAD_UPDATED,))
        await delivery.record(
            uow,
            [
                Event(u, THREAD_UPDATED, payload, message_id=root_id)
                for u in await uow.conversations.member_ids(conversation_id)
            ],
        )


async def with_reads(uow: UnitOfWork, actor: int, found: list[Message]) -> list[Message]:
    """``found`` with the caller's read pointer and unread count in each thread summary."""
    roots = [m.id for m in found if m.thread is not None]
    if not roots:
        return found
    reads = await uow.threads.unread(actor, roots)
    out: list[Message] = []
    for m in found:
        if m.thread is not None and m.id in reads:
            at, unread = reads[m.id]
            m = replace(m, thread=replace(m.thread, last_read_seq=at, unread_count=unread))
        out.append(m)
    return out


class ThreadService:
    """A thread's replies and the caller's read pointer in it."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, delivery: Delivery) -> None:
        self._uow = uow
        self._clock = clock
        self._delivery = delivery

    async def _root(self, uow: UnitOfWork, conversation_id: int, root_id: int) -> Message:
        root = await uow.conversations.message(conversation_id, root_id)
        if root is None or root.thread_root_id is not None:
            raise not_found("message")
        return root

    async def replies(
        self,
        actor: int,
        conversation_id: int,
        root_id: int,
        *,
        before_seq: int | None,
        after_seq: int | None,
        limit: int | None,
    ) -> tuple[Message, list[Message]]:
        """The root (with the caller's read pointer) and a page of its replies, oldest
        first, paged like the timeline; members only (404 otherwise)."""
        size = check_limit(limit)
        async with self._uow(write=False) as uow:
            conversation, member = await uow.conversations.with_member(conversation_id, actor)
            if conversation is None or member is None:
                raise not_found()
            root = await self._root(uow, conversation_id, root_id)
            found = await uow.conversations.history(
                conversation_id,
                limit=size,
                before_seq=before_seq,
                after_seq=after_seq,
                thread_root_id=root_id,
            )
            [root] = await with_reads(uow, actor, [root])
        return root, found

    async def mark_read(
        self, actor: int, conversation_id: int, root_id: int, seq: int
    ) -> tuple[int, int]:
        """Move the caller's read pointer in the thread forward (never back); the pointer
        after, and the unread replies left. Refused like the conversation's pointer."""
        if seq < 0:
            raise InvalidInput("seq must be >= 0", code="invalid_seq", details={"field": "seq"})
        async with self._uow() as uow:
            conversation, member, blocked = await uow.conversations.with_member_and_block(
                conversation_id, actor
            )
            if conversation is None or member is None:
                raise not_found()
            if blocked:
                raise Forbidden(
                    "this conversation is read-only: one of you has blocked the other",
                    code="blocked",
                )
            await self._root(uow, conversation_id, root_id)
            target = min(seq, conversation.last_seq)
            moved = target > await uow.threads.pointer(root_id, actor)
            if moved:
                await uow.threads.read_up_to([(root_id, actor, target)])
            at, unread = (await uow.threads.unread(actor, [root_id]))[root_id]
            if moved:
                payload = {
                    "conversation_id": str(conversation_id),
                    "root_id": str(root_id),
                    "seq": at,
                    "unread_count": unread,
                }
                await self._delivery.record(uow, [Event(actor, THREAD_READ, payload)])
                await uow.commit()
        return at, unread
