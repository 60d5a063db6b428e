"""Precomputed suggestion lists (decision 0028): one row per user who has asked."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.storage.driver import direct, fetch, fetch_any, on_driver, write_timestamp
from socius.storage.id_lists import one_of
from socius.storage.tables import suggestion_lists, users

__all__ = ["SqlSuggestionListRepository"]

_GET = "SELECT candidates FROM suggestion_lists WHERE user_id = ?"
# The refresher's statements on the driver (decision 0034): on PostgreSQL one prepared
# text each, whatever the batch (array parameters).
_PUT_PG = (
    "INSERT INTO suggestion_lists (user_id, candidates, computed_at, due_at) "
    "SELECT u, c, $3, $4 FROM unnest($1::bigint[], $2::bytea[]) AS t(u, c) "
    "ON CONFLICT (user_id) DO UPDATE SET candidates = excluded.candidates, "
    "computed_at = excluded.computed_at, due_at = excluded.due_at"
)
_MARK_DUE_PG = (
    "UPDATE suggestion_lists SET due_at = $1 WHERE user_id = ANY($2::bigint[]) "
    "AND due_at > $1 RETURNING user_id"
)
_DUE = "SELECT user_id FROM suggestion_lists WHERE due_at <= ? ORDER BY due_at, user_id LIMIT ?"
# SQLite on the driver (the refresher's unit of work there): texts by row count.
_PUT_SQLITE = (
    "INSERT INTO suggestion_lists (user_id, candidates, computed_at, due_at) VALUES {rows} "
    "ON CONFLICT (user_id) DO UPDATE SET candidates = excluded.candidates, "
    "computed_at = excluded.computed_at, due_at = excluded.due_at"
)
_MARK_DUE_SQLITE = (
    "UPDATE suggestion_lists SET due_at = ? WHERE user_id IN ({ids}) AND due_at > ? "
    "RETURNING user_id"
)
_DROP_ORPHANS_SQLITE = (
    "DELETE FROM suggestion_lists WHERE user_id IN ({ids}) "
    "AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = suggestion_lists.user_id)"
)
_DROP_ORPHANS_PG = (
    "DELETE FROM suggestion_lists WHERE user_id = ANY($1::bigint[]) "
    "AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = suggestion_lists.user_id)"
)


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
        if self._dialect == "postgresql":
            users_, lists = [u for u, _ in rows], [c for _, c in rows]
            await fetch_any(self._conn, _PUT_PG, users_, lists, now, due)
            return
        driver = on_driver(self._conn)
        if driver is not None:
            at, until = write_timestamp(now, "sqlite"), write_timestamp(due, "sqlite")
            sql = _PUT_SQLITE.format(rows=", ".join(["(?, ?, ?, ?)"] * len(rows)))
            await driver.fetch(sql, *(v for u, c in rows for v in (u, c, at, until)))
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
        if self._dialect == "postgresql":
            return len(await fetch_any(self._conn, _MARK_DUE_PG, at, list(user_ids)))
        driver = on_driver(self._conn)
        if driver is not None:
            stamp = write_timestamp(at, "sqlite")
            sql = _MARK_DUE_SQLITE.format(ids=", ".join("?" * len(user_ids)))
            return len(await driver.fetch(sql, stamp, *user_ids, stamp))
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
        if direct(self._conn):
            stamp = write_timestamp(now, self._dialect)
            return [int(r[0]) for r in await fetch(self._conn, _DUE, stamp, limit)]
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
        driver = on_driver(self._conn)
        if user_ids and self._dialect == "postgresql":
            await fetch_any(self._conn, _DROP_ORPHANS_PG, list(user_ids))
        elif user_ids and driver is not None:
            sql = _DROP_ORPHANS_SQLITE.format(ids=", ".join("?" * len(user_ids)))
            await driver.fetch(sql, *user_ids)
        elif user_ids:
            await self._conn.execute(
                delete(suggestion_lists).where(
                    one_of(suggestion_lists.c.user_id, user_ids, self._dialect),
                    ~exists().where(users.c.id == suggestion_lists.c.user_id),
                )
            )
