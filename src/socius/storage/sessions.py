"""The sessions repository: sessions and their rotating refresh tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import Row, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.errors import Unavailable
from socius.domain.sessions import RefreshSpend, RefreshToken, Session, SpendOutcome
from socius.domain.users import User, UserStatus
from socius.storage.driver import direct, fetch, read_timestamp, write_timestamp
from socius.storage.id_lists import one_of
from socius.storage.reads import HotReads
from socius.storage.tables import refresh_tokens, revoked_sessions, sessions, users
from socius.storage.users import USER_COLUMNS, USER_FIELDS, user_from_driver

__all__ = ["Rotation", "SqlRefreshRotation", "SqlSessionRepository"]


def _to_session(row: Row[Any]) -> Session:
    return Session(
        id=row.id,
        user_id=row.user_id,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        user_agent=row.user_agent,
        ip=row.ip,
    )


_SESSION_FIELDS = tuple(c.name for c in sessions.c)

# A refresh on PostgreSQL, after the spend: touch the session, store its next refresh
# token, read the session and its user back: one round trip instead of four. The caller
# checks the session and the user are usable and rolls the transaction back otherwise,
# as it did when these were four statements.
_S_COLUMNS = ", ".join(_SESSION_FIELDS)
_RETURNED = ", ".join([f"s.{n}" for n in _SESSION_FIELDS] + [f"u.{n}" for n in USER_FIELDS])
_RENEW_POSTGRES = "".join(
    [
        "WITH s AS (UPDATE sessions SET last_used_at = ? WHERE id = ? RETURNING ",
        _S_COLUMNS,
        "),",
        " t AS (INSERT INTO refresh_tokens (token_hash, session_id, user_id, created_at)",
        " SELECT ?::bytea, s.id, ?::bigint, ?::timestamptz FROM s)",
        " SELECT ",
        _RETURNED,
        " FROM s JOIN users u ON u.id = ?",
    ]
)

# The same on SQLite, as three statements on the driver (each a call into the library,
# no round trip).
_TOUCH = "".join(["UPDATE sessions SET last_used_at = ? WHERE id = ? RETURNING ", _S_COLUMNS])
_ADD_REFRESH = (
    "INSERT INTO refresh_tokens (token_hash, session_id, user_id, created_at) VALUES (?, ?, ?, ?)"
)
_SPEND = (
    "UPDATE refresh_tokens SET spent_at = ?, successor_salt = ?"
    " WHERE token_hash = ? AND spent_at IS NULL RETURNING session_id, user_id"
)
_USER = "".join(["SELECT ", USER_COLUMNS, " FROM users WHERE id = ?"])


# The whole refresh on PostgreSQL as one statement in autocommit (decision 0030): spend
# the token, touch its session, store the successor, read the session and the user back.
# One statement is atomic, so no BEGIN / COMMIT: 1 round trip instead of 4. The spend is
# still the race arbiter (a concurrent refresh of the same token waits on its row lock and
# then finds it spent) and it only happens when the session and the user are usable
# (AuthService's ``_usable``: not revoked, not expired, user active), so a refusal keeps
# nothing. No row back: unknown, spent, or not usable; the caller then takes the
# transactional path, which tells them apart (reuse, grace, expired) as before.
_ROTATE_POSTGRES = "".join(
    [
        "WITH spent AS (UPDATE refresh_tokens SET spent_at = ?, successor_salt = ?",
        " WHERE token_hash = ? AND spent_at IS NULL AND EXISTS (SELECT 1 FROM sessions s",
        " JOIN users u ON u.id = refresh_tokens.user_id",
        " WHERE s.id = refresh_tokens.session_id AND s.revoked_at IS NULL",
        f" AND s.expires_at > ? AND u.status = '{UserStatus.ACTIVE.value}')",
        " RETURNING session_id, user_id),",
        " s AS (UPDATE sessions SET last_used_at = ? FROM spent",
        " WHERE sessions.id = spent.session_id RETURNING ",
        ", ".join(f"sessions.{n}" for n in _SESSION_FIELDS),
        ", spent.user_id AS token_user_id),",
        " t AS (INSERT INTO refresh_tokens (token_hash, session_id, user_id, created_at)",
        " SELECT ?::bytea, spent.session_id, spent.user_id, ?::timestamptz FROM spent)",
        " SELECT ",
        _RETURNED,
        " FROM s JOIN users u ON u.id = s.token_user_id",
    ]
)


# Concurrent refreshes as one statement (decision 0044): the rotation above for a batch of
# distinct tokens, given as arrays ($1 hashes, $2 successor salts, $3 successor hashes, $4
# the times each was asked at). The spend finds its rows by ``token_hash = ANY($1)`` (an
# index search whatever the planner thinks of the arrays) and joins each to its input row;
# it is still the race arbiter per token, with the usability rule in its WHERE as above.
# Each spent token answers with its own row (its hash first), session and user; a token
# that is not spent has no row (the caller then takes the transactional path for it).
_ROTATE_MANY_POSTGRES = "".join(
    [
        "WITH i AS (SELECT * FROM unnest(?::bytea[], ?::bytea[], ?::bytea[], ?::timestamptz[])",
        " AS i(token_hash, successor_salt, successor_hash, at)),",
        " spent AS (UPDATE refresh_tokens SET spent_at = i.at, successor_salt = i.successor_salt",
        " FROM i WHERE refresh_tokens.token_hash = ANY(?::bytea[])",
        " AND refresh_tokens.token_hash = i.token_hash AND refresh_tokens.spent_at IS NULL",
        " AND EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = refresh_tokens.user_id",
        " WHERE s.id = refresh_tokens.session_id AND s.revoked_at IS NULL",
        f" AND s.expires_at > i.at AND u.status = '{UserStatus.ACTIVE.value}')",
        " RETURNING refresh_tokens.token_hash, refresh_tokens.session_id,",
        " refresh_tokens.user_id, i.successor_hash, i.at),",
        " s AS (UPDATE sessions SET last_used_at = x.at FROM (SELECT session_id, max(at) AS at",
        " FROM spent GROUP BY session_id) x WHERE sessions.id = x.session_id RETURNING ",
        ", ".join(f"sessions.{n}" for n in _SESSION_FIELDS),
        "),",
        " t AS (INSERT INTO refresh_tokens (token_hash, session_id, user_id, created_at)",
        " SELECT successor_hash, session_id, user_id, at FROM spent)",
        " SELECT spent.token_hash, ",
        _RETURNED,
        " FROM spent JOIN s ON s.id = spent.session_id JOIN users u ON u.id = spent.user_id",
    ]
)

# One rotation to ask for: the token's hash, its successor's salt and hash, and when.
Rotation = tuple[bytes, bytes, bytes, datetime]


class SqlRefreshRotation:
    """A refresh's rotation in one autocommit statement on PostgreSQL (see above), on the
    hot pool (``storage/reads.py``: asyncpg's prepared statements, connections kept)."""

    def __init__(self, reads: HotReads) -> None:
        self._reads = reads

    async def rotate(
        self, token_hash: bytes, successor_hash: bytes, successor_salt: bytes, when: datetime
    ) -> tuple[Session, User] | None:
        """Spend ``token_hash`` when it is live and its session and user are usable at
        ``when``, store ``successor_hash`` as the session's next token: the session and the
        user as they now are. None: nothing was written (the caller finds out why)."""
        row = await self._reads.statement(
            _ROTATE_POSTGRES, when, successor_salt, token_hash, when, when, successor_hash, when
        )
        if row is None:
            return None
        n = len(_SESSION_FIELDS)
        return _session_from_driver(row[:n]), user_from_driver(row[n:])

    async def rotate_many(self, ops: Sequence[Rotation]) -> list[tuple[Session, User] | None]:
        """``rotate`` of each ``(token_hash, successor_hash, successor_salt, when)``, the
        concurrent ones in one autocommit statement (decision 0044): an answer per op, in
        order. Only the first op of a token is tried; a later one of the same token gets
        None (nothing written for it), as does every op when the statement fails for
        another reason than an outage (a deadlock with another node's batch): it wrote
        nothing, and the caller's transactional path decides each one alone."""
        if len(ops) == 1:
            token_hash, successor_hash, salt, when = ops[0]
            return [await self.rotate(token_hash, successor_hash, salt, when)]
        first: dict[bytes, Rotation] = {}
        for op in ops:
            first.setdefault(op[0], op)
        # In the order of their hashes: the spend locks the rows in its input's order (a
        # hash join probed by the array), so two nodes' batches lock shared rows alike.
        unique = sorted(first.values(), key=lambda op: op[0])
        hashes = [op[0] for op in unique]
        try:
            rows = await self._reads.rows(
                _ROTATE_MANY_POSTGRES,
                hashes,
                [op[2] for op in unique],
                [op[1] for op in unique],
                [op[3] for op in unique],
                hashes,
            )
        except Unavailable:
            raise
        except asyncpg.PostgresError:
            return [None] * len(ops)
        n = len(_SESSION_FIELDS) + 1
        done = {
            bytes(row[0]): (_session_from_driver(row[1:n]), user_from_driver(row[n:]))
            for row in rows
        }
        answers: list[tuple[Session, User] | None] = []
        for op in ops:
            answers.append(done.pop(op[0], None) if first[op[0]] is op else None)
        return answers


def _session_from_driver(row: Any) -> Session:
    return Session(
        id=row[0],
        user_id=row[1],
        created_at=read_timestamp(row[2]),
        last_used_at=read_timestamp(row[3]),
        expires_at=read_timestamp(row[4]),
        revoked_at=None if row[5] is None else read_timestamp(row[5]),
        user_agent=row[6],
        ip=row[7],
    )


class SqlSessionRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, session: Session) -> None:
        await self._conn.execute(
            insert(sessions).values(
                id=session.id,
                user_id=session.user_id,
                created_at=session.created_at,
                last_used_at=session.last_used_at,
                expires_at=session.expires_at,
                revoked_at=session.revoked_at,
                user_agent=session.user_agent,
                ip=session.ip,
            )
        )

    async def get(self, session_id: int) -> Session | None:
        row = (
            await self._conn.execute(select(sessions).where(sessions.c.id == session_id))
        ).first()
        return _to_session(row) if row else None

    async def list_for_user(self, user_id: int) -> list[Session]:
        rows = await self._conn.execute(
            select(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
            .order_by(sessions.c.id.desc())
        )
        return [_to_session(row) for row in rows]

    async def touch(self, session_id: int, when: datetime) -> None:
        await self._conn.execute(
            update(sessions).where(sessions.c.id == session_id).values(last_used_at=when)
        )

    async def revoke(self, session_id: int, when: datetime) -> bool:
        result = await self._conn.execute(
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=when)
        )
        return bool(result.rowcount)

    async def revoke_all(
        self, user_id: int, when: datetime, *, except_id: int | None = None
    ) -> list[int]:
        stmt = (
            update(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=when)
            .returning(sessions.c.id)
        )
        if except_id is not None:
            stmt = stmt.where(sessions.c.id != except_id)
        return [row.id for row in await self._conn.execute(stmt)]

    async def add_refresh_token(
        self, token_hash: bytes, *, session_id: int, user_id: int, when: datetime
    ) -> None:
        await self._conn.execute(
            insert(refresh_tokens).values(
                token_hash=token_hash, session_id=session_id, user_id=user_id, created_at=when
            )
        )

    async def spend_refresh_token(
        self, token_hash: bytes, when: datetime, *, successor_salt: bytes | None = None
    ) -> RefreshSpend:
        # The conditional UPDATE is the race arbiter: only one caller flips spent_at.
        if self._conn.dialect.name == "sqlite" and direct(self._conn):
            # On the driver (a refresh's first statement; no round trip on SQLite).
            at = write_timestamp(when, "sqlite")
            rows = await fetch(self._conn, _SPEND, at, successor_salt, token_hash)
            if rows:
                return RefreshSpend(SpendOutcome.OK, rows[0][0], rows[0][1])
            return await self._missed(token_hash)
        won = (
            await self._conn.execute(
                update(refresh_tokens)
                .where(
                    refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.spent_at.is_(None)
                )
                .values(spent_at=when, successor_salt=successor_salt)
                .returning(refresh_tokens.c.session_id, refresh_tokens.c.user_id)
            )
        ).first()
        if won is not None:
            return RefreshSpend(SpendOutcome.OK, won.session_id, won.user_id)
        return await self._missed(token_hash)

    async def _missed(self, token_hash: bytes) -> RefreshSpend:
        """Why a spend did not happen: an unknown token, or one spent before."""
        seen = await self._refresh_row(token_hash)
        if seen is None:
            return RefreshSpend(SpendOutcome.UNKNOWN)
        return RefreshSpend(
            SpendOutcome.REUSED, seen.session_id, seen.user_id, seen.spent_at, seen.successor_salt
        )

    async def renew(
        self, session_id: int, user_id: int, token_hash: bytes, when: datetime
    ) -> tuple[Session, User] | None:
        """Touch the session, store ``token_hash`` as its next refresh token (of
        ``user_id``), and return the session and the user as they now are (None when either
        is gone). Inside a write unit of work whose caller rolls back unless both are usable."""
        if self._conn.dialect.name == "postgresql" and direct(self._conn):
            rows = await fetch(
                self._conn, _RENEW_POSTGRES, when, session_id, token_hash, user_id, when, user_id
            )
            if not rows:
                return None
            row = rows[0]
            n = len(_SESSION_FIELDS)
            return _session_from_driver(row[:n]), user_from_driver(row[n:])
        if self._conn.dialect.name == "sqlite" and direct(self._conn):
            at = write_timestamp(when, "sqlite")
            found = await fetch(self._conn, _TOUCH, at, session_id)
            if not found:
                return None
            await fetch(self._conn, _ADD_REFRESH, token_hash, session_id, user_id, at)
            user_rows = await fetch(self._conn, _USER, user_id)
            if not user_rows:
                return None
            return _session_from_driver(found[0]), user_from_driver(user_rows[0])
        await self.touch(session_id, when)
        await self.add_refresh_token(token_hash, session_id=session_id, user_id=user_id, when=when)
        session = await self.get(session_id)
        user_row = (await self._conn.execute(select(users).where(users.c.id == user_id))).first()
        if session is None or user_row is None:
            return None
        return session, user_from_driver(tuple(user_row))

    async def get_refresh_token(self, token_hash: bytes) -> RefreshToken | None:
        row = await self._refresh_row(token_hash)
        if row is None:
            return None
        return RefreshToken(row.session_id, row.user_id, row.created_at, row.spent_at)

    async def _refresh_row(self, token_hash: bytes) -> Row[Any] | None:
        stmt = select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)
        return (await self._conn.execute(stmt)).first()

    async def record_revocations(self, session_ids: list[int], until: datetime) -> None:
        if not session_ids:
            return
        known = {
            row.session_id
            for row in await self._conn.execute(
                select(revoked_sessions.c.session_id).where(
                    revoked_sessions.c.session_id.in_(session_ids)
                )
            )
        }
        fresh = [{"session_id": sid, "until": until} for sid in session_ids if sid not in known]
        if fresh:
            await self._conn.execute(insert(revoked_sessions), fresh)

    async def is_revoked(self, session_id: int, now: datetime) -> bool:
        row = (
            await self._conn.execute(
                select(revoked_sessions.c.session_id).where(
                    revoked_sessions.c.session_id == session_id, revoked_sessions.c.until > now
                )
            )
        ).first()
        return row is not None

    async def live_revocations(
        self, now: datetime, *, since: datetime | None = None
    ) -> list[tuple[int, datetime]]:
        stmt = select(revoked_sessions.c.session_id, revoked_sessions.c.until).where(
            revoked_sessions.c.until > now
        )
        if since is not None:
            stmt = stmt.where(revoked_sessions.c.until >= since)
        rows = await self._conn.execute(stmt)
        return [(row.session_id, row.until) for row in rows]

    async def last_logins(self, user_ids: Sequence[int]) -> dict[int, datetime]:
        """When each of ``user_ids`` last logged in, as far as the sessions on record tell
        (ended sessions are purged a while after they end): users without one are left out."""
        if not user_ids:
            return {}
        rows = await self._conn.execute(
            select(sessions.c.user_id, func.max(sessions.c.created_at).label("at"))
            .where(one_of(sessions.c.user_id, user_ids, self._conn.dialect.name))
            .group_by(sessions.c.user_id)
        )
        return {row.user_id: row.at for row in rows}

    async def purge(self, before: datetime) -> int:
        ended = or_(sessions.c.expires_at < before, sessions.c.revoked_at < before)
        dead = select(sessions.c.id).where(ended)
        await self._conn.execute(
            delete(refresh_tokens).where(refresh_tokens.c.session_id.in_(dead))
        )
        result = await self._conn.execute(delete(sessions).where(ended))
        await self._conn.execute(delete(revoked_sessions).where(revoked_sessions.c.until < before))
        return int(result.rowcount)
