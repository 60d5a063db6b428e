"""/v1/admin/webhooks: endpoints that receive the event stream over HTTP (admins only).

Every change is written to the audit log in its own transaction (services/webhooks.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import delete, get, patch, post
from litestar.datastructures import State
from litestar.params import Body
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from socius.api.dependencies import container_of
from socius.api.rest.admin_access import AdminActor, admin_router
from socius.api.rest.params import AuditCursor, IdPath, Limit
from socius.api.rest.views import Page
from socius.domain.errors import NotFound
from socius.domain.ids import parse_id
from socius.domain.stream import FILTER_PATTERN
from socius.domain.webhooks import (
    DESCRIPTION_MAX,
    DESCRIPTION_PATTERN,
    SECRET_PATTERN,
    URL_MAX,
    URL_PATTERN,
    Delivery,
    Webhook,
)
from socius.services.webhooks import WebhookChanges

__all__ = ["router"]

_TYPES = msgspec.Meta(
    max_length=100,
    description="event types (or `prefix.*`) to receive; empty or absent: every type",
)
Url = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=URL_MAX,
        pattern=URL_PATTERN,
        description="an absolute http(s) URL, without credentials or fragment",
    ),
]
Secret = Annotated[
    str,
    msgspec.Meta(
        pattern=SECRET_PATTERN, description="`whsec_` + base64 key; made for you when absent"
    ),
]
_BODIES = msgspec.Meta(
    description="message events carry `body`, read at each delivery attempt: a message "
    "deleted, expired or erased before then is sent without it"
)
Description = Annotated[str, msgspec.Meta(max_length=DESCRIPTION_MAX, pattern=DESCRIPTION_PATTERN)]
TypeName = Annotated[str, msgspec.Meta(max_length=64, pattern=FILTER_PATTERN)]


class WebhookIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: Url
    types: Annotated[list[TypeName], _TYPES] | None = None
    secret: Secret | None = None
    enabled: bool = True
    description: Description | None = None
    bodies: Annotated[bool, _BODIES] = False


class WebhookPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The fields to change; `enabled: true` also clears the failure state."""

    url: Url | None = None
    types: Annotated[list[TypeName], _TYPES] | None = None
    secret: Secret | None = None
    enabled: bool | None = None
    description: Description | None = None
    bodies: Annotated[bool, _BODIES] | None = None


class WebhookOut(msgspec.Struct, kw_only=True):
    id: str
    url: str
    types: list[str]
    secret: str
    """Signs every delivery (Standard Webhooks `webhook-signature`)."""
    enabled: bool
    description: str | None
    position: int
    """The last stream position delivered to it."""
    attempts: int
    """Failed attempts at the next event (0: healthy)."""
    failing_since: datetime | None
    next_attempt_at: datetime | None
    disabled_reason: str | None
    """`failing` once disabled after failing for 24 h."""
    bodies: bool
    """Message events carry `body` while the message still has content."""
    created_at: datetime
    updated_at: datetime


class DeliveryOut(msgspec.Struct, kw_only=True):
    id: str
    event_id: str
    """The `webhook-id` header sent (the same on each retry of an event)."""
    event_type: str
    attempt: int
    status: str
    """`delivered` (a 2xx answer) or `failed`."""
    status_code: int | None
    latency_ms: int | None
    error: str | None
    created_at: datetime


def _out(hook: Webhook) -> WebhookOut:
    return WebhookOut(
        id=str(hook.id),
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


def _delivery_out(d: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=str(d.id),
        event_id=str(d.event_id),
        event_type=d.event_type,
        attempt=d.attempt,
        status=d.status,
        status_code=d.status_code,
        latency_ms=d.latency_ms,
        error=d.error,
        created_at=d.created_at,
    )


def _hook_id(text: str) -> int:
    value = parse_id(text)
    if value is None:
        raise NotFound("no such webhook", code="webhook_not_found")
    return value


@post(
    "/webhooks",
    summary="Register a webhook endpoint (admins only)",
    description="It receives, in stream order, each event of `types` that enters the stream "
    "from now on, signed with `secret` (Standard Webhooks; one is made when absent). "
    "Loopback, private and link-local destinations are refused at delivery unless "
    "SOCIUS_WEBHOOK_ALLOW_PRIVATE. Audited.",
)
async def create_webhook(
    state: State, admin: AdminActor, data: Annotated[WebhookIn, Body()]
) -> WebhookOut:
    hook = await container_of(state).webhooks.create(
        admin,
        url=data.url,
        types=data.types,
        secret=data.secret,
        enabled=data.enabled,
        description=data.description,
        bodies=data.bodies,
    )
    return _out(hook)


@get("/webhooks", summary="Every webhook endpoint (admins only)")
async def list_webhooks(state: State) -> Page[WebhookOut]:
    hooks = await container_of(state).webhooks.list_all()
    return Page(items=[_out(h) for h in hooks], next_cursor=None)


@get("/webhooks/{webhook_id:str}", summary="One webhook endpoint (admins only)")
async def get_webhook(state: State, webhook_id: IdPath) -> WebhookOut:
    return _out(await container_of(state).webhooks.get(_hook_id(webhook_id)))


@patch(
    "/webhooks/{webhook_id:str}",
    summary="Change a webhook endpoint (admins only)",
    description="Only the fields given change. `enabled: true` on a disabled endpoint "
    "resumes delivery where it stopped. Audited.",
)
async def update_webhook(
    state: State, admin: AdminActor, webhook_id: IdPath, data: Annotated[WebhookPatch, Body()]
) -> WebhookOut:
    changes = WebhookChanges(
        url=data.url,
        types=data.types,
        secret=data.secret,
        enabled=data.enabled,
        description=data.description,
        bodies=data.bodies,
    )
    return _out(await container_of(state).webhooks.update(admin, _hook_id(webhook_id), changes))


@delete(
    "/webhooks/{webhook_id:str}",
    summary="Remove a webhook endpoint and its delivery log (admins only)",
    status_code=HTTP_204_NO_CONTENT,
)
async def delete_webhook(state: State, admin: AdminActor, webhook_id: IdPath) -> None:
    await container_of(state).webhooks.delete(admin, _hook_id(webhook_id))


@get(
    "/webhooks/{webhook_id:str}/deliveries",
    summary="A webhook endpoint's delivery log, newest first (admins only)",
    description="One entry per attempt: the event, status, HTTP status code, latency, error.",
)
async def webhook_deliveries(
    state: State, webhook_id: IdPath, limit: Limit = None, cursor: AuditCursor = None
) -> Page[DeliveryOut]:
    page = await container_of(state).webhooks.deliveries(
        _hook_id(webhook_id), limit=limit, cursor=cursor
    )
    return Page(items=[_delivery_out(d) for d in page.items], next_cursor=page.next_cursor)


@post(
    "/webhooks/{webhook_id:str}/ping",
    summary="Send a test event to a webhook endpoint now (admins only)",
    description="A signed `webhook.ping` event; answers the delivery (also in the log). Audited.",
    status_code=HTTP_200_OK,
)
async def ping_webhook(state: State, admin: AdminActor, webhook_id: IdPath) -> DeliveryOut:
    return _delivery_out(await container_of(state).webhooks.ping(admin, _hook_id(webhook_id)))


router = admin_router(
    "/v1/admin",
    [
        create_webhook,
        list_webhooks,
        get_webhook,
        update_webhook,
        delete_webhook,
        webhook_deliveries,
        ping_webhook,
    ],
    tags=("admin", "webhooks"),
)
