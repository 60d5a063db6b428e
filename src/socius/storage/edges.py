"""The association store: typed edges with their inverses and exact counts."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause

from socius.domain.events import Event
from socius.domain.graph import INVERSE, EdgeRow, EdgeType
from socius.domain.graph_writes import PairState, PairWrite, types_of_code
from socius.domain.users import UserStatus
from socius.storage.domain_events import SqlDomainEventRepository
from socius.storage.driver import (
    direct,
    fetch,
    fetch_any,
    on_driver,
    read_timestamp,
    write_timestamp,
)
from socius.storage.id_lists import one_of
from socius.storage.notifications import SqlNotificationRepository
from socius.storage.outbox import SqlOutboxRepository, by_user, numbered_events
from socius.storage.rows import ValuesList
from socius.storage.tables import (
    domain_events,
    edge_counts,
    edges,
    notifications,
    user_events,
    users,
)
from socius.storage.users import SqlUserRepository

__all__ = ["SqlEdgeRepository"]

# The hottest reads (list pages, relationship look-ups, mutual friends), sent on the
# driver directly where driver.direct allows; the same statements as the built ones below.
_LOCK = "SELECT pg_advisory_xact_lock(?)"
_TYPES_BETWEEN = "SELECT type FROM edges WHERE src = ? AND dst = ?"
# Every edge of a user (its relationships with everyone: decision 0032), up to a bound.
EDGE_TYPES_OF = "SELECT dst, type FROM edges WHERE src = ? LIMIT ?"
_RANGE = (
    "SELECT dst, pos, created_at FROM edges WHERE src = ? AND type = ? "
    "ORDER BY pos DESC, dst DESC LIMIT ?"
)
# The writes of an edge and its inverse (1 or 2 rows): the built statements of add,
# remove and _bump below, written out.
_INSERT_EDGES = {
    1: "INSERT INTO edges (src, type, dst, pos, created_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING RETURNING src",
    2: "INSERT INTO edges (src, type, dst, pos, created_at) VALUES (?, ?, ?, ?, ?), "
    "(?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING src",
}
_DELETE_EDGES = {
    1: "DELETE FROM edges WHERE (src = ? AND type = ? AND dst = ?) RETURNING src",
    2: "DELETE FROM edges WHERE (src = ? AND type = ? AND dst = ?) "
    "OR (src = ? AND type = ? AND dst = ?) RETURNING src",
}
_BUMP = {
    1: "INSERT INTO edge_counts (src, type, count) VALUES (?, ?, ?) "
    "ON CONFLICT (src, type) DO UPDATE SET count = edge_counts.count + ?",
    2: "INSERT INTO edge_counts (src, type, count) VALUES (?, ?, ?), (?, ?, ?) "
    "ON CONFLICT (src, type) DO UPDATE SET count = edge_counts.count + ?",
}
_MUTUAL = (
    "SELECT mine.dst, mine.pos, mine.created_at FROM edges AS mine JOIN edges AS theirs "
    "ON theirs.src = ? AND theirs.type = ? AND theirs.dst = mine.dst "
    "WHERE mine.src = ? AND mine.type = ? {before}"
    "ORDER BY mine.pos DESC, mine.dst DESC LIMIT ?"
)
_MUTUAL_FIRST = _MUTUAL.format(before="")
_MUTUAL_BEFORE = _MUTUAL.format(before="AND mine.pos < ? ")
_RANGE_BEFORE = (
    "SELECT dst, pos, created_at FROM edges WHERE src = ? AND type = ? AND pos < ? "
    "ORDER BY pos DESC, dst DESC LIMIT ?"
)


# A graph write's read, once the pair is locked (decision 0027): both users, their rows
# locked against erasure in id order, the edge types from the actor to the other user,
# and whether the other user mutes the actor. PostgreSQL: one statement.
# Suggestions (decision 0034): the statements of friends_of_friends.
_NEWEST_WITH_DEGREE = (
    "SELECT e.dst, u.status, COALESCE(c.count, 0) FROM edges e "
    "LEFT JOIN users u ON u.id = e.dst "
    "LEFT JOIN edge_counts c ON c.src = e.dst AND c.type = ? "
    "WHERE e.src = ? AND e.type = ? ORDER BY e.pos DESC, e.dst DESC LIMIT ?"
)
# On PostgreSQL (numbered for asyncpg; one prepared text each, whatever the sizes: array
# parameters). The viewers' newest $3 friends, each with its degree (2: not active), for
# all the viewers at once ($1); then per viewer its second degree ($1 friends, $2 their
# weights), its best $8 as three arrays. The second is one statement per viewer: one for
# a whole round is estimated above jit_above_cost (PostgreSQL then spends ~1 s compiling
# it), one viewer's stays well below (~12,000 for 100 friends on W1's graph).
_FRIENDS_WITH_DEGREE_PG = """
SELECT v.viewer, n.dst, CASE WHEN u.status = 'active' THEN COALESCE(c.count, 0) ELSE 2 END
FROM unnest($1::bigint[]) AS v(viewer) CROSS JOIN LATERAL (
    SELECT e.dst FROM edges e WHERE e.src = v.viewer AND e.type = $2
    ORDER BY e.pos DESC, e.dst DESC LIMIT $3
) n
LEFT JOIN users u ON u.id = n.dst
LEFT JOIN edge_counts c ON c.src = n.dst AND c.type = $2
"""
_SECOND_DEGREE_PG = """
WITH w(f, wt) AS MATERIALIZED (SELECT * FROM unnest($1::bigint[], $2::float8[])),
ranked AS (
    SELECT e.dst AS candidate, COUNT(*) AS mutual, SUM(w.wt) AS score
    FROM w JOIN edges e ON e.src = w.f AND e.type = $3 AND e.pos >= COALESCE(
        (SELECT k.pos FROM edges k WHERE k.src = w.f AND k.type = $3
         ORDER BY k.pos DESC LIMIT 1 OFFSET $4),
        -9223372036854775808)
    WHERE e.dst <> $5 AND e.dst NOT IN (SELECT f FROM w)
    GROUP BY e.dst
    ORDER BY score DESC, mutual DESC, candidate
    LIMIT $6
),
kept AS (
    SELECT candidate, mutual, score FROM ranked
    WHERE NOT EXISTS (SELECT 1 FROM edges r WHERE r.src = $5 AND r.type = ANY($7::smallint[])
                      AND r.dst = ranked.candidate)
    ORDER BY score DESC, mutual DESC, candidate
    LIMIT $8
)
SELECT array_agg(candidate ORDER BY score DESC, mutual DESC, candidate),
       array_agg(mutual ORDER BY score DESC, mutual DESC, candidate),
       array_agg(score ORDER BY score DESC, mutual DESC, candidate)
