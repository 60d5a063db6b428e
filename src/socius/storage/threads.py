"""The threads repository: a root's summary (columns of its ``messages`` row) and the
per-thread read pointers (``thread_reads``). docs/threads.md.

Every writer of a summary holds the lock of the root's conversation (a send, a delete,
an erasure), so a read-then-write here sees no concurrent change to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.conversations import MAX_THREAD_PARTICIPANTS, ThreadRoot, ThreadSummary
from socius.storage.id_lists import one_of
from socius.storage.tables import messages, thread_reads

__all__ = ["SqlThreadRepository", "thread_summary"]


def _participants(value: Any) -> tuple[int, ...]:
    return tuple(int(u) for u in value or ())


def thread_summary(row: Row[Any]) -> ThreadSummary | None:
    """The summary a ``messages`` row carries: None unless it is a root that ever had a
    reply."""
    if row.thread_reply_count is None:
        return None
    return ThreadSummary(
        reply_count=int(row.thread_reply_count),
        last_reply_at=row.thread_last_reply_at,
        participants=_participants(row.thread_participants),
    )


# Move a pointer forward, never back (both dialects: ON CONFLICT ... excluded).
_READ_UP_TO = text(
    "INSERT INTO thread_reads (root_id, user_id, last_read_seq) VALUES (:r, :u, :s) "
    "ON CONFLICT (root_id, user_id) DO UPDATE SET last_read_seq = CASE "
    "WHEN excluded.last_read_seq > thread_reads.last_read_seq "
    "THEN excluded.last_read_seq ELSE thread_reads.last_read_seq END"
)


class SqlThreadRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._dialect = conn.dialect.name

    async def roots(self, ids: Sequence[int]) -> dict[int, ThreadRoot]:
        """The messages of ``ids`` that exist, as would-be roots."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        rows = await self._conn.execute(
            select(
                messages.c.id,
                messages.c.conversation_id,
                messages.c.thread_root_id,
                messages.c.deleted_at,
                messages.c.thread_reply_count,
                messages.c.thread_participants,
            ).where(one_of(messages.c.id, wanted, self._dialect))
        )
        return {
            r.id: ThreadRoot(
                id=r.id,
                conversation_id=r.conversation_id,
                is_reply=r.thread_root_id is not None,
                deleted=r.deleted_at is not None,
                reply_count=int(r.thread_reply_count or 0),
                participants=_participants(r.thread_participants),
            )
            for r in rows
        }

    async def set_summary(self, root_id: int, summary: ThreadSummary) -> None:
        await self._conn.execute(
            update(messages)
            .where(messages.c.id == root_id)
            .values(
                thread_reply_count=summary.reply_count,
                thread_last_reply_at=summary.last_reply_at,
                thread_participants=[str(u) for u in summary.participants],
            )
        )

    async def recount(self, root_id: int) -> ThreadSummary:
        """The summary of the root's live replies as they stand (not stored)."""
        live = and_(messages.c.thread_root_id == root_id, messages.c.deleted_at.is_(None))
        count, last = (
            await self._conn.execute(
                select(func.count(), func.max(messages.c.created_at)).where(live)
            )
        ).one()
        senders = await self._conn.execute(
            select(messages.c.sender_id)
            .where(live, messages.c.sender_id.isnot(None))
            .group_by(messages.c.sender_id)
            .order_by(func.min(messages.c.seq))
            .limit(MAX_THREAD_PARTICIPANTS)
        )
        return ThreadSummary(
            reply_count=int(count),
            last_reply_at=last if count else None,
            participants=tuple(int(r[0]) for r in senders),
        )

    async def read_up_to(self, pointers: Sequence[tuple[int, int, int]]) -> None:
        """Move each ``(root, user, seq)`` read pointer forward (never back)."""
        if pointers:
            await self._conn.execute(
                _READ_UP_TO, [{"r": r, "u": u, "s": s} for r, u, s in pointers]
            )

    async def pointer(self, root_id: int, user_id: int) -> int:
        found = await self._conn.scalar(
            select(thread_reads.c.last_read_seq).where(
                thread_reads.c.root_id == root_id, thread_reads.c.user_id == user_id
            )
        )
        return int(found or 0)

    async def unread(self, user_id: int, root_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """For each root of ``root_ids``: the user's read pointer in its thread, and how
        many live replies of others lie past it."""
        ids = sorted(set(root_ids))
        if not ids:
            return {}
        pointers = {
            int(r.root_id): int(r.last_read_seq)
            for r in await self._conn.execute(
                select(thread_reads.c.root_id, thread_reads.c.last_read_seq).where(
                    thread_reads.c.user_id == user_id,
                    one_of(thread_reads.c.root_id, ids, self._dialect),
                )
            )
        }
        joined = messages.outerjoin(
            thread_reads,
            and_(
                thread_reads.c.root_id == messages.c.thread_root_id,
                thread_reads.c.user_id == user_id,
            ),
        )
        counts = {
            int(r[0]): int(r[1])
            for r in await self._conn.execute(
                select(messages.c.thread_root_id, func.count())
                .select_from(joined)
                .where(
                    one_of(messages.c.thread_root_id, ids, self._dialect),
                    messages.c.deleted_at.is_(None),
                    or_(messages.c.sender_id.is_(None), messages.c.sender_id != user_id),
                    messages.c.seq > func.coalesce(thread_reads.c.last_read_seq, 0),
                )
                .group_by(messages.c.thread_root_id)
            )
        }
        return {r: (pointers.get(r, 0), counts.get(r, 0)) for r in ids}

    async def forget_user(self, user_id: int) -> None:
        """An erased account's read pointers."""
        await self._conn.execute(thread_reads.delete().where(thread_reads.c.user_id == user_id))
