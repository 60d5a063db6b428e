"""/v1/search: message search (docs/search.md)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Router, get
from litestar.datastructures import State
from litestar.params import QueryParameter

from socius.api.dependencies import Caller, container_of
from socius.api.options import with_options
from socius.api.rest.message_views import MessageOut, message_out
from socius.api.rest.params import Limit, OffsetCursor
from socius.api.rest.views import Page
from socius.domain.conversations import not_found
from socius.domain.ids import ID_PATTERN, parse_id
from socius.domain.search import (
    MAX_QUERY_LENGTH,
    MAX_SEARCH_OFFSET,
    QUERY_PATTERN,
    SearchHit,
)

__all__ = ["router"]


class SearchHitOut(msgspec.Struct, kw_only=True):
    """A message that matches, and a snippet of it: HTML-escaped text in which each match
    is wrapped in `<mark>` and `</mark>`, the only markup it holds (insert it as HTML;
    or strip the two tags and unescape for plain text)."""

    message: MessageOut
    snippet: str


def _hit_out(hit: SearchHit) -> SearchHitOut:
    return SearchHitOut(message=message_out(hit.message), snippet=hit.snippet)


@get(
    "/messages",
    summary="Search your messages, best match first",
    description="Messages holding every word of `q` (any order, case aside; "
    "no operators: quotes, `OR`, `-` and `*` are plain punctuation), in the conversations "
    "the caller is a member of now, or in `conversation_id` alone (404 "
    "`conversation_not_found` unless a member, like every conversation route). Members "
    "search a conversation's whole history, as they read it; a deleted, expired or erased "
    f"message never matches. Pages go {MAX_SEARCH_OFFSET} results deep. 422 "
    f"`empty_query` for a `q` without a word, `query_too_long` past {MAX_QUERY_LENGTH} "
    "characters, `invalid_characters` for a control character.",
)
async def search_messages(
    state: State,
    principal: Caller,
    q: Annotated[
        str,
        QueryParameter(
            description="the words to look for",
            schema_extra={
                "minLength": 1,
                "maxLength": MAX_QUERY_LENGTH,
                "pattern": QUERY_PATTERN,
            },
        ),
    ],
    conversation_id: Annotated[
        str | None,
        QueryParameter(
            description="only this conversation (a decimal id; 404 when not a member)",
            schema_extra={"pattern": ID_PATTERN},
        ),
    ] = None,
    limit: Limit = None,
    cursor: OffsetCursor = None,
) -> Page[SearchHitOut]:
    cid = None
    if conversation_id is not None:
        cid = parse_id(conversation_id)
        if cid is None:
            raise not_found()
    page = await container_of(state).search.messages(
        principal.user_id, q, conversation_id=cid, limit=limit, cursor=cursor
    )
    return Page(items=[_hit_out(h) for h in page.items], next_cursor=page.next_cursor)


router = Router(
    path="/v1/search",
    route_handlers=with_options([search_messages]),
    tags=["conversations"],
    security=[{"bearer": []}],
)