FROM kept
"""

# Under the pair's lock (decision 0027): both users' rows locked against erasure in id
# order, with the edge types from the actor to the other user and whether the other
# user mutes the actor. PostgreSQL: one statement.
_PAIR_STATE = (
    "WITH u AS (SELECT id, status, is_private FROM users WHERE id IN (?, ?) "
    "ORDER BY id FOR SHARE) "
    "SELECT u.id, u.status, u.is_private, ARRAY(SELECT type FROM edges WHERE src = ? AND "
    "dst = ?), EXISTS (SELECT 1 FROM edges WHERE src = ? AND type = ? AND dst = ?) FROM u"
)
# A graph write that checks the pair under its lock (decision 0053: migration 0022).
_PAIR_WRITE = "SELECT * FROM socius_pair_write(" + ", ".join("?" * 35) + ")"  # noqa: S608
_PAIR_USERS = "SELECT id, status, is_private FROM users WHERE id IN (?, ?) ORDER BY id"
_PAIR_EDGES = (
    "SELECT src, type FROM edges WHERE (src = ? AND dst = ?) OR (src = ? AND type = ? AND dst = ?)"
)
_ACTIVE = UserStatus.ACTIVE.value
# Both directions of a count move in one statement, rows in ascending key order (the one
# lock order of every graph writer); a row's inserted count says which way it moves: 1
# up, 0 down (a new row only ever goes up: a removed edge was counted when it was added).
_MOVE_COUNTS = (
    "INSERT INTO edge_counts (src, type, count) VALUES {values} "
    "ON CONFLICT (src, type) DO UPDATE SET count = edge_counts.count "
    "+ CASE WHEN excluded.count > 0 THEN 1 ELSE -1 END"
)
_LOG = ValuesList(user_events, ["user_id", "seq", "type", "payload", "created_at", "message_id"])
_NOTES = ValuesList(
    notifications, ["id", "user_id", "type", "payload", "created_at", "read", "message_id"]
)
_DOMAIN = ValuesList(domain_events, ["id", "type", "occurred_at", "data", "message_id"])


def _pair_lock_key(a: int, b: int) -> int:
    """A signed 64-bit advisory-lock key for the unordered pair {a, b}."""
    lo, hi = (a, b) if a < b else (b, a)
    mixed = (lo * 0x9E3779B97F4A7C15 ^ hi * 0xC2B2AE3D27D4EB4F) & 0xFFFFFFFFFFFFFFFF
    return mixed - (1 << 64) if mixed >= 1 << 63 else mixed


class SqlEdgeRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._dialect = conn.dialect.name

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(table)

    async def lock_pair(self, a: int, b: int) -> None:
        """Serialize writers of one pair until the transaction ends. SQLite writers are
        already serialized by BEGIN IMMEDIATE."""
        if self._dialect == "postgresql":
            key = _pair_lock_key(a, b)
            driver = on_driver(self._conn)
            if driver is not None:
                # The transaction's first statement, sent with its BEGIN (one round trip;
                # the key is an integer of ours, inlined).
                await driver.begin_with(f"SELECT pg_advisory_xact_lock({key:d})", _LOCK, key)
                return
            # Often a write's first statement: on the driver, opening the transaction.
            await fetch_any(self._conn, _LOCK, key)

    @property
    def checks_pairs(self) -> bool:
        """May a graph write go as ``write_pair_checked`` (PostgreSQL on the driver, no
        transaction begun: ``socius_pair_write``, decision 0053)?"""
        driver = on_driver(self._conn)
        return driver is not None and self._dialect == "postgresql" and not driver.begun

    async def pair_state(self, actor: int, other: int) -> PairState:
        """The pair as a graph write finds it (``PairState``), after ``lock_pair``."""
        mute = int(EdgeType.MUTES)
        if direct(self._conn) and self._dialect == "postgresql":
            rows = await fetch(
                self._conn, _PAIR_STATE, actor, other, actor, other, other, mute, actor
            )
            found = {uid: (status, private) for uid, status, private, _, _ in rows}
            types = frozenset(EdgeType(t) for t in rows[0][3]) if rows else frozenset()
            return _state(found, actor, other, types, bool(rows and rows[0][4]))
        if direct(self._conn):
            found = {
                uid: (status, private)
                for uid, status, private in await fetch(self._conn, _PAIR_USERS, actor, other)
            }
            edge_rows = await fetch(self._conn, _PAIR_EDGES, actor, other, other, mute, actor)
            return _state(
                found,
                actor,
                other,
                frozenset(EdgeType(t) for s, t in edge_rows if s == actor),
                any(s == other for s, _ in edge_rows),
            )
        locked_users = await SqlUserRepository(self._conn).lock([actor, other], exclusive=False)
        return _state(
            {u.id: (u.status.value, u.is_private) for u in locked_users},
            actor,
            other,
            await self.types_between(actor, other),
            bool(await self.has(other, EdgeType.MUTES, [actor])),
        )

    async def write_pair(self, change: PairWrite) -> list[Event]:
        """Store ``change`` (``PairWrite``); its log events, numbered. PostgreSQL: one
        statement of data-modifying CTEs; SQLite: one statement per table, on the driver."""
        if not direct(self._conn):
            return await self._write_pair_built(change)
        removed = [k for t in change.remove for k in _with_inverse(change.actor, t, change.other)]
        added = [k for t in change.add for k in _with_inverse(change.actor, t, change.other)]
        moves = sorted([(s, t, 0) for s, t, _ in removed] + [(s, t, 1) for s, t, _ in added])
        when = write_timestamp(change.created_at, self._dialect)
        per_user = by_user(change.log)
        dialect = self._conn.dialect
        # (name, rows, arguments): the statement texts depend on the names and row counts
        # alone, and are made once per shape (_part_sql, _pair_sql).
        parts: list[tuple[str, int, list[Any]]] = []
        if removed:
            parts.append(("del", len(removed), _flat(removed)))
        if added:
            args = [v for s, t, d in added for v in (s, t, d, change.pos, when)]
            parts.append(("ins", len(added), args))
        if moves:
            parts.append(("cnt", len(moves), _flat(moves)))
        if change.notifications:
            rows = [
                (n.id, n.user_id, n.type, n.payload, n.created_at, n.read, n.message_id)
                for n in change.notifications
            ]
            parts.append(("note", len(rows), _NOTES.convert(dialect, rows)))
        if change.domain:
            domain = [(e.id, e.type, e.occurred_at, e.data, e.message_id) for e in change.domain]
            parts.append(("dom", len(domain), _DOMAIN.convert(dialect, domain)))
        if self._dialect == "postgresql":
            last = await self._write_pair_pg(parts, per_user, change.created_at)
        else:
            for name, n, args in parts:
                await fetch(self._conn, _part_sql(name, n), *args)
            last = await self._reserve_and_log(per_user, change.created_at)
        return numbered_events(per_user, last, change.created_at)

    async def write_pair_checked(
        self, change: PairWrite, states: bytes
    ) -> tuple[PairState, list[Event] | None]:
        """Store ``change`` if the pair, read under its lock, is in ``states`` (a bitmap
        over ``pair_code``, bit ``code`` of byte ``code // 8``) with both users there and
        the other one active: one call of ``socius_pair_write`` by itself (where
        ``checks_pairs``; its own transaction, committed when it answers). The pair as
        found, and the stored log events, numbered (None: nothing stored)."""
        driver = on_driver(self._conn)
        assert driver is not None
        dialect = self._conn.dialect
        when = change.created_at
        removed = [k for t in change.remove for k in _with_inverse(change.actor, t, change.other)]
        added = [k for t in change.add for k in _with_inverse(change.actor, t, change.other)]
        moves = sorted([(s, t, 0) for s, t, _ in removed] + [(s, t, 1) for s, t, _ in added])
        per_user = by_user(change.log)
        notes = _NOTES.convert(
            dialect,
            [
                (n.id, n.user_id, n.type, n.payload, n.created_at, n.read, n.message_id)
                for n in change.notifications
            ],
        )
        domain = _DOMAIN.convert(
            dialect,
            [(e.id, e.type, e.occurred_at, e.data, e.message_id) for e in change.domain],
        )
        users_sorted = sorted(per_user)
        log = _LOG.convert(
            dialect,
            [
                (u, len(mine) - i, e.type, e.payload, when, e.message_id)
                for u in users_sorted
                for mine in (per_user[u],)
                for i, e in enumerate(mine, start=1)
            ],
        )
        (
            (written, actor_there, status, private, types, muted, users_found, seqs),
        ) = await driver.fetch(
            _PAIR_WRITE,
            _pair_lock_key(change.actor, change.other),
            change.actor,
            change.other,
            states,
            int(EdgeType.MUTES),
            [k[0] for k in removed],
            [k[1] for k in removed],
            [k[2] for k in removed],
            [k[0] for k in added],
            [k[1] for k in added],
            [k[2] for k in added],
            change.pos,
            when,
            [m[0] for m in moves],
            [m[1] for m in moves],
            [m[2] == 1 for m in moves],
            *(notes[i::7] for i in range(7)),
            *(domain[i::5] for i in range(5)),
            users_sorted,
            [len(per_user[u]) for u in users_sorted],
            log[0::6],
            log[1::6],
            log[2::6],
            log[3::6],
            log[5::6],
            begin=False,
        )
        found = PairState(
            bool(actor_there), status == _ACTIVE, bool(private), types_of_code(types), bool(muted)
        )
        if not written:
            return found, None
        last = dict(zip(users_found, seqs, strict=True)) if users_found else {}
        return found, numbered_events(per_user, last, change.created_at)

    async def _write_pair_pg(
        self,
        parts: list[tuple[str, int, list[Any]]],
        per_user: dict[int, list[Event]],
        when: datetime,
    ) -> dict[int, int]:
        """One statement: every part a data-modifying CTE. The log's numbers are reserved
        after the counts have moved (the seqs CTE reads the counts CTE first): counts,
        then log counters, the lock order of every graph writer."""
        args = [a for _, _, part in parts for a in part]
        users_sorted = sorted(per_user)
        rows = [
            (u, len(mine) - i, e.type, e.payload, when, e.message_id)
            for u in users_sorted
            for mine in (per_user[u],)
            for i, e in enumerate(mine, start=1)
        ]
        if per_user:
            args += [v for u in users_sorted for v in (u, len(per_user[u]))]
            args += _LOG.convert(self._conn.dialect, rows)
        sql = _pair_sql(tuple((name, n) for name, n, _ in parts), len(users_sorted), len(rows))
        found = await fetch(self._conn, sql, *args)
        return {int(u): int(q) for u, q in found} if per_user else {}

    async def _reserve_and_log(
        self, per_user: dict[int, list[Event]], when: datetime
    ) -> dict[int, int]:
        if not per_user:
            return {}
        if on_driver(self._conn) is not None:
            return await self._reserve_and_log_on_driver(per_user, when)
        outbox = SqlOutboxRepository(self._conn)
        stored = await outbox.add([e for u in sorted(per_user) for e in per_user[u]], when)
        last: dict[int, int] = {}
        for e in stored:
            assert e.seq is not None
            last[e.user_id] = max(last.get(e.user_id, 0), e.seq)
        return last

    async def _reserve_and_log_on_driver(
        self, per_user: dict[int, list[Event]], when: datetime
    ) -> dict[int, int]:
        """SQLite, on the driver: the log counters taken in ascending user order (one
        statement), then the events numbered below them (one statement)."""
        users_sorted = sorted(per_user)
        counts = [v for u in users_sorted for v in (u, len(per_user[u]))]
        found = await fetch(
            self._conn,
            f"INSERT INTO user_seqs (user_id, seq) VALUES {_marks(len(users_sorted), 2)} "  # noqa: S608
            "ON CONFLICT (user_id) DO UPDATE SET seq = user_seqs.seq + excluded.seq "
            "RETURNING user_id, seq",
            *counts,
        )
        last = {int(u): int(q) for u, q in found}
        rows = [
            (u, last[u] - len(mine) + i, e.type, e.payload, when, e.message_id)
            for u in users_sorted
            for mine in (per_user[u],)
            for i, e in enumerate(mine, start=1)
        ]
        await fetch(
            self._conn,
            f"INSERT INTO user_events ({_LOG.column_list}) VALUES {_marks(len(rows), 6)}",  # noqa: S608
            *_LOG.convert(self._conn.dialect, rows),
        )
        return last

    async def _write_pair_built(self, change: PairWrite) -> list[Event]:
        """The same writes through SQLAlchemy (a connection ``direct`` refuses)."""
        for type_ in change.remove:
            await self.remove(change.actor, type_, change.other)
        for type_ in change.add:
            await self.add(
                change.actor, type_, change.other, pos=change.pos, created_at=change.created_at
            )
        await SqlNotificationRepository(self._conn).add(change.notifications)
        await SqlDomainEventRepository(self._conn).add(change.domain)
        return await SqlOutboxRepository(self._conn).add(change.log, change.created_at)

    async def types_between(self, src: int, dst: int) -> frozenset[EdgeType]:
        if direct(self._conn):
            found = await fetch(self._conn, _TYPES_BETWEEN, src, dst)
            return frozenset(EdgeType(row[0]) for row in found)
        rows = await self._conn.execute(
            select(edges.c.type).where(edges.c.src == src, edges.c.dst == dst)
        )
        return frozenset(EdgeType(row.type) for row in rows)

    async def edge_types_of(self, src: int, *, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` of ``src``'s edges as ``(dst, type)``, in no order."""
        if direct(self._conn):
            return [(d, t) for d, t in await fetch(self._conn, EDGE_TYPES_OF, src, limit)]
        rows = await self._conn.execute(
            select(edges.c.dst, edges.c.type).where(edges.c.src == src).limit(limit)
        )
        return [(r.dst, r.type) for r in rows]

    async def types_between_many(
        self, src: int, dsts: Sequence[int]
    ) -> dict[int, frozenset[EdgeType]]:
        found: dict[int, set[EdgeType]] = {d: set() for d in dsts}
        if dsts:
            rows = await self._conn.execute(
                select(edges.c.dst, edges.c.type).where(
                    edges.c.src == src, one_of(edges.c.dst, dsts, self._dialect)
                )
            )
            for row in rows:
                found[row.dst].add(EdgeType(row.type))
        return {d: frozenset(t) for d, t in found.items()}

    async def add(
        self, src: int, type_: EdgeType, dst: int, *, pos: int, created_at: datetime
    ) -> bool:
        """Add the edge and its inverse; False when it was already there. One INSERT for
        both rows (its RETURNING says whether either was new), one for both counts."""
        keys = _with_inverse(src, type_, dst)
        if direct(self._conn):
            when = write_timestamp(created_at, self._dialect)
            args = [v for s, t, d in keys for v in (s, t, d, pos, when)]
            sql = _INSERT_EDGES[len(keys)]
            if not await fetch(self._conn, sql, *args):
                return False
            await self._bump([(s, t) for s, t, _ in keys], +1)
            return True
        rows = [
            {"src": s, "type": t, "dst": d, "pos": pos, "created_at": created_at}
            for s, t, d in keys
        ]
        result = await self._conn.execute(
            self._insert(edges).values(rows).on_conflict_do_nothing().returning(edges.c.src)
        )
        if not result.all():
            return False
        await self._bump([(s, t) for s, t, _ in keys], +1)
        return True

    async def remove(self, src: int, type_: EdgeType, dst: int) -> bool:
        """Remove the edge and its inverse; False when it was not there."""
        keys = _with_inverse(src, type_, dst)
        if direct(self._conn):
            args = [v for key in keys for v in key]
            if not await fetch(self._conn, _DELETE_EDGES[len(keys)], *args):
                return False
            await self._bump([(s, t) for s, t, _ in keys], -1)
            return True
        # Equality-keyed terms under OR: SQLite cannot use the primary key for a row-value
        # IN list and would scan every edge; an OR of keys is one probe each.
        result = await self._conn.execute(
            delete(edges)
            .where(
                or_(
                    *(
                        and_(edges.c.src == s, edges.c.type == t, edges.c.dst == d)
                        for s, t, d in keys
                    )
                )
            )
            .returning(edges.c.src)
        )
        if not result.all():
            return False
        await self._bump([(s, t) for s, t, _ in keys], -1)
        return True

    @staticmethod
    def _delete_one(src: int, type_: int, dst: int) -> Any:
        return delete(edges).where(edges.c.src == src, edges.c.type == type_, edges.c.dst == dst)

    async def _bump(self, keys: Iterable[tuple[int, int]], delta: int) -> None:
        """One statement for every count; rows in ascending key order, so concurrent
        transactions lock count rows in the same order."""
        ordered = sorted(set(keys))
        if direct(self._conn):
            args = [v for s, t in ordered for v in (s, t, max(delta, 0))]
            await fetch(self._conn, _BUMP[len(ordered)], *args, delta)
            return
        rows = [{"src": s, "type": t, "count": max(delta, 0)} for s, t in ordered]
        stmt = self._insert(edge_counts).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=[edge_counts.c.src, edge_counts.c.type],
            set_={"count": edge_counts.c.count + delta},
        )
        await self._conn.execute(stmt)

    async def range(
        self, src: int, type_: EdgeType, *, limit: int, before_pos: int | None = None
    ) -> list[EdgeRow]:
        """Newest first; ``before_pos`` continues after the last row of a previous page."""
        if direct(self._conn):
            if before_pos is None:
                found = await fetch(self._conn, _RANGE, src, int(type_), limit)
            else:
                found = await fetch(self._conn, _RANGE_BEFORE, src, int(type_), before_pos, limit)
            return [EdgeRow(d, p, read_timestamp(c)) for d, p, c in found]
        stmt = (
            select(edges.c.dst, edges.c.pos, edges.c.created_at)
            .where(edges.c.src == src, edges.c.type == int(type_))
            .order_by(edges.c.pos.desc(), edges.c.dst.desc())
            .limit(limit)
        )
        if before_pos is not None:
            stmt = stmt.where(edges.c.pos < before_pos)
        return [EdgeRow(r.dst, r.pos, r.created_at) for r in await self._conn.execute(stmt)]

    async def range_many(
        self, srcs: Sequence[int], type_: EdgeType, *, limit: int
    ) -> dict[int, list[EdgeRow]]:
        """The newest ``limit`` edges of each of ``srcs``, in one query."""
        if not srcs:
            return {}
        rank = (
            func.row_number()
            .over(partition_by=edges.c.src, order_by=(edges.c.pos.desc(), edges.c.dst.desc()))
            .label("rank")
        )
        inner = (
            select(edges.c.src, edges.c.dst, edges.c.pos, edges.c.created_at, rank)
            .where(one_of(edges.c.src, srcs, self._dialect), edges.c.type == int(type_))
            .subquery()
        )
        rows = await self._conn.execute(
            select(inner.c.src, inner.c.dst, inner.c.pos, inner.c.created_at)
            .where(inner.c.rank <= limit)
            .order_by(inner.c.src, inner.c.rank)
        )
        found: dict[int, list[EdgeRow]] = {s: [] for s in srcs}
        for row in rows:
            found[row.src].append(EdgeRow(row.dst, row.pos, row.created_at))
        return found

    async def newest_with_degree(
        self, src: int, type_: EdgeType, *, limit: int
    ) -> list[tuple[int, int | None]]:
        """The newest ``limit`` users ``src`` has a ``type_`` edge to, each with its own
        count of ``type_`` edges (None for a user who is not active)."""
        stmt = (
            select(
                edges.c.dst,
                users.c.status,
                func.coalesce(edge_counts.c.count, 0).label("degree"),
            )
            .select_from(edges)
            .outerjoin(users, users.c.id == edges.c.dst)
            .outerjoin(
                edge_counts,
                and_(edge_counts.c.src == edges.c.dst, edge_counts.c.type == int(type_)),
            )
            .where(edges.c.src == src, edges.c.type == int(type_))
            .order_by(edges.c.pos.desc(), edges.c.dst.desc())
            .limit(limit)
        )
        return [
            (row.dst, int(row.degree) if row.status == "active" else None)
            for row in await self._conn.execute(stmt)
        ]

    async def second_degree(
        self,
        src: int,
        type_: EdgeType,
        weights: Sequence[tuple[int, float]],
        *,
        fanout: int,
        exclude: Iterable[EdgeType],
        rank_limit: int,
        limit: int,
    ) -> list[tuple[int, int, float]]:
        """Users two ``type_`` edges away: through each of the weighted users' newest
        ``fanout`` edges, never ``src`` or a weighted user. Each with how many weighted
        users lead there and the sum of their weights, best first (weight, count, id);
        the best ``rank_limit`` are kept, then those ``src`` has no edge of ``exclude``
        to, at most ``limit``. One query, counted where the rows are."""
        if not weights:
            return []
        params: dict[str, Any] = {
            "src": src,
            "type": int(type_),
            "skip": max(fanout - 1, 0),
            "lowest": -(1 << 63),
            "rank_limit": rank_limit,
            "limit": limit,
        }
        for i, (user_id, weight) in enumerate(weights):
            params[f"f{i}"] = user_id
            params[f"w{i}"] = float(weight)
        excluded = sorted({int(t) for t in exclude})
        for i, t in enumerate(excluded):
            params[f"x{i}"] = t
        stmt = _second_degree_sql(len(weights), len(excluded))
        rows = await self._conn.execute(stmt, params)
        return [(int(r.candidate), int(r.mutual), float(r.score)) for r in rows]

    async def friends_of_friends(
        self,
        viewers: Sequence[int],
        type_: EdgeType,
        *,
        fanout: int,
        exclude: Iterable[EdgeType],
        rank_limit: int,
        limit: int,
    ) -> dict[int, list[tuple[int, int, float]]]:
        """For each of ``viewers``: ``second_degree`` through the viewer's newest ``fanout``
        ``type_`` edges, each weighted ``1 / ln(max(degree, 2))`` (Adamic-Adar; a user who
        is not active counts as degree 2), i.e. ``newest_with_degree`` and
        ``second_degree`` in one go. Every viewer is in the answer (an empty list: none).

        On PostgreSQL prepared statements on the driver (array parameters: one text each,
        whatever the sizes): the viewers' friends in one, then one per viewer (not one
        for all: see _SECOND_DEGREE_PG) whose list comes back as three arrays, no row per
        candidate. On SQLite (in process: no round trips to save) two statements per viewer
        on the driver, their texts cached by size. Elsewhere the built statements."""
        found: dict[int, list[tuple[int, int, float]]] = {v: [] for v in viewers}
        if not found:
            return found
        excluded = sorted({int(t) for t in exclude})
        t = int(type_)
        skip = max(fanout - 1, 0)
        if direct(self._conn) and self._dialect == "postgresql":
            weighted: dict[int, tuple[list[int], list[float]]] = {}
            for viewer, f, degree in await fetch(
                self._conn, _FRIENDS_WITH_DEGREE_PG, list(found), t, fanout
            ):
                dsts, wts = weighted.setdefault(viewer, ([], []))
                dsts.append(f)
                wts.append(1.0 / math.log(max(degree, 2)))
            for viewer, (dsts, wts) in weighted.items():
                (ids, mutuals, scores), *_ = await fetch(
                    self._conn,
                    _SECOND_DEGREE_PG,
                    dsts,
                    wts,
                    t,
                    skip,
                    viewer,
                    rank_limit,
                    excluded,
                    limit,
                )
                if ids:
                    found[viewer] = list(zip(ids, mutuals, scores, strict=True))
            return found
        for viewer in found:
            if direct(self._conn):  # SQLite
                friends = [
                    (dst, int(degree) if status == "active" else None)
                    for dst, status, degree in await fetch(
                        self._conn, _NEWEST_WITH_DEGREE, t, viewer, t, fanout
                    )
                ]
            else:
                friends = await self.newest_with_degree(viewer, type_, limit=fanout)
            weights = [(f, 1.0 / math.log(max(d if d is not None else 2, 2))) for f, d in friends]
            if not weights:
                continue
            if direct(self._conn):
                args = [v for pair in weights for v in pair]
                args += [t, t, skip, -(1 << 63), viewer, rank_limit, viewer]
                args += [*excluded, limit]
                sql = _second_degree_direct(len(weights), len(excluded))
                found[viewer] = [
                    (int(c), int(m), float(s)) for c, m, s in await fetch(self._conn, sql, *args)
                ]
            else:
                found[viewer] = await self.second_degree(
                    viewer,
                    type_,
                    weights,
                    fanout=fanout,
                    exclude=[EdgeType(x) for x in excluded],
                    rank_limit=rank_limit,
                    limit=limit,
                )
        return found

    async def time_range(
        self, src: int, type_: EdgeType, *, since: datetime, until: datetime, limit: int
    ) -> list[EdgeRow]:
        stmt = (
            select(edges.c.dst, edges.c.pos, edges.c.created_at)
            .where(
                edges.c.src == src,
                edges.c.type == int(type_),
                edges.c.created_at >= since,
                edges.c.created_at < until,
            )
            .order_by(edges.c.pos.desc())
            .limit(limit)
        )
        return [EdgeRow(r.dst, r.pos, r.created_at) for r in await self._conn.execute(stmt)]

    async def has(self, src: int, type_: EdgeType, dsts: Sequence[int]) -> set[int]:
        """Which of ``dsts`` the edge points to."""
        if not dsts:
            return set()
        rows = await self._conn.execute(
            select(edges.c.dst).where(
                edges.c.src == src,
                edges.c.type == int(type_),
                one_of(edges.c.dst, dsts, self._dialect),
            )
        )
        return {row.dst for row in rows}

    async def has_from(self, srcs: Sequence[int], type_: EdgeType, dst: int) -> set[int]:
        """Which of ``srcs`` have an edge of ``type_`` to ``dst`` (by primary key)."""
        if not srcs:
            return set()
        rows = await self._conn.execute(
            select(edges.c.src).where(
                one_of(edges.c.src, srcs, self._dialect),
                edges.c.type == int(type_),
                edges.c.dst == dst,
            )
        )
        return {row.src for row in rows}

    async def counts(
        self, srcs: Sequence[int], types: Sequence[EdgeType]
    ) -> dict[int, dict[EdgeType, int]]:
        result: dict[int, dict[EdgeType, int]] = {s: dict.fromkeys(types, 0) for s in srcs}
        if srcs:
            rows = await self._conn.execute(
                select(edge_counts.c.src, edge_counts.c.type, edge_counts.c.count).where(
                    one_of(edge_counts.c.src, srcs, self._dialect),
                    edge_counts.c.type.in_([int(t) for t in types]),
                )
            )
            for src, type_, count in rows:
                result[src][EdgeType(type_)] = int(count)
        return result

    async def mutual(
        self, a: int, b: int, type_: EdgeType, *, limit: int, before_pos: int | None = None
    ) -> list[EdgeRow]:
        """Users both ``a`` and ``b`` have an edge of ``type_`` to, by ``a``'s order."""
        if direct(self._conn):
            t = int(type_)
            if before_pos is None:
                found = await fetch(self._conn, _MUTUAL_FIRST, b, t, a, t, limit)
            else:
                found = await fetch(self._conn, _MUTUAL_BEFORE, b, t, a, t, before_pos, limit)
            return [EdgeRow(d, p, read_timestamp(c)) for d, p, c in found]
        mine, theirs = edges.alias("mine"), edges.alias("theirs")
        stmt = (
            select(mine.c.dst, mine.c.pos, mine.c.created_at)
            .join(
                theirs,
                and_(theirs.c.src == b, theirs.c.type == int(type_), theirs.c.dst == mine.c.dst),
            )
            .where(mine.c.src == a, mine.c.type == int(type_))
            .order_by(mine.c.pos.desc(), mine.c.dst.desc())
            .limit(limit)
        )
        if before_pos is not None:
            stmt = stmt.where(mine.c.pos < before_pos)
        return [EdgeRow(r.dst, r.pos, r.created_at) for r in await self._conn.execute(stmt)]

    async def erase(self, user_id: int) -> set[int]:
        """Remove every edge to or from ``user_id``, correct the others' counts, and return
        the users whose edges changed."""
        rows = (
            await self._conn.execute(
                select(edges.c.dst, edges.c.type).where(edges.c.src == user_id)
            )
        ).all()
        decrements: dict[tuple[int, int], int] = {}
        for row in rows:
            inverse = INVERSE[EdgeType(row.type)]
            if inverse is not None and row.dst != user_id:
                key = (row.dst, int(inverse))
                decrements[key] = decrements.get(key, 0) + 1
        # Edges without an inverse (mutes) pointing at the user.
        muters = (
            await self._conn.execute(
                select(edges.c.src, edges.c.type).where(
                    edges.c.dst == user_id, edges.c.type == int(EdgeType.MUTES)
                )
            )
        ).all()
        for row in muters:
            key = (row.src, int(row.type))
            decrements[key] = decrements.get(key, 0) + 1
        # The user's own edges by the primary key's prefix; the inverses one by one by key
        # (an OR on dst would scan every edge); mutes pointing at the user by their rows.
        await self._conn.execute(delete(edges).where(edges.c.src == user_id))
        for row in rows:
            inverse = INVERSE[EdgeType(row.type)]
            if inverse is not None:
                await self._conn.execute(self._delete_one(row.dst, int(inverse), user_id))
        for row in muters:
            await self._conn.execute(self._delete_one(row.src, int(row.type), user_id))
        await self._conn.execute(delete(edge_counts).where(edge_counts.c.src == user_id))
        for (src, type_), n in sorted(decrements.items()):
            await self._conn.execute(
                edge_counts.update()
                .where(edge_counts.c.src == src, edge_counts.c.type == type_)
                .values(
                    count=func.max(edge_counts.c.count - n, 0)
                    if self._dialect == "sqlite"
                    else func.greatest(edge_counts.c.count - n, 0)
                )
            )
        return {row.dst for row in rows} | {row.src for row in muters}


