"""The notifications repository: each user's inbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.notifications import Notification
from socius.storage.driver import direct, fetch_arrays
from socius.storage.rows import ValuesList
from socius.storage.tables import notifications

__all__ = ["SqlNotificationRepository"]

_ROWS = ValuesList(
    notifications, ["id", "user_id", "type", "payload", "created_at", "read", "message_id"]
)
# PostgreSQL, in an open transaction: one statement text whatever the count (arrays).
_PG_ADD = (
    "INSERT INTO notifications (id, user_id, type, payload, created_at, read, message_id) "
    "SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::text[], ?::json[], "
    "?::timestamptz[], ?::boolean[], ?::bigint[])"
)


def _notification(row: Row[Any]) -> Notification:
    return Notification(
        row.id,
        row.user_id,
        row.type,
        dict(row.payload),
        row.created_at,
        row.read,
        row.message_id,
    )


class SqlNotificationRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, items: Sequence[Notification]) -> None:
        if not items:
            return
        rows = [
            (n.id, n.user_id, n.type, n.payload, n.created_at, n.read, n.message_id) for n in items
        ]
        if self._conn.dialect.name == "postgresql" and direct(self._conn):
            await fetch_arrays(self._conn, _PG_ADD, rows, json=(3,))  # payload: JSON
            return
        # On the driver (no SQLAlchemy insert compiled per row count); a payload encoded
        # already (services/delivery.py) goes in as its JSON text.
        for values, params in _ROWS.chunks(self._conn.dialect, rows):
            await self._conn.exec_driver_sql(
                f"INSERT INTO notifications ({_ROWS.column_list}) {values}", params
            )

    async def page(self, user_id: int, *, limit: int, before_id: int | None) -> list[Notification]:
        stmt = (
            select(notifications)
            .where(notifications.c.user_id == user_id)
            .order_by(notifications.c.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            stmt = stmt.where(notifications.c.id < before_id)
        return [_notification(r) for r in await self._conn.execute(stmt)]

    async def unread_count(self, user_id: int) -> int:
        found = await self._conn.execute(
            select(func.count()).where(
                notifications.c.user_id == user_id, notifications.c.read.is_(False)
            )
        )
        return int(found.scalar_one())

    async def mark_read(self, user_id: int, up_to_id: int) -> int:
        result = await self._conn.execute(
            update(notifications)
            .where(
                notifications.c.user_id == user_id,
                notifications.c.id <= up_to_id,
                notifications.c.read.is_(False),
            )
            .values(read=True)
        )
        return int(result.rowcount)

    async def erase_user(self, user_id: int) -> None:
        await self._conn.execute(delete(notifications).where(notifications.c.user_id == user_id))

    async def erase_about(self, message_ids: Sequence[int]) -> None:
        """Delete the notifications about these messages."""
        if message_ids:
            await self._conn.execute(
                delete(notifications).where(notifications.c.message_id.in_(list(message_ids)))
            )

    async def about(self, message_id: int) -> list[Notification]:
        """The notifications about one message, in every inbox."""
        rows = await self._conn.execute(
            select(notifications).where(notifications.c.message_id == message_id)
        )
        return [_notification(r) for r in rows]

    async def set_payloads(self, items: Sequence[Notification]) -> None:
        """Each notification (by id) takes the payload given."""
        if items:
            await self._conn.execute(
                update(notifications)
                .where(notifications.c.id == bindparam("nid"))
                .values(payload=bindparam("new_payload")),
                [{"nid": n.id, "new_payload": n.payload} for n in items],
            )
