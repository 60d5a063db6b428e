"""The outbox of domain events, the stream kept in the database, and leases.

The outbox (``domain_events``) is written in each domain write's transaction and emptied
by the relay (services/relay.py). When the stream is kept in the database rather than in
JetStream, ``SqlEventStream`` is it: numbered in the order the relay published.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Row, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.stream import DomainEvent, StreamedEvent
from socius.storage.driver import (
    direct,
    fetch,
    fetch_any,
    fetch_arrays,
    on_driver,
    read_timestamp,
)
from socius.storage.rows import ValuesList
from socius.storage.tables import domain_events, event_stream, leases, messages

__all__ = ["SqlDomainEventRepository", "SqlLeaseRepository", "SqlStreamRepository"]

# PostgreSQL, in an open transaction: one statement text whatever the count (arrays).
_PG_ADD = (
    "INSERT INTO domain_events (id, type, occurred_at, data, message_id) "
    "SELECT * FROM unnest(?::bigint[], ?::text[], ?::timestamptz[], ?::json[], ?::bigint[])"
)


_STREAM = ValuesList(event_stream, ["id", "type", "occurred_at", "data", "message_id"])
_STREAM_WHEN = ValuesList(event_stream, ["occurred_at"])
_STREAM_APPEND = (
    f"INSERT INTO event_stream ({_STREAM.column_list}) VALUES (?, ?, ?, ?, ?) "  # noqa: S608
    "ON CONFLICT (id) DO NOTHING"
)
_STREAM_PRUNE = (
    "DELETE FROM event_stream WHERE position IN (SELECT position FROM event_stream "
    "WHERE occurred_at < ? ORDER BY position LIMIT ?) RETURNING position"
)
# PostgreSQL, in a driver transaction: a whole batch in one statement (arrays: one text
# whatever the count, no per-row work in asyncpg). Positions are given in the rows' order
# (the default is evaluated above the sort), as the per-event statements gave them.
_PG_STREAM_APPEND = (
    "INSERT INTO event_stream (id, type, occurred_at, data, message_id) "
    "SELECT i, t, o, d, m FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], "
    "$4::json[], $5::bigint[]) WITH ORDINALITY AS k(i, t, o, d, m, n) ORDER BY n "
    "ON CONFLICT (id) DO NOTHING"
)
# The relay's round when the stream is this database's (decision 0045): the oldest events
# of the outbox moved to the stream, in id order (positions follow it; one already there is
# not added again), without passing through Python. PostgreSQL: one statement, atomic
# alone. SQLite: three, in the writer's transaction (nothing else writes meanwhile).
_PG_MOVE = (
    "WITH batch AS (SELECT id FROM domain_events ORDER BY id LIMIT $1), "
    "moved AS (DELETE FROM domain_events d USING batch WHERE d.id = batch.id "
    "RETURNING d.id, d.type, d.occurred_at, d.data, d.message_id), "
    "added AS (INSERT INTO event_stream (id, type, occurred_at, data, message_id) "
    "SELECT id, type, occurred_at, data, message_id FROM moved ORDER BY id "
    "ON CONFLICT (id) DO NOTHING) "
    "SELECT count(*), max(occurred_at) FROM moved"
)
_SQLITE_MOVE = (
    "SELECT count(*), max(occurred_at) FROM "
    "(SELECT occurred_at FROM domain_events ORDER BY id LIMIT ?)",
    "INSERT INTO event_stream (id, type, occurred_at, data, message_id) "
    "SELECT id, type, occurred_at, data, message_id FROM domain_events WHERE true "
    "ORDER BY id LIMIT ? ON CONFLICT (id) DO NOTHING",
    "DELETE FROM domain_events WHERE id IN (SELECT id FROM domain_events ORDER BY id LIMIT ?)",
)
_STREAM_READ = (
    "SELECT position, id, type, occurred_at, data, message_id FROM event_stream "
    "WHERE position > ?{where} ORDER BY position LIMIT ?"
)
_PG_UNSENT = "SELECT id, type, occurred_at, data, message_id FROM domain_events ORDER BY id LIMIT ?"
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode
_PG_MARK_SENT = "DELETE FROM domain_events WHERE id = ANY($1::bigint[])"


def _json_object(value: Any) -> dict[str, Any]:
    """A ``json`` column as the driver returns it (text)."""
    if isinstance(value, str | bytes):
        return _decode_object(value)
    return dict(value)


def _like_prefix(prefix: str) -> str:
    """A ``LIKE`` pattern (``ESCAPE '/'``) for the values that start with ``prefix``."""
    return prefix.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"


@functools.lru_cache(maxsize=64)
def _stream_read_sql(exact: int, prefixes: int) -> str:
    """The driver's read of the stream for ``exact`` type names and ``prefixes``."""
    clauses = [f"type IN ({', '.join('?' * exact)})"] if exact else []
    clauses += ["type LIKE ? ESCAPE '/'"] * prefixes
    where = f" AND ({' OR '.join(clauses)})" if clauses else ""
    return _STREAM_READ.format(where=where)