def _state(
    found: dict[int, tuple[str, bool]],
    actor: int,
    other: int,
    types: frozenset[EdgeType],
    other_mutes_actor: bool,
) -> PairState:
    """A ``PairState`` from the users found (id: (status, is_private))."""
    status, private = found.get(other, (None, False))
    return PairState(actor in found, status == _ACTIVE, bool(private), types, other_mutes_actor)


def _flat(rows: Iterable[Sequence[Any]]) -> list[Any]:
    return [v for row in rows for v in row]


def _marks(rows: int, width: int) -> str:
    """``(?, ?), (?, ?)``: ``rows`` rows of ``width`` placeholders."""
    one = "(" + ", ".join("?" * width) + ")"
    return ", ".join(one for _ in range(rows))


@functools.lru_cache(maxsize=64)
def _part_sql(name: str, n: int) -> str:
    """A part of ``write_pair`` for ``n`` rows (``?`` placeholders), as made once."""
    if name == "del":
        where = " OR ".join("(src = ? AND type = ? AND dst = ?)" for _ in range(n))
        return f"DELETE FROM edges WHERE {where}"  # noqa: S608 (placeholders only)
    if name == "ins":
        return (
            f"INSERT INTO edges (src, type, dst, pos, created_at) VALUES {_marks(n, 5)} "  # noqa: S608
            "ON CONFLICT DO NOTHING"
        )
    if name == "cnt":
        return _MOVE_COUNTS.format(values=_marks(n, 3))
    if name == "note":
        return f"INSERT INTO notifications ({_NOTES.column_list}) VALUES {_marks(n, 7)}"  # noqa: S608
    assert name == "dom", name
    return f"INSERT INTO domain_events ({_DOMAIN.column_list}) VALUES {_marks(n, 5)}"  # noqa: S608


