"""Path and query parameters shared by the routes, each with the range the server enforces,
so the OpenAPI document shows it.

Integers are range-checked by Litestar (422 ``validation_error``). Ids in paths are
documented as decimal strings but not refused on shape: a malformed id names nothing, so
it is a 404 like an unknown one. Cursors are documented as opaque, one ``format`` per list
(the test suite teaches its fuzzer how to make each), and judged by domain/pagination.py
(400 ``invalid_cursor``).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.params import Parameter, QueryParameter

from socius.domain.errors import InvalidInput, NotFound
from socius.domain.ids import ID_PATTERN, parse_id
from socius.domain.pagination import (
    MAX_INT64,
    MAX_LIMIT,
    ActivityPosition,
    AuditPosition,
    EdgePosition,
    LogPosition,
    MemberPosition,
    NotificationPosition,
    OffsetPosition,
    UserPosition,
)

__all__ = [
    "CURSOR_FORMATS",
    "ID_LIST_MAX_LENGTH",
    "ID_LIST_PATTERN",
    "MAX_LIST_IDS",
    "ActivityCursor",
    "AfterSeq",
    "AuditCursor",
    "BeforeSeq",
    "EdgeCursor",
    "IdList",
    "IdPath",
    "Limit",
    "LogCursor",
    "MemberCursor",
    "NotificationCursor",
    "OffsetCursor",
    "UserCursor",
    "parse_id_list",
    "user_id_or_404",
]

MAX_LIST_IDS = 100
ID_LIST_MAX_LENGTH = 2200
ID_LIST_PATTERN = rf"^(?:[0-9]{{1,19}}(?:,[0-9]{{1,19}}){{0,{MAX_LIST_IDS - 1}}})?$"

Limit = Annotated[
    int | None, QueryParameter(ge=1, le=MAX_LIMIT, description=f"1-{MAX_LIMIT}, default 50")
]
BeforeSeq = Annotated[
    int | None,
    QueryParameter(ge=1, le=MAX_INT64, description="only messages with a smaller seq"),
]
AfterSeq = Annotated[
    int | None,
    QueryParameter(
        ge=0,
        le=MAX_INT64,
        description="only messages with a larger seq",
        schema_extra={"minimum": 0},  # Litestar leaves out a bound of 0
    ),
]

CURSOR_FORMATS: dict[str, type[msgspec.Struct]] = {
    "log-cursor": LogPosition,
    "notification-cursor": NotificationPosition,
    "edge-cursor": EdgePosition,
    "member-cursor": MemberPosition,
    "activity-cursor": ActivityPosition,
    "offset-cursor": OffsetPosition,
    "user-cursor": UserPosition,
    "audit-cursor": AuditPosition,
}
"""The ``format`` of each list's cursor parameter, and the position it holds."""

_CURSOR = (
    "Opaque: the `next_cursor` of the previous page of this list (400 `invalid_cursor` otherwise)."
)
LogCursor = Annotated[
    str | None,
    QueryParameter(
        description="Opaque: a `cursor` or `next_cursor` from this endpoint or the WebSocket "
        "(400 `invalid_cursor` otherwise).",
        schema_extra={"format": "log-cursor"},
    ),
]
NotificationCursor = Annotated[
    str | None,
    QueryParameter(description=_CURSOR, schema_extra={"format": "notification-cursor"}),
]
EdgeCursor = Annotated[
    str | None, QueryParameter(description=_CURSOR, schema_extra={"format": "edge-cursor"})
]
MemberCursor = Annotated[
    str | None, QueryParameter(description=_CURSOR, schema_extra={"format": "member-cursor"})
]
ActivityCursor = Annotated[
    str | None, QueryParameter(description=_CURSOR, schema_extra={"format": "activity-cursor"})
]
OffsetCursor = Annotated[
    str | None, QueryParameter(description=_CURSOR, schema_extra={"format": "offset-cursor"})
]
UserCursor = Annotated[
    str | None, QueryParameter(description=_CURSOR, schema_extra={"format": "user-cursor"})
]
AuditCursor = Annotated[
    str | None, QueryParameter(description=_CURSOR, schema_extra={"format": "audit-cursor"})
]

IdPath = Annotated[
    str,
    Parameter(
        description="An id: a decimal string (404 for anything else).",
        schema_extra={"pattern": ID_PATTERN},
    ),
]
IdList = Annotated[
    str,
    QueryParameter(
        max_length=ID_LIST_MAX_LENGTH,
        description=f"Up to {MAX_LIST_IDS} comma-separated user ids (422 `invalid_id` for "
        "one that is not an id, 422 `too_many_ids` past the limit).",
        schema_extra={"pattern": ID_LIST_PATTERN},
    ),
]


def user_id_or_404(text: str) -> int:
    value = parse_id(text)
    if value is None:
        raise NotFound("no such user", code="user_not_found")
    return value


def parse_id_list(text: str) -> list[int]:
    """``a,b,c`` as ids; 422 ``invalid_id`` naming the first part that is not id-shaped.
    Id-shaped numbers that cannot be ids (0, past 2**63 - 1) name nobody and are left out."""
    if not text:
        return []
    parts = text.split(",")
    if len(parts) > MAX_LIST_IDS:
        raise InvalidInput(
            f"at most {MAX_LIST_IDS} ids", code="too_many_ids", details={"field": "ids"}
        )
    parsed = []
    for part in parts:
        if not (part.isascii() and part.isdigit() and len(part) <= 19):
            raise InvalidInput(
                f"not a user id: {part[:24]!r}", code="invalid_id", details={"field": "ids"}
            )
        value = parse_id(part)
        if value is not None:
            parsed.append(value)
    return parsed
