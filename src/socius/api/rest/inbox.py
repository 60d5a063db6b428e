"""/v1/notifications and /v1/sync."""

from __future__ import annotations

import msgspec
from litestar import Router, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody

from socius.api.dependencies import Caller, container_of
from socius.api.options import with_options
from socius.api.rest.fields import IdText
from socius.api.rest.message_views import (
    NotificationOut,
    SyncEventOut,
    notification_out,
    sync_event_out,
)
from socius.api.rest.params import Limit, LogCursor, NotificationCursor
from socius.domain.errors import InvalidInput
from socius.domain.ids import parse_id_bound

__all__ = ["router"]


class NotificationsOut(msgspec.Struct, kw_only=True):
    items: list[NotificationOut]
    next_cursor: str | None
    unread_count: int


class ReadUpTo(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    up_to_id: IdText


class MarkedOut(msgspec.Struct, kw_only=True):
    marked: int


class SyncOut(msgspec.Struct, kw_only=True):
    """Events after the cursor, oldest first. Call again with ``next_cursor`` until
    ``items`` is empty."""

    items: list[SyncEventOut]
    next_cursor: str


@get("/v1/notifications", summary="Your notification inbox, newest first")
async def notifications(
    state: State, principal: Caller, limit: Limit = None, cursor: NotificationCursor = None
) -> NotificationsOut:
    page = await container_of(state).inbox.notifications(
        principal.user_id, limit=limit, cursor=cursor
    )
    return NotificationsOut(
        items=[notification_out(n) for n in page.items],
        next_cursor=page.next_cursor,
        unread_count=page.unread_count,
    )


@post(
    "/v1/notifications/read",
    status_code=200,
    summary="Mark notifications read, up to and including an id",
)
async def mark_notifications_read(
    data: JSONBody[ReadUpTo], state: State, principal: Caller
) -> MarkedOut:
    up_to = parse_id_bound(data.up_to_id)
    if up_to is None:
        raise InvalidInput(
            "up_to_id is not an id", code="invalid_id", details={"field": "up_to_id"}
        )
    return MarkedOut(marked=await container_of(state).inbox.mark_read(principal.user_id, up_to))


@get(
    "/v1/sync",
    summary="Events since a cursor, oldest first",
    description="The same events, in the same order, as the WebSocket delivers. Without a "
    "cursor: from the oldest event kept. Events are kept for a while "
    "(`SOCIUS_EVENT_LOG_RETENTION_SECONDS`, 30 days by default); a cursor older than that "
    "answers 410 `cursor_expired`. To resync, take the current position first (a WebSocket "
    "with cursor null, or this endpoint paged from no cursor to its end), re-read your "
    "state through the REST API (conversations, their messages, notifications, friends), "
    "then apply the events after that position (docs/realtime.md). An event about a "
    "message that was deleted (or expired, or erased with its sender's account) reads as "
    "that message's `message.deleted` tombstone, at the same position; one about an "
    "edited message carries its current version.",
    responses={
        410: ResponseSpec(
            data_container=None,
            description="`cursor_expired`: the cursor is older than the events kept; "
            "resync through the REST API, then continue without a cursor",
        )
    },
)
async def sync(
    state: State, principal: Caller, cursor: LogCursor = None, limit: Limit = None
) -> SyncOut:
    page = await container_of(state).inbox.sync(principal.user_id, cursor=cursor, limit=limit)
    return SyncOut(items=[sync_event_out(e) for e in page.items], next_cursor=page.next_cursor)


router = Router(
    path="/",
    route_handlers=with_options([notifications, mark_notifications_read, sync]),
    tags=["conversations"],
    security=[{"bearer": []}],
)