@functools.lru_cache(maxsize=128)
def _pair_sql(parts: tuple[tuple[str, int], ...], users: int, rows: int) -> str:
    """``write_pair``'s one statement on PostgreSQL for ``parts`` (name, rows), the log
    counters of ``users`` users and ``rows`` log rows: its arguments are the parts', then
    (user, count) per user, then the log rows."""
    ctes = [f"{name} AS ({_part_sql(name, n)} RETURNING 1)" for name, n in parts]
    main = "SELECT 0, 0"
    if users:
        after = (
            " WHERE (SELECT count(*) FROM cnt) >= 0" if any(p[0] == "cnt" for p in parts) else ""
        )
        ctes.append(
            "seqs AS (INSERT INTO user_seqs (user_id, seq) SELECT v.u, v.n FROM (VALUES "  # noqa: S608
            + ", ".join("(?::bigint, ?::bigint)" for _ in range(users))
            + f") AS v(u, n){after} ORDER BY v.u "
            "ON CONFLICT (user_id) DO UPDATE SET seq = user_seqs.seq + excluded.seq "
            "RETURNING user_id, seq)"
        )
        ctes.append(
            f"log AS (INSERT INTO user_events ({_LOG.column_list}) "  # noqa: S608
            "SELECT v.u, s.seq - v.back, v.t, v.p, v.c, v.m FROM (VALUES "
            + ", ".join(
                "(?::bigint, ?::bigint, ?::varchar, ?::json, ?::timestamptz, ?::bigint)"
                for _ in range(rows)
            )
            + ") AS v(u, back, t, p, c, m) JOIN seqs s ON s.user_id = v.u)"
        )
        main = "SELECT user_id, seq FROM seqs"
    return "WITH " + ", ".join(ctes) + " " + main


