"""Webhook endpoints and their delivery log."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.webhooks import Delivery, Webhook
from socius.storage.tables import webhook_deliveries, webhooks

__all__ = ["SqlWebhookRepository"]


def _webhook(row: Row[Any]) -> Webhook:
    return Webhook(
        id=row.id,
        url=row.url,
        types=list(row.types or []),
        secret=row.secret,
        enabled=bool(row.enabled),
        description=row.description,
        position=int(row.position),
        attempts=int(row.attempts),
        failing_since=row.failing_since,
        next_attempt_at=row.next_attempt_at,
        disabled_reason=row.disabled_reason,
        bodies=bool(row.bodies),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        id=row.id,
        webhook_id=row.webhook_id,
        event_id=row.event_id,
        event_type=row.event_type,
        attempt=row.attempt,
        status=row.status,
        status_code=row.status_code,
        latency_ms=row.latency_ms,
        error=row.error,
        created_at=row.created_at,
    )


class SqlWebhookRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, hook: Webhook) -> None:
        await self._conn.execute(
            insert(webhooks).values(
                id=hook.id,
                url=hook.url,
                types=hook.types,
                secret=hook.secret,
                enabled=hook.enabled,
                description=hook.description,
                position=hook.position,
                attempts=hook.attempts,
                failing_since=hook.failing_since,
                next_attempt_at=hook.next_attempt_at,
                disabled_reason=hook.disabled_reason,
                bodies=hook.bodies,
                created_at=hook.created_at,
                updated_at=hook.updated_at,
            )
        )

    async def get(self, webhook_id: int, *, lock: bool = False) -> Webhook | None:
        stmt = select(webhooks).where(webhooks.c.id == webhook_id)
        if lock and self._conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = (await self._conn.execute(stmt)).first()
        return _webhook(row) if row is not None else None

    async def list_all(self) -> list[Webhook]:
        rows = await self._conn.execute(select(webhooks).order_by(webhooks.c.id))
        return [_webhook(row) for row in rows]

    async def due(self, now: datetime) -> list[Webhook]:
        """Enabled endpoints not waiting for a retry."""
        rows = await self._conn.execute(
            select(webhooks)
            .where(
                webhooks.c.enabled.is_(True),
                or_(webhooks.c.next_attempt_at.is_(None), webhooks.c.next_attempt_at <= now),
            )
            .order_by(webhooks.c.id)
        )
        return [_webhook(row) for row in rows]

    async def update(self, webhook_id: int, changes: Mapping[str, Any]) -> Webhook | None:
        await self._conn.execute(
            update(webhooks).where(webhooks.c.id == webhook_id).values(**changes)
        )
        return await self.get(webhook_id)

    async def delete(self, webhook_id: int) -> bool:
        await self._conn.execute(
            delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
        )
        result = await self._conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))
        return bool(result.rowcount)

    async def add_delivery(self, delivery: Delivery) -> None:
        await self._conn.execute(
            insert(webhook_deliveries).values(
                id=delivery.id,
                webhook_id=delivery.webhook_id,
                event_id=delivery.event_id,
                event_type=delivery.event_type,
                attempt=delivery.attempt,
                status=delivery.status,
                status_code=delivery.status_code,
                latency_ms=delivery.latency_ms,
                error=delivery.error,
                created_at=delivery.created_at,
            )
        )

    async def deliveries(
        self, webhook_id: int, *, limit: int, before_id: int | None
    ) -> list[Delivery]:
        """Newest first."""
        stmt = select(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
        if before_id is not None:
            stmt = stmt.where(webhook_deliveries.c.id < before_id)
        rows = await self._conn.execute(stmt.order_by(webhook_deliveries.c.id.desc()).limit(limit))
        return [_delivery(row) for row in rows]
