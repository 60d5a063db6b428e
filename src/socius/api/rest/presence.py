"""GET /v1/presence."""

from __future__ import annotations

from datetime import datetime

import msgspec
from litestar import Router, get
from litestar.datastructures import State

from socius.api.dependencies import Caller, container_of
from socius.api.options import with_options
from socius.api.rest.params import IdList, parse_id_list
from socius.domain.errors import Unavailable
from socius.realtime.presence import MAX_IDS

__all__ = ["router"]


class PresenceOut(msgspec.Struct, kw_only=True):
    user_id: str
    online: bool
    last_seen_at: datetime | None


class PresenceListOut(msgspec.Struct, kw_only=True):
    items: list[PresenceOut]


@get(
    "/v1/presence",
    summary="Whether your friends are online",
    description=(
        f"Up to {MAX_IDS} comma-separated user ids. Only your friends are reported; other "
        "ids (strangers, yourself, unknown users) are left out of `items`, so nothing is "
        "revealed about them. `last_seen_at` is the current time for a friend who is "
        "online, when they last disconnected otherwise (null if unknown). When the "
        "presence store is unreachable everyone reads as offline."
    ),
)
async def presence(
    state: State,
    principal: Caller,
    ids: IdList,
) -> PresenceListOut:
    parsed = parse_id_list(ids)
    realtime = container_of(state).realtime
    if realtime is None:
        raise Unavailable("presence is not configured")
    found = await realtime.presence.lookup(principal.user_id, parsed)
    return PresenceListOut(
        items=[
            PresenceOut(user_id=str(p.user_id), online=p.online, last_seen_at=p.last_seen_at)
            for p in found
        ]
    )


router = Router(
    path="/",
    route_handlers=with_options([presence]),
    tags=["conversations"],
    security=[{"bearer": []}],
)
