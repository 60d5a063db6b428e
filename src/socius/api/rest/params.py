"""Path and query parameters shared by the routes."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

from socius.domain.errors import InvalidInput, NotFound
from socius.domain.ids import parse_id

__all__ = ["Cursor", "IdList", "Limit", "parse_id_list", "user_id_or_404"]

Limit = Annotated[int | None, QueryParameter(ge=1, le=100, description="1-100, default 50")]
Cursor = Annotated[
    str | None,
    QueryParameter(max_length=512, description="next_cursor from the previous page"),
]


def user_id_or_404(text: str) -> int:
    value = parse_id(text)
    if value is None:
        raise NotFound("no such user", code="user_not_found")
    return value


IdList = Annotated[str, QueryParameter(max_length=2200, description="comma-separated user ids")]


def parse_id_list(text: str) -> list[int]:
    """``a,b,c`` as ids; 422 ``invalid_id`` naming the first that is not one."""
    parsed = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        value = parse_id(part)
        if value is None:
            raise InvalidInput(
                f"not a user id: {part[:24]!r}", code="invalid_id", details={"field": "ids"}
            )
        parsed.append(value)
    return parsed