def _event(row: Row[Any]) -> DomainEvent:
    return DomainEvent(row.id, row.type, row.occurred_at, dict(row.data), row.message_id)


def _values(event: DomainEvent) -> tuple[Any, ...]:
    """The columns id, type, occurred_at, data, message_id of ``event``'s row."""
    return (event.id, event.type, event.occurred_at, event.data, event.message_id)


_DATA = (3,)  # the JSON column of `_values`


def _row(event: DomainEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "data": event.data,
        "message_id": event.message_id,
    }


class SqlDomainEventRepository:
    """The outbox, bound to a unit of work's connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, events: Sequence[DomainEvent]) -> None:
        if events and self._conn.dialect.name == "postgresql" and direct(self._conn):
            await fetch_arrays(self._conn, _PG_ADD, [_values(e) for e in events], json=_DATA)
        elif events:
            await self._conn.execute(insert(domain_events), [_row(e) for e in events])

    async def unsent(self, limit: int) -> list[DomainEvent]:
        """The oldest events not yet published, by id."""
        if self._conn.dialect.name == "postgresql" and direct(self._conn):
            found = await fetch(self._conn, _PG_UNSENT, limit)
            return [
                DomainEvent(int(i), t, at, _json_object(data), m) for i, t, at, data, m in found
            ]
        rows = await self._conn.execute(
            select(domain_events).order_by(domain_events.c.id).limit(limit)
        )
        return [_event(row) for row in rows]

    async def mark_sent(self, ids: Sequence[int]) -> None:
        driver = on_driver(self._conn)
        if ids and driver is not None:
            # One statement, atomic alone: no BEGIN / COMMIT.
            if driver.dialect.name == "postgresql":
                await driver.fetch(_PG_MARK_SENT, list(ids), begin=False)
            else:
                marks = ", ".join("?" * len(ids))
                sql = f"DELETE FROM domain_events WHERE id IN ({marks})"  # noqa: S608
                await driver.fetch(sql, *ids, begin=False)
        elif ids and self._conn.dialect.name == "postgresql":
            # A fixed text (no expanding IN to compile for each count); it opens the
            # transaction, so it goes through SQLAlchemy's connection.
            await self._conn.exec_driver_sql(_PG_MARK_SENT, (list(ids),))
        elif ids:
            await self._conn.execute(delete(domain_events).where(domain_events.c.id.in_(ids)))

    async def pending(self) -> int:
        found = await self._conn.execute(select(func.count()).select_from(domain_events))
        return int(found.scalar_one())

    async def bodies(self, message_ids: Sequence[int]) -> dict[int, str]:
        """The bodies of those messages that still have one."""
        if not message_ids:
            return {}
        rows = await self._conn.execute(
            select(messages.c.id, messages.c.body).where(
                messages.c.id.in_(list(set(message_ids))),
                messages.c.body.isnot(None),
                messages.c.deleted_at.is_(None),
            )
        )
        return {int(row.id): str(row.body) for row in rows}


class SqlLeaseRepository:
    """Named leases: one holder at a time until it lets the lease expire."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert

    async def take(self, name: str, holder: str, *, now: datetime, until: datetime) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``until``: True when it
        is ``holder``'s (it was free, expired, or already theirs)."""
        values = self._insert(leases).values(name=name, holder=holder, expires_at=until)
        stmt = values.on_conflict_do_update(
            index_elements=[leases.c.name],
            set_={"holder": holder, "expires_at": until},
            where=or_(leases.c.holder == holder, leases.c.expires_at < now),
        ).returning(leases.c.holder)
        found = await self._conn.execute(stmt)
        return bool(found.scalar_one_or_none() == holder)

    async def release(self, name: str, holder: str, *, now: datetime) -> None:
        await self._conn.execute(
            update(leases)
            .where(leases.c.name == name, leases.c.holder == holder)
            .values(expires_at=now)
        )


def _type_filter(types: Sequence[str]) -> ColumnElement[bool] | None:
    if not types:
        return None
    exact = [t for t in types if not t.endswith(".*")]
    prefixes = [t[:-1] for t in types if t.endswith(".*")]
    clauses: list[ColumnElement[bool]] = []
    if exact:
        clauses.append(event_stream.c.type.in_(exact))
    clauses += [event_stream.c.type.startswith(p, autoescape=True) for p in prefixes]
    return or_(*clauses)


