"""/v1/users: public profiles and search."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, Router, get
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter

from socius.api.dependencies import Caller, container_of
from socius.api.fast import fast
from socius.api.options import with_options
from socius.api.rest.bodies import json_response, renderer
from socius.api.rest.params import IdPath, Limit, OffsetCursor
from socius.api.rest.views import Page, PublicUserOut, public_user_out
from socius.domain.errors import NotFound
from socius.domain.ids import parse_id
from socius.services.auth import Principal
from socius.services.container import Container

__all__ = ["router"]

_render = renderer(public_user_out)


@get(
    "/search",
    summary="Find users by username or display name, best match first",
    description="Never shows a user blocked either way with the caller.",
)
async def search_users(
    state: State,
    principal: Caller,
    q: Annotated[str, QueryParameter(max_length=64, description="text to look for")],
    limit: Limit = None,
    cursor: OffsetCursor = None,
) -> Page[PublicUserOut]:
    page = await container_of(state).profiles.search(
        principal.user_id, q, limit=limit, cursor=cursor
    )
    return Page(items=[public_user_out(p) for p in page.items], next_cursor=page.next_cursor)


@get(
    "/by-username/{username:str}",
    summary="A public profile by username",
    description="404 for an unknown user, and across a block either way.",
)
async def user_by_username(
    username: FromPath[str], state: State, principal: Caller
) -> PublicUserOut:
    container = container_of(state)
    found = await container.profiles.by_username(username)
    return public_user_out(await container.graph.visible_profile(principal.user_id, found.id))


async def _user_body(
    container: Container, principal: Principal, params: tuple[str, ...], _query: bytes
) -> bytes:
    uid = parse_id(params[0])
    if uid is None:
        raise NotFound("no such user", code="user_not_found")
    return await container.graph.visible_profile_body(principal.user_id, uid, _render)


@get(
    "/{user_id:str}",
    summary="A public profile by id",
    description="404 for an unknown user, and across a block either way.",
    opt=fast(_user_body),  # the front answers a plain GET itself (api/fast.py)
)
async def user_by_id(user_id: IdPath, state: State, principal: Caller) -> Response[PublicUserOut]:
    return json_response(await _user_body(container_of(state), principal, (user_id,), b""))


router = Router(
    path="/v1/users",
    route_handlers=with_options([search_users, user_by_username, user_by_id]),
    tags=["identity"],
    security=[{"bearer": []}],
)
