"""Precomputed suggestion lists (decision 0028): one row per user who has asked."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.storage.driver import direct, fetch
from socius.storage.id_lists import one_of
from socius.storage.tables import suggestion_lists, users

__all__ = ["SqlSuggestionListRepository"]

_GET = "SELECT candidates FROM suggestion_lists WHERE user_id = ?"


class SqlSuggestionListRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._dialect = conn.dialect.name

    async def get(self, user_id: int) -> bytes | None:
        """The stored list of ``user_id`` (encoded), None when never computed."""
        if direct(self._conn):
            rows = await fetch(self._conn, _GET, user_id)
            return bytes(rows[0][0]) if rows else None
        found = await self._conn.execute(
            select(suggestion_lists.c.candidates).where(suggestion_lists.c.user_id == user_id)
        )
        value = found.scalar_one_or_none()
        return None if value is None else bytes(value)

    async def put(self, rows: Sequence[tuple[int, bytes]], *, now: datetime, due: datetime) -> None:
        """Store each ``(user_id, candidates)`` as computed ``now``, due again at ``due``: one
        statement for all of them."""
        if not rows:
            return
        insert: Any = (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(
            suggestion_lists
        )
        stmt = insert.values(
            [{"user_id": u, "candidates": c, "computed_at": now, "due_at": due} for u, c in rows]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[suggestion_lists.c.user_id],
            set_={
                "candidates": stmt.excluded.candidates,
                "computed_at": stmt.excluded.computed_at,
                "due_at": stmt.excluded.due_at,
            },
        )
        await self._conn.execute(stmt)

    async def mark_due(self, user_ids: Sequence[int], *, at: datetime) -> int:
        """Make the stored lists of ``user_ids`` due at ``at`` (those due later); users
        without a list are left alone. How many were marked."""
        if not user_ids:
            return 0
        result = await self._conn.execute(
            update(suggestion_lists)
            .where(
                one_of(suggestion_lists.c.user_id, user_ids, self._dialect),
                suggestion_lists.c.due_at > at,
            )
            .values(due_at=at)
        )
        return int(result.rowcount or 0)

    async def due(self, now: datetime, *, limit: int) -> list[int]:
        """Up to ``limit`` users whose list is due at ``now``, the longest due first."""
        rows = await self._conn.execute(
            select(suggestion_lists.c.user_id)
            .where(suggestion_lists.c.due_at <= now)
            .order_by(suggestion_lists.c.due_at, suggestion_lists.c.user_id)
            .limit(limit)
        )
        return [int(r.user_id) for r in rows]

    async def drop(self, user_ids: Sequence[int]) -> None:
        if user_ids:
            await self._conn.execute(
                delete(suggestion_lists).where(
                    one_of(suggestion_lists.c.user_id, user_ids, self._dialect)
                )
            )

    async def drop_orphans(self, user_ids: Sequence[int]) -> None:
        """Drop the lists among ``user_ids`` whose user is gone (a refresh that raced an
        erasure must not bring a list back)."""
        if user_ids:
            await self._conn.execute(
                delete(suggestion_lists).where(
                    one_of(suggestion_lists.c.user_id, user_ids, self._dialect),
                    ~exists().where(users.c.id == suggestion_lists.c.user_id),
                )
            )
