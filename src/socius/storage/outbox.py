"""The outbox: every user's event log, written in the transaction that caused the events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.events import Event
from socius.storage.tables import user_events, user_seqs

__all__ = ["SqlOutboxRepository"]


class SqlOutboxRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert

    async def _reserve(self, user_id: int, n: int) -> int:
        """Take ``n`` numbers in ``user_id``'s log; the last one. Locks the user's counter
        row until the transaction ends, which orders concurrent writers."""
        stmt = (
            self._insert(user_seqs)
            .values(user_id=user_id, seq=n)
            .on_conflict_do_update(
                index_elements=[user_seqs.c.user_id], set_={"seq": user_seqs.c.seq + n}
            )
            .returning(user_seqs.c.seq)
        )
        return int((await self._conn.execute(stmt)).scalar_one())

    async def add(self, events: Sequence[Event], when: datetime) -> list[Event]:
        """Append events to their recipients' logs; the events with their numbers."""
        if not events:
            return []
        per_user: dict[int, list[Event]] = {}
        for event in events:
            per_user.setdefault(event.user_id, []).append(event)
        stored: list[Event] = []
        rows: list[dict[str, Any]] = []
        for user_id in sorted(per_user):  # one lock order for every transaction
            mine = per_user[user_id]
            last = await self._reserve(user_id, len(mine))
            for seq, event in enumerate(mine, start=last - len(mine) + 1):
                stored.append(Event(user_id, event.type, event.payload, seq, when))
                rows.append(
                    {
                        "user_id": user_id,
                        "seq": seq,
                        "type": event.type,
                        "payload": event.payload,
                        "created_at": when,
                    }
                )
        await self._conn.execute(user_events.insert(), rows)
        return stored

    async def for_user(self, user_id: int, *, after_seq: int, limit: int) -> list[Event]:
        rows = await self._conn.execute(
            select(user_events)
            .where(user_events.c.user_id == user_id, user_events.c.seq > after_seq)
            .order_by(user_events.c.seq)
            .limit(limit)
        )
        return [
            Event(row.user_id, row.type, dict(row.payload), row.seq, row.created_at) for row in rows
        ]

    async def last_seq(self, user_id: int) -> int:
        found = await self._conn.execute(
            select(user_seqs.c.seq).where(user_seqs.c.user_id == user_id)
        )
        return int(found.scalar_one_or_none() or 0)

    async def last_seqs(self, user_ids: Sequence[int]) -> dict[int, int]:
        """``last_seq`` of many users in one query (a user with no log is left out)."""
        if not user_ids:
            return {}
        rows = await self._conn.execute(
            select(user_seqs.c.user_id, user_seqs.c.seq).where(user_seqs.c.user_id.in_(user_ids))
        )
        return {int(row.user_id): int(row.seq) for row in rows}

    async def erase_user(self, user_id: int) -> None:
        await self._conn.execute(delete(user_events).where(user_events.c.user_id == user_id))
        await self._conn.execute(delete(user_seqs).where(user_seqs.c.user_id == user_id))
