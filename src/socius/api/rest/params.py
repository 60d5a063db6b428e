"""Path and query parameters shared by the routes."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

from socius.domain.errors import NotFound
from socius.domain.ids import parse_id

__all__ = ["Cursor", "Limit", "user_id_or_404"]

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
