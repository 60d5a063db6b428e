"""The outbox: every user's event log, written in the transaction that caused the events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.events import Event
from socius.storage.rows import ValuesList
from socius.storage.tables import user_events, user_seqs

__all__ = ["SqlOutboxRepository"]

_SEQS = ValuesList(user_seqs, ["user_id", "seq"])
_EVENTS = ValuesList(user_events, ["user_id", "seq", "type", "payload", "created_at"])


class SqlOutboxRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert

    async def _reserve(self, counts: dict[int, int]) -> dict[int, int]:
        """Take ``counts[user]`` numbers in each user's log; the last number taken per
        user. Locks the counter rows, in ascending user order (the one lock order of
        every writer), until the transaction ends."""
        last: dict[int, int] = {}
        rows = sorted(counts.items())
        for values, params in _SEQS.chunks(self._conn.dialect, rows):
            result = await self._conn.exec_driver_sql(
                f"INSERT INTO user_seqs ({_SEQS.column_list}) {values} "
                "ON CONFLICT (user_id) DO UPDATE SET seq = user_seqs.seq + excluded.seq "
                "RETURNING user_id, seq",
                params,
            )
            found: list[Any] = list(result)
            last.update((int(row[0]), int(row[1])) for row in found)
        return last

    async def add(self, events: Sequence[Event], when: datetime) -> list[Event]:
        """Append events to their recipients' logs; the events with their numbers."""
        if not events:
            return []
        per_user: dict[int, list[Event]] = {}
        for event in events:
            per_user.setdefault(event.user_id, []).append(event)
        last = await self._reserve({u: len(mine) for u, mine in per_user.items()})
        stored: list[Event] = []
        for user_id in sorted(per_user):
            mine = per_user[user_id]
            for seq, event in enumerate(mine, start=last[user_id] - len(mine) + 1):
                stored.append(Event(user_id, event.type, event.payload, seq, when))
        rows = [(e.user_id, e.seq, e.type, e.payload, when) for e in stored]
        for values, params in _EVENTS.chunks(self._conn.dialect, rows):
            await self._conn.exec_driver_sql(
                f"INSERT INTO user_events ({_EVENTS.column_list}) {values}", params
            )
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
