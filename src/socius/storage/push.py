"""The push repository: devices, notification settings, the VAPID key, the notifier's
stream position, and the facts the notifier reads about a batch of messages."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.graph import EdgeType
from socius.domain.push import Device, DeviceKind, NotificationSettings
from socius.storage.driver import direct, fetch, on_driver
from socius.storage.tables import (
    edges,
    members,
    messages,
    notification_settings,
    push_devices,
    stream_consumers,
    users,
    vapid_keys,
)

__all__ = ["MessageFacts", "SqlPushRepository"]

_POSITION = "SELECT position FROM stream_consumers WHERE name = ?"
# A consumer's move on the driver (a background reader's round, decision 0061).
_START = (
    "INSERT INTO stream_consumers (name, position) VALUES (?, ?) "
    "ON CONFLICT (name) DO NOTHING RETURNING name"
)
_MOVE = "UPDATE stream_consumers SET position = ? WHERE name = ? AND position = ? RETURNING name"
_QUIET = [int(EdgeType.MUTES), int(EdgeType.BLOCKS), int(EdgeType.BLOCKED_BY)]

# PostgreSQL (the notifier's reads): the id lists as arrays, one statement text whatever
# their length (an expanding IN is compiled by SQLAlchemy, and parsed and planned by
# PostgreSQL, for every length), on the driver.
_PG = {
    "settings": "SELECT user_id, message, mention, reply, reaction FROM notification_settings "
    "WHERE user_id = ANY(?::bigint[])",
    "messages": "SELECT id, conversation_id, sender_id, body, deleted_at FROM messages "
    "WHERE id = ANY(?::bigint[])",
    "members": "SELECT m.conversation_id, m.user_id, m.muted FROM members m "
    "JOIN users u ON u.id = m.user_id "
    "WHERE m.conversation_id = ANY(?::bigint[]) AND u.status = 'active'",
    "quiet": "SELECT src, dst FROM edges "
    "WHERE src = ANY(?::bigint[]) AND dst = ANY(?::bigint[]) AND type = ANY(?::smallint[])",
}

# (conversation_id, sender_id, body or None when deleted)
MessageFacts = tuple[int, int | None, str | None]


_CHUNK = 10_000  # ids per IN list: both databases allow 32,766+ parameters


def _chunks(ids: Sequence[int]) -> list[list[int]]:
    unique = list(dict.fromkeys(ids))
    return [unique[i : i + _CHUNK] for i in range(0, len(unique), _CHUNK)]


def _hash(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()


def _device(row: Row[Any]) -> Device:
    return Device(
        row.id,
        row.user_id,
        DeviceKind(row.kind),
        row.endpoint,
        row.p256dh,
        row.auth,
        row.platform,
        row.created_at,
        row.last_pushed_at,
    )


class SqlPushRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert

    def _arrays(self) -> bool:
        return self._conn.dialect.name == "postgresql" and direct(self._conn)

    # devices --------------------------------------------------------------------------

    async def put_device(self, device: Device) -> Device:
        """Register ``device``; an endpoint registered before (by anyone) is replaced."""
        digest = _hash(device.endpoint)
        await self._conn.execute(delete(push_devices).where(push_devices.c.endpoint_hash == digest))
        await self._conn.execute(
            insert(push_devices).values(
                id=device.id,
                user_id=device.user_id,
                kind=device.kind.value,
                endpoint=device.endpoint,
                endpoint_hash=digest,
                p256dh=device.p256dh,
                auth=device.auth,
                platform=device.platform,
                created_at=device.created_at,
                last_pushed_at=None,
            )
        )
        return device

    async def devices(self, user_ids: Sequence[int]) -> list[Device]:
        found: list[Device] = []
        for chunk in _chunks(user_ids):
            rows = await self._conn.execute(
                select(push_devices)
                .where(push_devices.c.user_id.in_(chunk))
                .order_by(push_devices.c.user_id, push_devices.c.id)
            )
            found += [_device(r) for r in rows]
        return found

    async def count_devices(self, user_id: int) -> int:
        rows = await self._conn.execute(
            select(push_devices.c.id).where(push_devices.c.user_id == user_id)
        )
        return len(rows.all())

    async def delete_device(self, user_id: int, device_id: int) -> bool:
        result = await self._conn.execute(
            delete(push_devices).where(
                push_devices.c.id == device_id, push_devices.c.user_id == user_id
            )
        )
        return bool(result.rowcount)

    async def drop_devices(self, device_ids: Sequence[int]) -> None:
        """Remove devices the push service said are gone (404/410)."""
        if device_ids:
            await self._conn.execute(
                delete(push_devices).where(push_devices.c.id.in_(list(device_ids)))
            )

    async def pushed(self, device_ids: Sequence[int], when: datetime) -> None:
        if device_ids:
            await self._conn.execute(
                update(push_devices)
                .where(push_devices.c.id.in_(list(device_ids)))
                .values(last_pushed_at=when)
            )

    async def erase_user(self, user_id: int) -> None:
        await self._conn.execute(delete(push_devices).where(push_devices.c.user_id == user_id))
        await self._conn.execute(
            delete(notification_settings).where(notification_settings.c.user_id == user_id)
        )

    # settings -------------------------------------------------------------------------

    async def settings(self, user_ids: Sequence[int]) -> dict[int, NotificationSettings]:
        """Each user's settings (users without a row are left out: all on)."""
        found: dict[int, NotificationSettings] = {}
        if user_ids and self._arrays():
            rows_pg = await fetch(self._conn, _PG["settings"], list(user_ids))
            return {int(u): NotificationSettings(m, n, r, a) for u, m, n, r, a in rows_pg}
        for chunk in _chunks(user_ids):
            rows = await self._conn.execute(
                select(notification_settings).where(notification_settings.c.user_id.in_(chunk))
            )
            found |= {
                r.user_id: NotificationSettings(r.message, r.mention, r.reply, r.reaction)
                for r in rows
            }
        return found

    async def put_settings(self, user_id: int, value: NotificationSettings, when: datetime) -> None:
        values = {
            "message": value.message,
            "mention": value.mention,
            "reply": value.reply,
            "reaction": value.reaction,
            "updated_at": when,
        }
        stmt = self._insert(notification_settings).values(user_id=user_id, **values)
        await self._conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[notification_settings.c.user_id], set_=values
            )
        )

    # the VAPID key --------------------------------------------------------------------

    async def vapid_key(self) -> str | None:
        """The PEM of the newest VAPID private key."""
        row = await self._conn.execute(
            select(vapid_keys.c.private_key_pem)
            .order_by(vapid_keys.c.created_at.desc(), vapid_keys.c.kid)
            .limit(1)
        )
        return row.scalar_one_or_none()

    async def add_vapid_key(self, kid: str, pem: str, when: datetime) -> None:
        """Insert unless a key with this ``kid`` exists (two nodes starting at once)."""
        await self._conn.execute(
            self._insert(vapid_keys)
            .values(kid=kid, private_key_pem=pem, created_at=when)
            .on_conflict_do_nothing(index_elements=[vapid_keys.c.kid])
        )

    # the notifier's position ----------------------------------------------------------

    async def position(self, name: str) -> int:
        if direct(self._conn):  # a background reader's every round: no statement built
            found = await fetch(self._conn, _POSITION, name)
            return int(found[0][0]) if found else 0
        row = await self._conn.execute(
            select(stream_consumers.c.position).where(stream_consumers.c.name == name)
        )
        return int(row.scalar_one_or_none() or 0)

    async def start_at(self, name: str, position: int) -> bool:
        """Create the consumer ``name`` at ``position`` unless it exists; whether it did."""
        stmt = (
            self._insert(stream_consumers)
            .values(name=name, position=position)
            .on_conflict_do_nothing(index_elements=[stream_consumers.c.name])
        )
        return bool((await self._conn.execute(stmt)).rowcount)

    async def move(self, name: str, before: int, after: int) -> bool:
        """Move ``name`` from ``before`` to ``after``; False when it is no longer at
        ``before`` (another consumer moved it)."""
        driver = on_driver(self._conn)
        if driver is not None:  # in a unit of work on the driver: no statement built
            if before == 0 and await driver.fetch(_START, name, after):
                return True
            return bool(await driver.fetch(_MOVE, after, name, before))
        if before == 0:
            stmt = (
                self._insert(stream_consumers)
                .values(name=name, position=after)
                .on_conflict_do_nothing(index_elements=[stream_consumers.c.name])
            )
            if (await self._conn.execute(stmt)).rowcount:
                return True
        result = await self._conn.execute(
            update(stream_consumers)
            .where(stream_consumers.c.name == name, stream_consumers.c.position == before)
            .values(position=after)
        )
        return bool(result.rowcount)

    # facts for the notifier -----------------------------------------------------------

    async def messages(self, message_ids: Sequence[int]) -> dict[int, MessageFacts]:
        """``(conversation_id, sender_id, body)`` of each message that still exists; the
        body is None once deleted."""
        if not message_ids:
            return {}
        if self._arrays():
            found = await fetch(self._conn, _PG["messages"], list(message_ids))
            return {int(i): (int(c), s, None if d else b) for i, c, s, b, d in found}
        rows = await self._conn.execute(
            select(
                messages.c.id,
                messages.c.conversation_id,
                messages.c.sender_id,
                messages.c.body,
                messages.c.deleted_at,
            ).where(messages.c.id.in_(list(message_ids)))
        )
        return {
            r.id: (r.conversation_id, r.sender_id, None if r.deleted_at else r.body) for r in rows
        }

    async def members(self, conversation_ids: Sequence[int]) -> dict[int, dict[int, bool]]:
        """Per conversation: its active members, each with whether they muted it."""
        if not conversation_ids:
            return {}
        found: dict[int, dict[int, bool]] = {}
        if self._arrays():
            for c, u, muted in await fetch(self._conn, _PG["members"], list(conversation_ids)):
                found.setdefault(int(c), {})[int(u)] = bool(muted)
            return found
        rows = await self._conn.execute(
            select(members.c.conversation_id, members.c.user_id, members.c.muted)
            .join(users, users.c.id == members.c.user_id)
            .where(
                members.c.conversation_id.in_(list(conversation_ids)),
                users.c.status == "active",
            )
        )
        for r in rows:
            found.setdefault(r.conversation_id, {})[r.user_id] = bool(r.muted)
        return found

    async def usernames(self, user_ids: Sequence[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        for chunk in _chunks(user_ids):
            rows = await self._conn.execute(
                select(users.c.id, users.c.username).where(users.c.id.in_(chunk))
            )
            found |= {r.id: r.username.lower() for r in rows}
        return found

    async def quiet(self, recipients: Sequence[int], actors: Sequence[int]) -> set[tuple[int, int]]:
        """``(recipient, actor)`` pairs where the recipient mutes or blocks the actor, or
        is blocked by them."""
        found: set[tuple[int, int]] = set()
        if recipients and actors and self._arrays():
            rows_pg = await fetch(self._conn, _PG["quiet"], list(recipients), list(actors), _QUIET)
            return {(int(a), int(b)) for a, b in rows_pg}
        for who in _chunks(actors):
            for chunk in _chunks(recipients):
                rows = await self._conn.execute(
                    select(edges.c.src, edges.c.dst).where(
                        edges.c.src.in_(chunk), edges.c.dst.in_(who), edges.c.type.in_(_QUIET)
                    )
                )
                found |= {(r.src, r.dst) for r in rows}
        return found
