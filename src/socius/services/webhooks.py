"""Webhooks: administrators register endpoints; a dispatcher sends each endpoint the
stream's events of the types it wants, in stream order, one at a time, signed by the
Standard Webhooks scheme (domain/webhooks.py).

Delivery is at least once: an endpoint's position moves past an event only after the
endpoint answered 2xx, so a crash in between sends the event again, with the same
``webhook-id`` (the event id) for the receiver to drop. A failure holds the endpoint's
queue (order) and retries with exponential back-off; an endpoint that has failed for
``give_up_seconds`` (24 h) is disabled. One dispatcher is active per cluster (a lease).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec
import structlog

from socius.domain.audit import AuditAction, TargetType
from socius.domain.errors import Forbidden, NotFound, Unavailable
from socius.domain.ids import IdGenerator
from socius.domain.pagination import AuditPosition, check_limit, decode_cursor, encode_cursor
from socius.domain.stream import StreamedEvent, check_types
from socius.domain.webhooks import (
    Delivery,
    Webhook,
    backoff,
    check_description,
    check_secret,
    check_url,
    new_secret,
    sign,
)
from socius.services.audit import Actor, AuditLog, Target
from socius.services.events import attach_bodies
from socius.services.ports import (
    Clock,
    EventStream,
    UnitOfWork,
    UnitOfWorkFactory,
    WebhookRefused,
    WebhookSender,
)

__all__ = ["DeliveryPage", "WebhookChanges", "WebhookService"]

LEASE = "webhooks"
log = structlog.get_logger("socius.webhooks")
_encode = msgspec.json.Encoder().encode
_PAGE = 50


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    items: list[Delivery]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class WebhookChanges:
    """What PATCH changes: the fields given (None: unchanged)."""

    url: str | None = None
    types: list[str] | None = None
    secret: str | None = None
    enabled: bool | None = None
    description: str | None = None
    bodies: bool | None = None


def _no_such_webhook() -> NotFound:
    return NotFound("no such webhook", code="webhook_not_found")


def _target(hook_id: int) -> Target:
    return Target(TargetType.WEBHOOK.value, hook_id)


def event_body(item: StreamedEvent) -> bytes:
    e = item.event
    return _encode(
        {
            "id": str(e.id),
            "type": e.type,
            "timestamp": e.occurred_at,
            "position": item.position,
            "data": e.data,
        }
        | ({"body": item.body} if item.body is not None else {})
    )


class WebhookService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        stream: EventStream,
        sender: WebhookSender,
        audit: AuditLog,
        *,
        give_up_seconds: int = 24 * 3600,
        lease_seconds: int = 15,
        on_attempt: Callable[[str], None] = lambda _status: None,
    ) -> None:
        self._on_attempt = on_attempt
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._stream = stream
        self._sender = sender
        self._audit = audit
        self._give_up = timedelta(seconds=give_up_seconds)
        self._lease = timedelta(seconds=lease_seconds)
        self._holder = f"{os.getpid()}:{secrets.token_hex(4)}"

    # administration (each action audited, in its transaction) ----------------------

    async def _start(self, uow: UnitOfWork, actor: Actor) -> None:
        """Lock the administrators, as every admin action does (services/admin.py)."""
        admins = await uow.users.lock_admins()
        if actor.user_id is not None and actor.user_id not in admins:
            raise Forbidden("this needs an administrator", code="admin_required")

    async def create(
        self,
        actor: Actor,
        *,
        url: str,
        types: list[str] | None = None,
        secret: str | None = None,
        enabled: bool = True,
        description: str | None = None,
        bodies: bool = False,
    ) -> Webhook:
        """A new endpoint; it receives events that enter the stream from now on."""
        now = self._clock()
        hook = Webhook(
            id=self._ids.next_id(),
            url=check_url(url),
            types=check_types(types),
            secret=check_secret(secret) if secret is not None else new_secret(),
            enabled=enabled,
            description=check_description(description),
            position=await self._stream.head(),
            attempts=0,
            failing_since=None,
            next_attempt_at=None,
            disabled_reason=None,
            created_at=now,
            updated_at=now,
            bodies=bodies,
        )
        async with self._uow() as uow:
            await self._start(uow, actor)
            await uow.webhooks.add(hook)
            await self._audit.record(
                uow,
                actor,
                AuditAction.WEBHOOK_CREATE,
                target=_target(hook.id),
                details={
                    "url": hook.url,
                    "types": hook.types,
                    "enabled": enabled,
                    "bodies": bodies,
                },
            )
            await uow.commit()
        return hook

    async def list_all(self) -> list[Webhook]:
        async with self._uow(write=False) as uow:
            return await uow.webhooks.list_all()

    async def get(self, webhook_id: int) -> Webhook:
        async with self._uow(write=False) as uow:
            hook = await uow.webhooks.get(webhook_id)
        if hook is None:
            raise _no_such_webhook()
        return hook

    async def update(self, actor: Actor, webhook_id: int, changes: WebhookChanges) -> Webhook:
        values: dict[str, Any] = {}
        if changes.url is not None:
            values["url"] = check_url(changes.url)
        if changes.types is not None:
            values["types"] = check_types(changes.types)
        if changes.secret is not None:
            values["secret"] = check_secret(changes.secret)
        if changes.description is not None:
            values["description"] = check_description(changes.description)
        if changes.bodies is not None:
            values["bodies"] = changes.bodies
        if changes.enabled is not None:
            values["enabled"] = changes.enabled
            if changes.enabled:  # a fresh start: retry now, forget the failures
                values |= {
                    "attempts": 0,
                    "failing_since": None,
                    "next_attempt_at": None,
                    "disabled_reason": None,
                }
        async with self._uow() as uow:
            await self._start(uow, actor)
            hook = await uow.webhooks.get(webhook_id, lock=True)
            if hook is None:
                raise _no_such_webhook()
            if not values:
                return hook
            values["updated_at"] = self._clock()
            updated = await uow.webhooks.update(webhook_id, values)
            assert updated is not None
            shown = {k: v for k, v in values.items() if k in ("url", "types", "enabled", "bodies")}
            if "secret" in values:
                shown["secret_changed"] = True
            await self._audit.record(
                uow, actor, AuditAction.WEBHOOK_UPDATE, target=_target(webhook_id), details=shown
            )
            await uow.commit()
        return updated

    async def delete(self, actor: Actor, webhook_id: int) -> None:
        async with self._uow() as uow:
            await self._start(uow, actor)
            hook = await uow.webhooks.get(webhook_id, lock=True)
            if hook is None:
                raise _no_such_webhook()
            await uow.webhooks.delete(webhook_id)
            await self._audit.record(
                uow,
                actor,
                AuditAction.WEBHOOK_DELETE,
                target=_target(webhook_id),
                details={"url": hook.url},
            )
            await uow.commit()

    async def deliveries(
        self, webhook_id: int, *, limit: int | None, cursor: str | None
    ) -> DeliveryPage:
        size = check_limit(limit)
        position = decode_cursor(cursor, AuditPosition)
        await self.get(webhook_id)
        async with self._uow(write=False) as uow:
            found = await uow.webhooks.deliveries(
                webhook_id, limit=size + 1, before_id=position.a if position else None
            )
        items = found[:size]
        more = len(found) > size
        return DeliveryPage(items, encode_cursor(AuditPosition(a=items[-1].id)) if more else None)

    async def ping(self, actor: Actor, webhook_id: int) -> Delivery:
        """Send a ``webhook.ping`` event to the endpoint now (enabled or not); the
        delivery, also in its log. It does not touch the endpoint's queue."""
        hook = await self.get(webhook_id)
        ping_id = self._ids.next_id()
        now = self._clock()
        body = _encode(
            {
                "id": str(ping_id),
                "type": "webhook.ping",
                "timestamp": now,
                "data": {"webhook_id": str(webhook_id)},
            }
        )
        delivery = await self._send(hook, ping_id, "webhook.ping", body, attempt=1)
        async with self._uow() as uow:
            await self._start(uow, actor)
            if await uow.webhooks.get(webhook_id) is None:
                raise _no_such_webhook()
            await uow.webhooks.add_delivery(delivery)
            await self._audit.record(
                uow,
                actor,
                AuditAction.WEBHOOK_PING,
                target=_target(webhook_id),
                details={"status": delivery.status, "status_code": delivery.status_code},
            )
            await uow.commit()
        return delivery

    # delivery ------------------------------------------------------------------------

    async def _send(
        self, hook: Webhook, msg_id: int, type_: str, body: bytes, *, attempt: int
    ) -> Delivery:
        timestamp = int(self._clock().timestamp())
        headers = {
            "webhook-id": str(msg_id),
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(hook.secret, str(msg_id), timestamp, body),
        }
        status, code, latency, error = "failed", None, None, None
        try:
            answer = await self._sender.post(hook.url, headers, body)
        except WebhookRefused as refused:
            error = refused.reason[:200]
        else:
            code, latency = answer.status_code, answer.latency_ms
            if 200 <= code < 300:
                status = "delivered"
            else:
                error = f"answered {code}"
        self._on_attempt(status)
        return Delivery(
            id=self._ids.next_id(),
            webhook_id=hook.id,
            event_id=msg_id,
            event_type=type_,
            attempt=attempt,
            status=status,
            status_code=code,
            latency_ms=latency,
            error=error,
            created_at=self._clock(),
        )

    async def _hold(self) -> bool:
        now = self._clock()
        async with self._uow() as uow:
            held = await uow.leases.take(LEASE, self._holder, now=now, until=now + self._lease)
            await uow.commit()
        return held

    async def deliver_due(self) -> int:
        """One round: every enabled endpoint not waiting for a retry gets what the stream
        holds for it, in order, until it fails once. How many events were delivered."""
        async with self._uow(write=False) as uow:
            hooks = await uow.webhooks.due(self._clock())
        if not hooks or not await self._hold():  # nothing to do costs one read
            return 0
        delivered = 0
        for hook in hooks:
            delivered += await self._drain(hook)
        return delivered

    async def _drain(self, hook: Webhook) -> int:
        delivered = 0
        while True:
            page = await self._stream.read(after=hook.position, types=hook.types, limit=_PAGE)
            if not page:
                return delivered
            if hook.bodies:  # read at each try: a body deleted meanwhile is never sent
                page = await attach_bodies(self._uow, page)
            for item in page:
                outcome = await self._deliver(hook, item)
                if outcome is None:
                    return delivered
                hook = outcome
                delivered += 1

    async def _deliver(self, hook: Webhook, item: StreamedEvent) -> Webhook | None:
        """Send one event; the endpoint after a success, None after a failure (or when
        it changed meanwhile: deleted, disabled, moved)."""
        delivery = await self._send(
            hook, item.event.id, item.event.type, event_body(item), attempt=hook.attempts + 1
        )
        now = self._clock()
        async with self._uow() as uow:
            current = await uow.webhooks.get(hook.id, lock=True)
            if current is None or not current.enabled or current.position != hook.position:
                return None
            await uow.webhooks.add_delivery(delivery)
            values: Mapping[str, Any]
            if delivery.status == "delivered":
                values = {
                    "position": item.position,
                    "attempts": 0,
                    "failing_since": None,
                    "next_attempt_at": None,
                }
            else:
                since = current.failing_since or now
                attempts = current.attempts + 1
                values = {
                    "attempts": attempts,
                    "failing_since": since,
                    "next_attempt_at": now + backoff(attempts),
                }
                if now - since >= self._give_up:
                    values |= {"enabled": False, "disabled_reason": "failing"}
                    log.warning("webhook_disabled", webhook_id=hook.id, since=since.isoformat())
            updated = await uow.webhooks.update(hook.id, {**values, "updated_at": now})
            await uow.commit()
        if delivery.status != "delivered" or updated is None:
            return None
        return updated

    async def run(self, *, interval: float = 1.0) -> None:
        """Rounds for ever (a background task)."""
        while True:
            try:
                await self.deliver_due()
            except Unavailable as exc:
                log.warning("webhooks_unavailable", error=exc.message)
            except Exception:
                log.exception("webhooks_failed")
            await asyncio.sleep(interval)

    async def close(self) -> None:
        await self._sender.close()
