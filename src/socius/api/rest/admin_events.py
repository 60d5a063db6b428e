"""/v1/admin/events: the durable event stream, read from any position (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.datastructures import State
from litestar.params import QueryParameter

from socius.api.dependencies import container_of
from socius.api.rest.admin_access import admin_router
from socius.api.rest.params import Limit
from socius.domain.stream import EVENT_SCHEMA_VERSION, FILTERS_PATTERN, StreamedEvent
from socius.services.events import EventPage

__all__ = ["EventOut", "EventPageOut", "event_out", "router"]

_MAX_POSITION = 2**53


class EventOut(msgspec.Struct, kw_only=True):
    """One domain event, as the stream holds it."""

    position: int
    """Its place in the stream: read ``after`` it to get what follows."""
    id: str
    """Unique and time-ordered; the de-duplication key (``Nats-Msg-Id``, ``webhook-id``)."""
    type: str
    occurred_at: datetime
    data: dict[str, Any]
    """Ids and metadata (docs/events.md lists each type's fields); never content."""
    body: str | None = None
    """With ``bodies=true``: a message event's body, while the message still has one."""
    v: int = EVENT_SCHEMA_VERSION


class EventPageOut(msgspec.Struct, kw_only=True):
    items: list[EventOut]
    next_after: int
    """Pass as ``after`` for the next page (the same value when nothing was new)."""
    head: int
    """The stream's last position when the page was read."""


def event_out(item: StreamedEvent, *, bodies: bool = False) -> EventOut:
    e = item.event
    return EventOut(
        position=item.position,
        id=str(e.id),
        type=e.type,
        occurred_at=e.occurred_at,
        data=e.data,
        body=item.body if bodies else None,
    )


def _page_out(page: EventPage, bodies: bool) -> EventPageOut:
    return EventPageOut(
        items=[event_out(i, bodies=bodies) for i in page.items],
        next_after=page.next_after,
        head=page.head,
    )


@get(
    "/events",
    summary="The durable event stream, from any position (admins only)",
    description="Domain events oldest first, after stream position `after` (0: from the "
    "start). `types` narrows them (comma-separated names, or `prefix.*`). Message bodies "
    "only with `bodies=true`, and only while the message still has content. Erasures "
    "appear as `account.erased` and `message.redacted` events (docs/events.md).",
)
async def list_events(
    state: State,
    after: Annotated[
        int, QueryParameter(ge=0, le=_MAX_POSITION, description="a stream position; 0: start")
    ] = 0,
    types: Annotated[
        str | None,
        QueryParameter(
            max_length=1000,
            pattern=FILTERS_PATTERN,
            description="comma-separated event types or `prefix.*`, e.g. `message.*` "
            "(a name that is no type matches nothing)",
        ),
    ] = None,
    bodies: Annotated[
        bool, QueryParameter(description="attach message bodies that still exist")
    ] = False,
    limit: Limit = None,
) -> EventPageOut:
    page = await container_of(state).events.read(
        after=after, types=[types] if types else [], limit=limit, bodies=bodies
    )
    return _page_out(page, bodies)


router = admin_router("/v1/admin", [list_events], tags=("admin", "events"))