class SqlStreamRepository:
    """The stream in the database, bound to a unit of work's connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def append(self, events: Sequence[DomainEvent]) -> None:
        """Append, in order; an event already there (by id) is not added again."""
        driver = on_driver(self._conn)
        if driver is not None and driver.dialect.name == "postgresql":
            # One statement for the batch, positions in the order given; atomic alone, so
            # no BEGIN / COMMIT around it unless the caller began a transaction (decision
            # 0045).
            rows = [_values(e) for e in events]
            await fetch_arrays(driver, _PG_STREAM_APPEND, rows, json=_DATA, begin=False)
            return
        if driver is not None:
            # One statement per event still (positions follow the order given), sent
            # together: asyncpg pipelines them in one round trip (decision 0033).
            rows = [_values(e) for e in events]
            await driver.fetch_each(
                _STREAM_APPEND, [_STREAM.convert(driver.dialect, [row]) for row in rows]
            )
            return
        insert_ = postgresql.insert if self._conn.dialect.name == "postgresql" else sqlite.insert
        append = insert_(event_stream).on_conflict_do_nothing(index_elements=[event_stream.c.id])
        for event in events:  # one at a time: positions follow the order given
            await self._conn.execute(append, [_row(event)])

    async def read(
        self, *, after: int, types: Sequence[str] = (), limit: int
    ) -> list[StreamedEvent]:
        if direct(self._conn):  # on the driver: one text per filter shape, no statement built
            exact = [t for t in types if not t.endswith(".*")]
            prefixes = [_like_prefix(t[:-1]) for t in types if t.endswith(".*")]
            sql = _stream_read_sql(len(exact), len(prefixes))
            return [
                StreamedEvent(
                    int(p), DomainEvent(int(i), t, read_timestamp(at), _json_object(d), m)
                )
                for p, i, t, at, d, m in await fetch(
                    self._conn, sql, after, *exact, *prefixes, limit
                )
            ]
        stmt = select(event_stream).where(event_stream.c.position > after)
        where = _type_filter(types)
        if where is not None:
            stmt = stmt.where(where)
        rows = await self._conn.execute(stmt.order_by(event_stream.c.position).limit(limit))
        return [StreamedEvent(int(row.position), _event(row)) for row in rows]

    async def move_from_outbox(self, limit: int) -> tuple[int, datetime | None]:
        """Move up to ``limit`` of the oldest events of the outbox to the stream, in id
        order: how many, and when the newest of them occurred (None: none)."""
        driver = on_driver(self._conn)
        if self._conn.dialect.name == "postgresql":
            if driver is not None:  # atomic alone: no BEGIN / COMMIT around it
                found = await driver.fetch(_PG_MOVE, limit, begin=False)
            else:
                found = await fetch_any(self._conn, _PG_MOVE, limit)
            moved, newest = found[0]
        else:
            count, insert_, delete_ = _SQLITE_MOVE
            if driver is not None:
                (moved, newest), *_ = await driver.fetch(count, limit)
                if moved:
                    await driver.fetch(insert_, limit)
                    await driver.fetch(delete_, limit)
            else:  # an in-memory database: SQLAlchemy's connection and transaction
                row: Any = (await self._conn.exec_driver_sql(count, (limit,))).one()
                moved, newest = row[0], row[1]
                if moved:
                    await self._conn.exec_driver_sql(insert_, (limit,))
                    await self._conn.exec_driver_sql(delete_, (limit,))
        return int(moved), None if newest is None else read_timestamp(newest)

    async def prune(self, before: datetime, *, limit: int) -> int:
        """Drop up to ``limit`` of the oldest events that occurred before ``before``."""
        driver = on_driver(self._conn)
        if driver is not None:
            when = _STREAM_WHEN.convert(driver.dialect, [(before,)])[0]
            return len(await driver.fetch(_STREAM_PRUNE, when, limit))
        oldest = (
            select(event_stream.c.position)
            .where(event_stream.c.occurred_at < before)
            .order_by(event_stream.c.position)
            .limit(limit)
            .scalar_subquery()
        )
        result = await self._conn.execute(
            delete(event_stream).where(event_stream.c.position.in_(oldest))
        )
        return int(result.rowcount or 0)

    async def head(self) -> int:
        found = await self._conn.execute(select(func.max(event_stream.c.position)))
        return int(found.scalar_one_or_none() or 0)

    async def position_at(self, when: datetime) -> int:
        """The position of the event just before the first event at or after ``when``
        (0 when there is none: positions need not start at 1, nor be dense)."""
        found = await self._conn.execute(
            select(func.min(event_stream.c.position)).where(event_stream.c.occurred_at >= when)
        )
        first = found.scalar_one_or_none()
        if first is None:
            return await self.head()
        before = await self._conn.execute(
            select(func.max(event_stream.c.position)).where(event_stream.c.position < first)
        )
        return int(before.scalar_one_or_none() or 0)
