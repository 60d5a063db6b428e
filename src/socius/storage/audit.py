"""The audit log repository: administrators' actions, newest first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.audit import ERASED_DETAILS, AuditEntry, TargetType, Via
from socius.storage.tables import audit_log, users

__all__ = ["SqlAuditRepository"]

_actor = users.alias("actor")
_target = users.alias("target")


def _entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        created_at=row.created_at,
        via=Via(row.via),
        actor_id=row.actor_id,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        details=dict(row.details or {}),
        request_id=row.request_id,
        ip=row.ip,
        actor_username=row.actor_username,
        target_username=row.target_username,
    )


class SqlAuditRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, entry: AuditEntry) -> None:
        await self._conn.execute(
            insert(audit_log).values(
                id=entry.id,
                created_at=entry.created_at,
                via=entry.via.value,
                actor_id=entry.actor_id,
                action=entry.action,
                target_type=entry.target_type,
                target_id=entry.target_id,
                details=entry.details,
                request_id=entry.request_id,
                ip=entry.ip,
            )
        )

    async def page(
        self,
        *,
        limit: int,
        before_id: int | None = None,
        actor_id: int | None = None,
        via: Via | None = None,
        action: str | None = None,
        target_id: int | None = None,
    ) -> list[AuditEntry]:
        """Entries newest first, with the actor's and (for a user) the target's current
        username; each filter given narrows the list."""
        stmt = (
            select(
                audit_log,
                _actor.c.username.label("actor_username"),
                _target.c.username.label("target_username"),
            )
            .select_from(
                audit_log.outerjoin(_actor, _actor.c.id == audit_log.c.actor_id).outerjoin(
                    _target,
                    and_(
                        _target.c.id == audit_log.c.target_id,
                        audit_log.c.target_type == TargetType.USER.value,
                    ),
                )
            )
            .order_by(audit_log.c.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            stmt = stmt.where(audit_log.c.id < before_id)
        if actor_id is not None:
            stmt = stmt.where(audit_log.c.actor_id == actor_id)
        if via is not None:
            stmt = stmt.where(audit_log.c.via == via.value)
        if action is not None:
            stmt = stmt.where(audit_log.c.action == action)
        if target_id is not None:
            stmt = stmt.where(audit_log.c.target_id == target_id)
        return [_entry(row) for row in await self._conn.execute(stmt)]

    async def erase_user(self, user_id: int) -> None:
        """The account is being erased: entries keep its id, but the address it acted
        from goes, and so does free text written about it (decision 0015)."""
        await self._conn.execute(
            update(audit_log).where(audit_log.c.actor_id == user_id).values(ip=None)
        )
        about = (
            await self._conn.execute(
                select(audit_log.c.id, audit_log.c.details).where(
                    audit_log.c.target_id == user_id,
                    audit_log.c.target_type == TargetType.USER.value,
                )
            )
        ).all()
        for row in about:
            details = dict(row.details or {})
            if ERASED_DETAILS & details.keys():
                kept = {k: v for k, v in details.items() if k not in ERASED_DETAILS}
                await self._conn.execute(
                    update(audit_log)
                    .where(audit_log.c.id == row.id)
                    .values(details={**kept, "erased": True})
                )
