"""/v1/users/{id}/...: another user's lists, and following, blocking, muting them."""

from __future__ import annotations

from collections.abc import Awaitable

from litestar import Response, Router, delete, get, post
from litestar.datastructures import State

from socius.api.dependencies import Caller, container_of
from socius.api.fast import fast, fast_page
from socius.api.options import with_options
from socius.api.rest.bodies import json_response, renderer
from socius.api.rest.graph_views import (
    RelationshipOut,
    UserListOut,
    change_relationship,
    fast_change,
    relationship_out,
    user_list_out,
)
from socius.api.rest.params import EdgeCursor, IdPath, Limit, user_id_or_404
from socius.domain.graph import EdgeType
from socius.services.auth import Principal
from socius.services.container import Container
from socius.services.graph import GraphService

__all__ = ["router"]

_render_list = renderer(user_list_out)

_PRIVATE = (
    "Hidden from non-friends when the owner is private (403 `private_account`), "
    "and across a block (404). Users blocked either way with the caller are left out "
    "(a page may then hold fewer than `limit`; follow `next_cursor`)."
)


async def _list(
    state: State,
    viewer: int,
    user_id: str,
    type_: EdgeType,
    limit: int | None,
    cursor: str | None,
) -> Response[UserListOut]:
    body = await _list_body(container_of(state), viewer, user_id, type_, limit, cursor)
    return json_response(body)


async def _list_body(
    container: Container,
    viewer: int,
    user_id: str,
    type_: EdgeType,
    limit: int | None,
    cursor: str | None,
) -> bytes:
    return await container.graph.list_edges_body(
        viewer, user_id_or_404(user_id), type_, limit=limit, cursor=cursor, render=_render_list
    )


def _fast_friends(
    container: Container,
    principal: Principal,
    params: tuple[str, ...],
    limit: int | None,
    cursor: str | None,
) -> Awaitable[bytes]:
    return _list_body(container, principal.user_id, params[0], EdgeType.FRIEND, limit, cursor)


@get(
    "/{user_id:str}/friends",
    summary="A user's friends, newest first",
    description=_PRIVATE,
    opt=fast(fast_page(_fast_friends)),  # the front answers a plain GET itself (api/fast.py)
)
async def friends_of(
    user_id: IdPath,
    state: State,
    principal: Caller,
    limit: Limit = None,
    cursor: EdgeCursor = None,
) -> Response[UserListOut]:
    return await _list(state, principal.user_id, user_id, EdgeType.FRIEND, limit, cursor)


@get("/{user_id:str}/followers", summary="A user's followers, newest first", description=_PRIVATE)
async def followers_of(
    user_id: IdPath,
    state: State,
    principal: Caller,
    limit: Limit = None,
    cursor: EdgeCursor = None,
) -> Response[UserListOut]:
    return await _list(state, principal.user_id, user_id, EdgeType.FOLLOWED_BY, limit, cursor)


@get("/{user_id:str}/following", summary="Whom a user follows, newest first", description=_PRIVATE)
async def following_of(
    user_id: IdPath,
    state: State,
    principal: Caller,
    limit: Limit = None,
    cursor: EdgeCursor = None,
) -> Response[UserListOut]:
    return await _list(state, principal.user_id, user_id, EdgeType.FOLLOWS, limit, cursor)


async def _mutual_body(
    container: Container,
    principal: Principal,
    params: tuple[str, ...],
    limit: int | None,
    cursor: str | None,
) -> bytes:
    page = await container.graph.mutual_friends(
        principal.user_id, user_id_or_404(params[0]), limit=limit, cursor=cursor
    )
    return _render_list(page)


@get(
    "/{user_id:str}/mutual-friends",
    summary="Friends you share with a user",
    description=_PRIVATE,
    opt=fast(fast_page(_mutual_body)),  # the front answers a plain GET itself (api/fast.py)
)
async def mutual_friends(
    user_id: IdPath,
    state: State,
    principal: Caller,
    limit: Limit = None,
    cursor: EdgeCursor = None,
) -> Response[UserListOut]:
    body = await _mutual_body(container_of(state), principal, (user_id,), limit, cursor)
    return json_response(body)


@post(
    "/{user_id:str}/follow",
    status_code=200,
    summary="Follow",
    description="A follow request when they are private. Idempotent.",
    opt=fast_change(GraphService.follow),  # answered by the front (api/fast.py)
)
async def follow(user_id: IdPath, state: State, principal: Caller) -> RelationshipOut:
    return await change_relationship(container_of(state), principal, user_id, GraphService.follow)


@delete(
    "/{user_id:str}/follow",
    status_code=200,
    summary="Unfollow (or withdraw a request)",
    opt=fast_change(GraphService.unfollow),  # answered by the front
)
async def unfollow(user_id: IdPath, state: State, principal: Caller) -> RelationshipOut:
    return await change_relationship(container_of(state), principal, user_id, GraphService.unfollow)


@post(
    "/{user_id:str}/block",
    status_code=200,
    summary="Block",
    description="Ends friendship, requests and follows both ways and hides each from the "
    "other. Unblocking restores nothing.",
)
async def block(user_id: IdPath, state: State, principal: Caller) -> RelationshipOut:
    graph = container_of(state).graph
    return relationship_out(await graph.block(principal.user_id, user_id_or_404(user_id)))


@delete("/{user_id:str}/block", status_code=200, summary="Unblock")
async def unblock(user_id: IdPath, state: State, principal: Caller) -> RelationshipOut:
    graph = container_of(state).graph
    return relationship_out(await graph.unblock(principal.user_id, user_id_or_404(user_id)))


@post("/{user_id:str}/mute", status_code=200, summary="Mute")
async def mute(user_id: IdPath, state: State, principal: Caller) -> RelationshipOut:
    graph = container_of(state).graph
    return relationship_out(await graph.mute(principal.user_id, user_id_or_404(user_id)))


@delete("/{user_id:str}/mute", status_code=200, summary="Unmute")
async def unmute(user_id: IdPath, state: State, principal: Caller) -> RelationshipOut:
    graph = container_of(state).graph
    return relationship_out(await graph.unmute(principal.user_id, user_id_or_404(user_id)))


router = Router(
    path="/v1/users",
    route_handlers=with_options(
        [
            friends_of,
            followers_of,
            following_of,
            mutual_friends,
            follow,
            unfollow,
            block,
            unblock,
            mute,
            unmute,
        ]
    ),
    tags=["graph"],
    security=[{"bearer": []}],
)
