"""The outbox: every user's event log, written in the transaction that caused the events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.events import Event, LogPage
from socius.storage.driver import direct, fetch
from socius.storage.rows import ValuesList, json_texts
from socius.storage.tables import user_events, user_seqs

__all__ = ["PG_APPEND_TAIL", "SqlOutboxRepository", "by_user", "log_arrays", "numbered_events"]

_SEQS = ValuesList(user_seqs, ["user_id", "seq"])
_EVENTS = ValuesList(user_events, ["user_id", "seq", "type", "payload", "created_at", "message_id"])
# PostgreSQL, in a transaction already open: a whole batch in one statement on the driver
# (no SQLAlchemy), its lists as arrays, so the text never changes (one server-side
# prepare per connection) and asyncpg encodes them in C. The counters are taken in the
# arrays' order, ascending user id (the one lock order of every writer), and the events
# numbered from them in the same statement: one round trip while the counters are held.
# ``back``: how far below its user's new last number an event goes.
# The append as the last CTEs of a statement (``log_arrays``' parameters), answering each
# user's new last number; a send group's write ends with them too (storage/sends.py).
PG_APPEND_TAIL = (
    "r AS (INSERT INTO user_seqs (user_id, seq) "
    "SELECT * FROM unnest(?::bigint[], ?::bigint[]) "
    "ON CONFLICT (user_id) DO UPDATE SET seq = user_seqs.seq + excluded.seq "
    "RETURNING user_id, seq), "
    "e AS (INSERT INTO user_events (user_id, seq, type, payload, created_at, message_id) "
    "SELECT k.u, r.seq - k.back, k.t, k.p, ?::timestamptz, k.m "
    "FROM unnest(?::bigint[], ?::bigint[], ?::text[], ?::json[], ?::bigint[]) "
    "AS k(u, back, t, p, m) JOIN r ON r.user_id = k.u) "
    "SELECT user_id, seq FROM r"
)
_PG_APPEND = "WITH " + PG_APPEND_TAIL
# A page of a log and how far the log was pruned, in one statement (one snapshot): a
# cursor found below ``pruned_to`` has expired, one at or above it misses nothing.
_PAGE = (
    select(user_seqs.c.pruned_to, user_events)
    .select_from(
        user_seqs.outerjoin(
            user_events,
            and_(
                user_events.c.user_id == user_seqs.c.user_id,
                user_events.c.seq > bindparam("after"),
            ),
        )
    )
    .where(user_seqs.c.user_id == bindparam("uid"))
    .order_by(user_events.c.seq)
    .limit(bindparam("n"))
)
_RAISE_FLOOR = (
    update(user_seqs)
    .where(user_seqs.c.user_id == bindparam("uid"), user_seqs.c.pruned_to < bindparam("upto"))
    .values(pruned_to=bindparam("upto"))
)
_DROP_PREFIX = delete(user_events).where(
    user_events.c.user_id == bindparam("uid"), user_events.c.seq <= bindparam("upto")
)
# PostgreSQL: pruning gives way (and tries again next round) rather than wait long for a
# row an erasing or sending transaction holds; well under deadlock_timeout (1 s), so that
# it is always the pruning that gives up, never the request.
_PRUNE_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '300ms'"
_LOCK_NOT_AVAILABLE = "55P03"


def by_user(events: Sequence[Event]) -> dict[int, list[Event]]:
    """``events`` per recipient, in their order."""
    per_user: dict[int, list[Event]] = {}
    for event in events:
        per_user.setdefault(event.user_id, []).append(event)
    return per_user


def log_arrays(per_user: dict[int, list[Event]], when: Any) -> list[Any]:
    """The parameters of an append to the logs on PostgreSQL (``_PG_APPEND``, and the
    logs' part of a send group's write in storage/sends.py), in their order: the users
    ascending, how many numbers each takes, the time (``when``), then for each event (by
    user, in their order) its user, how far before its user's last number it comes, its
    type, payload and message. ``numbered_events`` numbers them from the answer."""
    users = sorted(per_user)
    ordered = [e for u in users for e in per_user[u]]
    return [
        users,
        [len(per_user[u]) for u in users],
        when,
        [e.user_id for e in ordered],
        [len(per_user[u]) - 1 - i for u in users for i in range(len(per_user[u]))],
        [e.type for e in ordered],
        json_texts([e.payload for e in ordered]),
        [e.message_id for e in ordered],
    ]


def numbered_events(
    per_user: dict[int, list[Event]], last: dict[int, int], when: datetime
) -> list[Event]:
    """The events with their numbers, ``last[user]`` the last number reserved for each
    user's: by user, then in their order."""
    stored: list[Event] = []
    for user_id in sorted(per_user):
        mine = per_user[user_id]
        for seq, event in enumerate(mine, start=last[user_id] - len(mine) + 1):
            stored.append(Event(user_id, event.type, event.payload, seq, when, event.message_id))
    return stored


class SqlOutboxRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._postgres = conn.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._postgres else sqlite.insert

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
        per_user = by_user(events)
        if self._postgres and direct(self._conn):
            return await self._append_pg(per_user, when)
        last = await self._reserve({u: len(mine) for u, mine in per_user.items()})
        stored = numbered_events(per_user, last, when)
        rows = [(e.user_id, e.seq, e.type, e.payload, when, e.message_id) for e in stored]
        for values, params in _EVENTS.chunks(self._conn.dialect, rows):
            await self._conn.exec_driver_sql(
                f"INSERT INTO user_events ({_EVENTS.column_list}) {values}", params
            )
        return stored

    async def _append_pg(self, per_user: dict[int, list[Event]], when: datetime) -> list[Event]:
        found = await fetch(self._conn, _PG_APPEND, *log_arrays(per_user, when))
        return numbered_events(per_user, {int(u): int(s) for u, s in found}, when)

    async def for_user(self, user_id: int, *, after_seq: int, limit: int) -> list[Event]:
        return (await self.page(user_id, after_seq=after_seq, limit=limit)).events

    async def page(self, user_id: int, *, after_seq: int, limit: int) -> LogPage:
        rows = await self._conn.execute(_PAGE, {"uid": user_id, "after": after_seq, "n": limit})
        pruned_to = 0
        events = []
        for row in rows:
            pruned_to = int(row.pruned_to)
            if row.seq is not None:
                events.append(_event(row))
        return LogPage(pruned_to, events)

    async def of_type(self, user_id: int, type_: str) -> list[Event]:
        """The events of one type in a user's log, oldest first."""
        rows = await self._conn.execute(
            select(user_events)
            .where(user_events.c.user_id == user_id, user_events.c.type == type_)
            .order_by(user_events.c.seq)
        )
        return [_event(row) for row in rows]

    async def about(self, message_id: int, *, except_types: Sequence[str]) -> list[Event]:
        """The logged events about a message, in every log, but those of ``except_types``."""
        rows = await self._conn.execute(
            select(user_events).where(
                user_events.c.message_id == message_id,
                user_events.c.type.not_in(list(except_types)),
            )
        )
        return [_event(row) for row in rows]

    async def set_payloads(self, events: Sequence[Event]) -> None:
        """Each logged event (by its user and position) takes the payload given."""
        if events:
            await self._conn.execute(
                update(user_events)
                .where(
                    user_events.c.user_id == bindparam("uid"),
                    user_events.c.seq == bindparam("at"),
                )
                .values(payload=bindparam("new_payload")),
                [{"uid": e.user_id, "at": e.seq, "new_payload": e.payload} for e in events],
            )

    async def rewrite(
        self,
        payloads: Sequence[tuple[int, dict[str, Any]]],
        *,
        types: Sequence[str] = (),
        as_type: str | None = None,
    ) -> None:
        """For each ``(message_id, payload)``: every logged event about that message (of
        ``types``, when given) takes that payload (and type ``as_type``, when given), in
        every log, at the position it has. One statement per message."""
        if not payloads:
            return
        stmt = update(user_events).where(user_events.c.message_id == bindparam("about"))
        if types:
            stmt = stmt.where(user_events.c.type.in_(list(types)))
        values: dict[str, Any] = {"payload": bindparam("new_payload")}
        if as_type is not None:
            values["type"] = as_type
        await self._conn.execute(
            stmt.values(**values), [{"about": m, "new_payload": p} for m, p in payloads]
        )

    async def prune(self, before: datetime, *, limit: int) -> int | None:
        """Drop about ``limit`` of the oldest events written before ``before``: for each
        log touched, everything up to the newest of them, so what a log keeps is always
        one unbroken range; its ``pruned_to`` rises to match. How many old events were
        found (fewer than ``limit``: none older are left); None when a lock held by
        another transaction made it give way (try again later)."""
        rows = await self._conn.execute(
            select(user_events.c.user_id, user_events.c.seq)
            .where(user_events.c.created_at < before)
            .order_by(user_events.c.created_at)
            .limit(limit)
        )
        upto: dict[int, int] = {}
        found = 0
        for user_id, seq in rows:
            found += 1
            upto[user_id] = max(upto.get(user_id, 0), int(seq))
        if not upto:
            return 0
        # The counters first, in ascending user order like every writer, then the rows.
        params = [{"uid": u, "upto": s} for u, s in sorted(upto.items())]
        try:
            if self._conn.dialect.name == "postgresql":
                await self._conn.exec_driver_sql(_PRUNE_LOCK_TIMEOUT)
            await self._conn.execute(_RAISE_FLOOR, params)
            await self._conn.execute(_DROP_PREFIX, params)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                return None
            raise
        return found

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


def _event(row: Any) -> Event:
    return Event(row.user_id, row.type, dict(row.payload), row.seq, row.created_at, row.message_id)
