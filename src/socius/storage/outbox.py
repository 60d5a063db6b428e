"""The outbox: events written with the data that caused them, relayed after commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.events import Event
from socius.storage.tables import outbox

__all__ = ["SqlOutboxRepository"]


class SqlOutboxRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, events: Sequence[Event], when: datetime) -> None:
        if events:
            await self._conn.execute(
                insert(outbox),
                [
                    {"user_id": e.user_id, "type": e.type, "payload": e.payload, "created_at": when}
                    for e in events
                ],
            )

    async def for_user(self, user_id: int, *, after_id: int, limit: int) -> list[Event]:
        rows = await self._conn.execute(
            select(outbox)
            .where(outbox.c.user_id == user_id, outbox.c.id > after_id)
            .order_by(outbox.c.id)
            .limit(limit)
        )
        return [_event(row) for row in rows]

    async def erase_user(self, user_id: int) -> None:
        await self._conn.execute(delete(outbox).where(outbox.c.user_id == user_id))


def _event(row: Any) -> Event:
    return Event(
        user_id=row.user_id,
        type=row.type,
        payload=dict(row.payload),
        id=row.id,
        created_at=row.created_at,
    )
