"""Routes the front answers itself: the hot reads and writes, past Litestar's per-request
layers.

A Litestar GET handler that declares ``opt=fast(read)`` stays the route's definition (its
OpenAPI entry, its parameters' documentation, its answer to every request the fast lane
declines); the front (api/front.py) calls ``read(container, principal, path_params,
query_string)`` itself for a plain GET of that route once the bearer token is verified,
and sends the body it returns as a 200 JSON answer. ``read`` returns None to decline a
request (a query it does not parse as simply as Litestar would, say): Litestar answers
it. An exception it raises is answered by the front with the same mapping as Litestar's
exception handlers (api/errors.py `error_parts`).

Why (decision 0041): a warm GET /v1/users/{id} spent ~50 µs of its ~180 µs in Litestar's
routing, scope state, signature model, dependency resolution (an ``AsyncExitStack`` per
request) and response handler: work whose outcome is the same on every request of the
route. The route's own work (the L1 lookup, the cached body) is the same either way.

The hot writes (follow, unfollow, friend request and accept, ``PATCH /v1/me``) declare
``opt=fast_write(write)`` the same way (decision 0046): ``write(container, principal,
path_params, body)`` calls the same function the Litestar handler calls and returns the
200 body, encoded as Litestar encodes the handler's return value.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from socius.domain.pagination import MAX_LIMIT
from socius.services.auth import Principal
from socius.services.container import Container

__all__ = [
    "FAST_GET",
    "FAST_WRITE",
    "NOT_SIMPLE",
    "FastRead",
    "FastWrite",
    "PageBody",
    "fast",
    "fast_page",
    "fast_write",
    "id_list_query",
    "limit_query",
    "page_query",
    "simple_query",
]

FAST_GET = "socius.fast_get"
"""The key of a handler's ``opt`` that names its fast read."""

FastRead = Callable[[Container, Principal, tuple[str, ...], bytes], Awaitable[bytes | None]]
"""``(container, caller, path parameters in path order, raw query string)``: the body, or
None to let Litestar answer."""


def fast(read: FastRead) -> dict[str, Any]:
    """The ``opt`` of a GET handler (one that needs the bearer token) the front may answer
    with `read`."""
    return {FAST_GET: read}


FAST_WRITE = "socius.fast_write"
"""The key of a handler's ``opt`` that names its fast write."""

FastWrite = Callable[[Container, Principal, tuple[str, ...], bytes], Awaitable[bytes]]
"""``(container, caller, path parameters in path order, request body)``: the 200 JSON
body (decision 0046)."""


def fast_write(write: FastWrite, *, body: bool = False) -> dict[str, Any]:
    """The ``opt`` of a POST, PUT, PATCH or DELETE handler (one that needs the bearer token
    and answers 200 with JSON) the front may answer with `write`.

    Without `body` the handler declares no request body and `write` is given ``b""``
    (Litestar never reads one there either). With `body`, the front reads the body first
    and calls `write` only with a non-empty one within the app's size limit and an
    absent or well-formed ``Content-Length``; `write` decodes it with
    ``api/body.py``'s ``decode_body`` into the handler's ``data`` type, as Litestar's
    ``StrictRequest`` does (same errors). Any other body goes to Litestar (replayed)."""
    return {FAST_WRITE: (write, body)}


# A value that means the same to Litestar's query parser and to this one: no escapes,
# no "+" (a space to Litestar), nothing to decode.
_PLAIN = re.compile(rb"[A-Za-z0-9_.~-]*")


def simple_query(query: bytes, names: frozenset[str]) -> dict[str, str] | None:
    """The query as {name: value} when every parameter is one of `names`, given once, with
    a plain value; None for anything else (the caller declines: Litestar judges it)."""
    found: dict[str, str] = {}
    if not query:
        return found
    for part in query.split(b"&"):
        name, eq, value = part.partition(b"=")
        if not eq or not _PLAIN.fullmatch(value):
            return None
        key = unquote(name.decode("latin-1"))
        if key not in names or key in found:
            return None
        found[key] = value.decode("ascii")
    return found


_PAGE = frozenset({"limit", "cursor"})
_LIMIT = re.compile(r"[1-9][0-9]{0,2}")
NOT_SIMPLE = (-1, None)
"""What `page_query` gives for a query the fast read declines."""


def page_query(query: bytes, max_limit: int) -> tuple[int | None, str | None]:
    """``limit`` and ``cursor`` of a list's query, when Litestar would read them the same
    (a limit of 1 to `max_limit` in plain digits, a non-empty plain cursor, nothing else);
    else `NOT_SIMPLE`."""
    found = simple_query(query, _PAGE)
    if found is None:
        return NOT_SIMPLE
    limit = found.get("limit")
    if limit is not None and (not _LIMIT.fullmatch(limit) or int(limit) > max_limit):
        return NOT_SIMPLE
    cursor = found.get("cursor")
    if cursor == "":
        return NOT_SIMPLE
    return (None if limit is None else int(limit)), cursor


PageBody = Callable[
    [Container, Principal, tuple[str, ...], int | None, str | None], Awaitable[bytes]
]
"""``(container, caller, path parameters, limit, cursor)``: a list page's body."""


def fast_page(body: PageBody, max_limit: int = MAX_LIMIT) -> FastRead:
    """The fast read of a paged list: `body` with the ``limit`` and ``cursor`` that
    `page_query` reads; a query it does not read simply is declined (Litestar reads it)."""

    async def read(
        container: Container, principal: Principal, params: tuple[str, ...], query: bytes
    ) -> bytes | None:
        limit, cursor = page_query(query, max_limit)
        if limit == -1:  # NOT_SIMPLE
            return None
        return await body(container, principal, params, limit, cursor)

    return read


_LIMIT_ONLY = frozenset({"limit"})


def limit_query(query: bytes, max_limit: int, default: int) -> int:
    """``limit`` of a query that has no other parameter, when Litestar would read it the
    same (plain digits, 1 to `max_limit`; `default` when absent); else -1 (decline)."""
    found = simple_query(query, _LIMIT_ONLY)
    if found is None:
        return -1
    limit = found.get("limit")
    if limit is None:
        return default
    if not _LIMIT.fullmatch(limit) or int(limit) > max_limit:
        return -1
    return int(limit)


_ID_LIST = re.compile(rb"ids=([0-9,]+)")


def id_list_query(query: bytes, max_length: int) -> str | None:
    """The value of a query that is exactly ``ids=<digits and commas>`` of at most
    `max_length` characters (nothing to decode, no other parameter); else None (decline:
    Litestar judges it, its length bound included)."""
    match = _ID_LIST.fullmatch(query)
    if match is None or len(match.group(1)) > max_length:
        return None
    return match.group(1).decode("ascii")
