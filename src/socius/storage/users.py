"""The users repository."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    case,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.errors import Conflict
from socius.domain.graph import EdgeType
from socius.domain.stream import DomainEvent
from socius.domain.users import DmPolicy, User, UserStatus
from socius.storage.driver import direct, fetch, fetch_any, on_driver, read_timestamp
from socius.storage.id_lists import one_of
from socius.storage.rows import ValuesList
from socius.storage.tables import (
    domain_events,
    edge_counts,
    edges,
    one_time_tokens,
    recovery_codes,
    refresh_tokens,
    sessions,
    totp_factors,
    users,
)

__all__ = ["USER_COLUMNS", "USER_FIELDS", "SqlUserRepository", "escape_like", "user_from_driver"]

_UPDATABLE = {
    "display_name",
    "bio",
    "avatar_url",
    "is_private",
    "dm_policy",
    "password_hash",
    "status",
    "is_admin",
    "email",
    "settings",
    "updated_at",
    "email_verified_at",
}


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _to_user(row: Row[Any]) -> User:
    return User(
        id=row.id,
        username=row.username,
        email=row.email,
        display_name=row.display_name,
        bio=row.bio,
        avatar_url=row.avatar_url,
        is_private=row.is_private,
        dm_policy=DmPolicy(row.dm_policy),
        password_hash=row.password_hash,
        status=UserStatus(row.status),
        is_admin=row.is_admin,
        created_at=row.created_at,
        updated_at=row.updated_at,
        settings=dict(row.settings or {}),
        email_verified_at=row.email_verified_at,
    )


_USER_FIELDS = tuple(c.name for c in users.c)
_USER_COLUMNS = ", ".join(_USER_FIELDS)
USER_COLUMNS = _USER_COLUMNS  # for storage/reads.py
USER_FIELDS = _USER_FIELDS  # for storage/sessions.py
_AT = {name: i for i, name in enumerate(_USER_FIELDS)}  # a column's place in a row
_AT_ID, _AT_USERNAME, _AT_EMAIL = _AT["id"], _AT["username"], _AT["email"]
_AT_DISPLAY_NAME, _AT_BIO, _AT_AVATAR_URL = _AT["display_name"], _AT["bio"], _AT["avatar_url"]
_AT_IS_PRIVATE, _AT_DM_POLICY = _AT["is_private"], _AT["dm_policy"]
_AT_PASSWORD_HASH, _AT_STATUS, _AT_IS_ADMIN = _AT["password_hash"], _AT["status"], _AT["is_admin"]
_AT_SETTINGS, _AT_CREATED_AT = _AT["settings"], _AT["created_at"]
_AT_UPDATED_AT, _AT_VERIFIED = _AT["updated_at"], _AT["email_verified_at"]
# The enums by value: a dict look-up, not Enum.__call__ (an unknown value still raises).
_STATUSES = {s.value: s for s in UserStatus}
_DM_POLICIES = {p.value: p for p in DmPolicy}
_COUNT_COLUMN = ", (SELECT count FROM edge_counts WHERE src = users.id AND type = ?)"


_PROFILE_FIELDS = {"display_name", "bio", "avatar_url", "is_private", "dm_policy", "updated_at"}
_DOMAIN_ROWS = ValuesList(domain_events, ["id", "type", "occurred_at", "data", "message_id"])


@functools.lru_cache(maxsize=64)
def _values_of(names: tuple[str, ...]) -> ValuesList:
    """Values for these columns of ``users``, converted for the driver."""
    return ValuesList(users, names)


def user_from_driver(row: Sequence[Any]) -> User:
    """A users row as the driver returns it, columns in table order (``_USER_FIELDS``):
    what SQLAlchemy's types would do, by hand (SQLite: 0/1 booleans, JSON and timestamps
    as text; asyncpg: JSON as text). Read by position: no dict per row (decision 0042)."""
    settings = row[_AT_SETTINGS]
    if isinstance(settings, str | bytes):
        settings = json.loads(settings)
    verified = row[_AT_VERIFIED]
    return User(
        id=row[_AT_ID],
        username=row[_AT_USERNAME],
        email=row[_AT_EMAIL],
        display_name=row[_AT_DISPLAY_NAME],
        bio=row[_AT_BIO],
        avatar_url=row[_AT_AVATAR_URL],
        is_private=bool(row[_AT_IS_PRIVATE]),
        dm_policy=_DM_POLICIES.get(row[_AT_DM_POLICY]) or DmPolicy(row[_AT_DM_POLICY]),
        password_hash=row[_AT_PASSWORD_HASH],
        status=_STATUSES.get(row[_AT_STATUS]) or UserStatus(row[_AT_STATUS]),
        is_admin=bool(row[_AT_IS_ADMIN]),
        created_at=read_timestamp(row[_AT_CREATED_AT]),
        updated_at=read_timestamp(row[_AT_UPDATED_AT]),
        settings=dict(settings or {}),
        email_verified_at=None if verified is None else read_timestamp(verified),
    )


def _conflict(exc: IntegrityError) -> Conflict:
    text = str(exc.orig).lower()
    if "email" in text:
        return Conflict("that email is already registered", code="email_taken")
    return Conflict("that username is taken", code="username_taken")


class SqlUserRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self.changed: set[int] = set()  # users updated or deleted in this transaction

    async def add(self, user: User) -> None:
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(
                    insert(users).values(
                        id=user.id,
                        username=user.username,
                        email=user.email,
                        display_name=user.display_name,
                        bio=user.bio,
                        avatar_url=user.avatar_url,
                        is_private=user.is_private,
                        dm_policy=user.dm_policy.value,
                        password_hash=user.password_hash,
                        status=user.status.value,
                        is_admin=user.is_admin,
                        settings=user.settings,
                        created_at=user.created_at,
                        updated_at=user.updated_at,
                        email_verified_at=user.email_verified_at,
                    )
                )
        except IntegrityError as exc:
            raise _conflict(exc) from exc

    async def get(self, user_id: int) -> User | None:
        row = (await self._conn.execute(select(users).where(users.c.id == user_id))).first()
        return _to_user(row) if row else None

    async def get_many(self, user_ids: list[int]) -> list[User]:
        if not user_ids:
            return []
        rows = await self._conn.execute(
            select(users).where(one_of(users.c.id, user_ids, self._conn.dialect.name))
        )
        return [_to_user(row) for row in rows]

    async def update_profile(
        self,
        user_id: int,
        changes: Mapping[str, Any],
        counted: Sequence[EdgeType],
        domain: Sequence[DomainEvent] = (),
        *,
        alone: bool = False,
    ) -> tuple[User, dict[EdgeType, int]] | None:
        """Update an active user's profile fields (no unique column among them) and store
        ``domain`` in the same write; the new row with its edge counts of ``counted``
        (None, and nothing written: no such active user). PostgreSQL: one statement;
        SQLite: three, on the driver. Not in ``changed``: the caller invalidates what it
        shows (decision 0027).

        ``alone``: the unit of work's only statement. On PostgreSQL, when no transaction
        has begun yet, it then runs by itself, committed when it returns (one statement
        is atomic): no ``BEGIN``/``COMMIT`` round trips, and the unit of work's commit
        has nothing to send."""
        if not set(changes) <= _PROFILE_FIELDS:
            raise ValueError(f"not profile fields: {sorted(set(changes) - _PROFILE_FIELDS)}")
        names = sorted(changes)
        dialect = self._conn.dialect
        values = _values_of(tuple(names)).convert(
            dialect,
            [[changes[k].value if isinstance(changes[k], DmPolicy) else changes[k] for k in names]],
        )
        assignments = ", ".join(f"{k} = ?" for k in names)
        dom_rows = [(e.id, e.type, e.occurred_at, e.data, e.message_id) for e in domain]
        dom_args = _DOMAIN_ROWS.convert(dialect, dom_rows)
        dom_sql = (
            f"INSERT INTO domain_events ({_DOMAIN_ROWS.column_list}) VALUES "  # noqa: S608
            + ", ".join("(?, ?, ?, ?, ?)" for _ in dom_rows)
        )
        count_args = [int(t) for t in counted]
        n = len(_USER_FIELDS)
        active = UserStatus.ACTIVE.value
        if dialect.name == "postgresql":
            ctes = f"WITH u AS (UPDATE users SET {assignments} "  # noqa: S608
            ctes += f"WHERE id = ? AND status = ? RETURNING {_USER_COLUMNS})"
            if dom_rows:
                # Stored with the update or not at all (no such active user).
                marks = ", ".join(
                    "(?::bigint, ?::varchar, ?::timestamptz, ?::json, ?::bigint)" for _ in dom_rows
                )
                ctes += (
                    f", dom AS (INSERT INTO domain_events ({_DOMAIN_ROWS.column_list}) "  # noqa: S608
                    f"SELECT * FROM (VALUES {marks}) AS v WHERE EXISTS (SELECT 1 FROM u) "
                    "RETURNING 1)"
                )
            counts = _COUNT_COLUMN.replace("users.id", "u.id") * len(counted)
            sql = f"{ctes} SELECT u.*{counts} FROM u"  # noqa: S608 (no values)
            args = [*values, user_id, active, *dom_args, *count_args]
            driver = on_driver(self._conn)
            if alone and driver is not None:
                rows = await driver.fetch(sql, *args, begin=False)  # atomic: autocommit
            elif alone and not direct(self._conn):
                rows = await fetch(self._conn, sql, *args)  # no transaction: autocommit
            else:
                rows = await fetch_any(self._conn, sql, *args)
        else:
            sql = f"UPDATE users SET {assignments} WHERE id = ? AND status = ?"  # noqa: S608
            if not await fetch_any(self._conn, sql + " RETURNING id", *values, user_id, active):
                return None
            if dom_rows:
                await fetch_any(self._conn, dom_sql, *dom_args)
            counts = _COUNT_COLUMN * len(counted)
            sql = f"SELECT {_USER_COLUMNS}{counts} FROM users WHERE id = ?"  # noqa: S608
            rows = await fetch_any(self._conn, sql, *count_args, user_id)
        if not rows:
            return None
        row = rows[0]
        return user_from_driver(row[:n]), {
            t: int(c or 0) for t, c in zip(counted, row[n:], strict=True)
        }

    async def get_many_with_counts(
        self, user_ids: Sequence[int], types: Sequence[EdgeType]
    ) -> list[tuple[User, dict[EdgeType, int]]]:
        """Users with their stored edge counts of ``types`` (0 when none), in one query."""
        if not user_ids:
            return []
        if direct(self._conn):
            return await self._with_counts_on_driver(user_ids, types)
        counted = [
            select(edge_counts.c.count)
            .where(edge_counts.c.src == users.c.id, edge_counts.c.type == int(t))
            .scalar_subquery()
            .label(f"count_{int(t)}")
            for t in types
        ]
        stmt = select(users, *counted).where(one_of(users.c.id, user_ids, self._conn.dialect.name))
        return [
            (_to_user(row), {t: int(row._mapping[f"count_{int(t)}"] or 0) for t in types})
            for row in await self._conn.execute(stmt)
        ]

    async def _with_counts_on_driver(
        self, user_ids: Sequence[int], types: Sequence[EdgeType]
    ) -> list[tuple[User, dict[EdgeType, int]]]:
        counted = _COUNT_COLUMN * len(types)
        args: list[Any] = [int(t) for t in types]
        if self._conn.dialect.name == "postgresql":
            where = "id = ANY(?::BIGINT[])"
            args.append(list(user_ids))
        else:
            where = f"id IN ({', '.join('?' * len(user_ids))})"
            args += user_ids
        sql = f"SELECT {_USER_COLUMNS}{counted} FROM users WHERE {where}"  # noqa: S608 (no values)
        rows = await fetch(self._conn, sql, *args)
        n = len(_USER_FIELDS)
        return [
            (user_from_driver(row), {t: int(c or 0) for t, c in zip(types, row[n:], strict=True)})
            for row in rows
        ]

    async def lock(self, user_ids: list[int], *, exclusive: bool) -> list[User]:
        """Read and lock users until the transaction ends, in id order (no deadlocks).
        Shared locks let graph writes run side by side; an exclusive one (erasure) waits for
        them and keeps new ones out. SQLite's single writer needs no row locks."""
        if self._conn.dialect.name == "sqlite" and direct(self._conn):
            marks = ", ".join("?" * len(user_ids))
            sql = f"SELECT {_USER_COLUMNS} FROM users WHERE id IN ({marks}) ORDER BY id"  # noqa: S608
            return [user_from_driver(row) for row in await fetch(self._conn, sql, *user_ids)]
        stmt = select(users).where(users.c.id.in_(user_ids)).order_by(users.c.id)
        if self._conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(read=not exclusive)
        return [_to_user(row) for row in await self._conn.execute(stmt)]

    async def get_by_username(self, username: str) -> User | None:
        row = (await self._conn.execute(select(users).where(users.c.username == username))).first()
        return _to_user(row) if row else None

    async def get_by_login(self, login: str) -> User | None:
        column = users.c.email if "@" in login else users.c.username
        row = (await self._conn.execute(select(users).where(column == login))).first()
        return _to_user(row) if row else None

    async def update(self, user_id: int, changes: Mapping[str, Any]) -> User | None:
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        values = {
            k: (v.value if isinstance(v, DmPolicy | UserStatus) else v) for k, v in changes.items()
        }
        self.changed.add(user_id)
        try:
            async with self._conn.begin_nested():
                row = (
                    await self._conn.execute(
                        update(users)
                        .where(users.c.id == user_id)
                        .values(values)
                        .returning(*users.c)
                    )
                ).first()
        except IntegrityError as exc:
            raise _conflict(exc) from exc
        return _to_user(row) if row else None

    async def delete(self, user_id: int) -> bool:
        self.changed.add(user_id)
        # Children first: correct whether or not the engine enforces ON DELETE CASCADE.
        for child in (one_time_tokens, totp_factors, recovery_codes, refresh_tokens):
            await self._conn.execute(delete(child).where(child.c.user_id == user_id))
        await self._conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
        result = await self._conn.execute(delete(users).where(users.c.id == user_id))
        return bool(result.rowcount)

    async def search(self, query: str, *, viewer: int, limit: int, offset: int) -> list[User]:
        """Active users matching ``query``, best first; not those blocked either way with
        ``viewer`` (the viewer's own edges tell both ways: a block has its inverse)."""
        q = query.strip().lower()
        prefix = escape_like(q) + "%"
        contains = "%" + escape_like(q) + "%"
        display = func.lower(users.c.display_name)
        rank = case(
            (users.c.username == q, 0),
            (users.c.username.like(prefix, escape="\\"), 1),
            (display.like(prefix, escape="\\"), 2),
            else_=3,
        )
        stmt = (
            select(users)
            .where(users.c.status == UserStatus.ACTIVE.value)
            .where(
                users.c.id.not_in(
                    select(edges.c.dst).where(
                        edges.c.src == viewer,
                        edges.c.type.in_([int(EdgeType.BLOCKS), int(EdgeType.BLOCKED_BY)]),
                    )
                )
            )
            .where(
                or_(
                    users.c.username.like(contains, escape="\\"),
                    display.like(contains, escape="\\"),
                )
            )
            .order_by(rank, func.length(users.c.username), users.c.id)
            .limit(limit)
            .offset(offset)
        )
        return [_to_user(row) for row in await self._conn.execute(stmt)]

    async def admin_page(
        self,
        *,
        limit: int,
        before_id: int | None = None,
        query: str | None = None,
        status: UserStatus | None = None,
        is_admin: bool | None = None,
    ) -> list[User]:
        """Every account (disabled ones too), newest first: those whose username, email or
        display name contains ``query`` (or whose id it is), of ``status``, admins or not."""
        stmt = select(users).order_by(users.c.id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(users.c.id < before_id)
        if status is not None:
            stmt = stmt.where(users.c.status == status.value)
        if is_admin is not None:
            stmt = stmt.where(users.c.is_admin == (true() if is_admin else false()))
        if query:
            contains = "%" + escape_like(query.lower()) + "%"
            matches: list[ColumnElement[bool]] = [
                users.c.username.like(contains, escape="\\"),
                users.c.email.like(contains, escape="\\"),
                func.lower(users.c.display_name).like(contains, escape="\\"),
            ]
            if query.isascii() and query.isdigit() and len(query) <= 19:
                matches.append(users.c.id == int(query))
            stmt = stmt.where(or_(*matches))
        return [_to_user(row) for row in await self._conn.execute(stmt)]

    async def lock_admins(self) -> list[int]:
        """The active administrators, their rows locked until the transaction ends (on
        PostgreSQL; SQLite's single writer needs none): admin changes run one at a time."""
        stmt = (
            select(users.c.id)
            .where(users.c.is_admin == true(), users.c.status == UserStatus.ACTIVE.value)
            .order_by(users.c.id)
        )
        if self._conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return [row.id for row in await self._conn.execute(stmt)]

    async def list_page(self, *, limit: int, after_id: int | None) -> list[User]:
        stmt = select(users).order_by(users.c.id).limit(limit)
        if after_id is not None:
            stmt = stmt.where(users.c.id > after_id)
        return [_to_user(row) for row in await self._conn.execute(stmt)]