def _with_inverse(src: int, type_: EdgeType, dst: int) -> list[tuple[int, int, int]]:
    """The (src, type, dst) keys of an edge and of its inverse, if it has one."""
    keys = [(src, int(type_), dst)]
    inverse = INVERSE[type_]
    if inverse is not None:
        keys.append((dst, int(inverse), src))
    return keys


def _second_degree_sql(n: int, n_excluded: int) -> TextClause:
    """The statement of ``second_degree`` for ``n`` weighted users and ``n_excluded`` edge
    types (portable SQL: a VALUES list, and per user a correlated probe for the position
    of the ``fanout``-th newest edge, so each list is read by the (src, type, pos) index,
    never in full). Only placeholder names are put into the text."""
    weighted = ", ".join(
        f"(CAST(:f{i} AS BIGINT), CAST(:w{i} AS DOUBLE PRECISION))" for i in range(n)
    )
    types = ", ".join(f":x{i}" for i in range(n_excluded)) or "NULL"
    return text(
        f"""
        WITH w(f, wt) AS (VALUES {weighted}),
        ranked AS (
            SELECT e.dst AS candidate, COUNT(*) AS mutual, SUM(w.wt) AS score
            FROM w JOIN edges e ON e.src = w.f AND e.type = :type AND e.pos >= COALESCE(
                (SELECT k.pos FROM edges k WHERE k.src = w.f AND k.type = :type
                 ORDER BY k.pos DESC LIMIT 1 OFFSET :skip),
                :lowest)
            WHERE e.dst <> :src AND e.dst NOT IN (SELECT f FROM w)
            GROUP BY e.dst
            ORDER BY score DESC, mutual DESC, candidate
            LIMIT :rank_limit
        )
        SELECT candidate, mutual, score FROM ranked
        WHERE NOT EXISTS (SELECT 1 FROM edges r
                          WHERE r.src = :src AND r.type IN ({types}) AND r.dst = ranked.candidate)
        ORDER BY score DESC, mutual DESC, candidate
        LIMIT :limit
        """  # noqa: S608 (placeholder names only; every value is bound)
    )


@functools.lru_cache(maxsize=128)  # one text per friend count (≤ FANOUT)
def _second_degree_direct(n: int, n_excluded: int) -> str:
    """The statement of ``second_degree`` with ``?`` placeholders for the driver (SQLite),
    for ``n`` weighted users and ``n_excluded`` edge types; its arguments in order: the
    weights' pairs, type, type, fanout - 1, the lowest position, src, rank_limit, src, the
    excluded types, limit."""
    weighted = ", ".join("(?, ?)" for _ in range(n))
    types = ", ".join("?" * n_excluded) or "NULL"
    return f"""
        WITH w(f, wt) AS (VALUES {weighted}),
        ranked AS (
            SELECT e.dst AS candidate, COUNT(*) AS mutual, SUM(w.wt) AS score
            FROM w JOIN edges e ON e.src = w.f AND e.type = ? AND e.pos >= COALESCE(
                (SELECT k.pos FROM edges k WHERE k.src = w.f AND k.type = ?
                 ORDER BY k.pos DESC LIMIT 1 OFFSET ?),
                ?)
            WHERE e.dst <> ? AND e.dst NOT IN (SELECT f FROM w)
            GROUP BY e.dst
            ORDER BY score DESC, mutual DESC, candidate
            LIMIT ?
        )
        SELECT candidate, mutual, score FROM ranked
        WHERE NOT EXISTS (SELECT 1 FROM edges r
                          WHERE r.src = ? AND r.type IN ({types}) AND r.dst = ranked.candidate)
        ORDER BY score DESC, mutual DESC, candidate
        LIMIT ?
        """  # noqa: S608 (placeholders only; every value is bound)
