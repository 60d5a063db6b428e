"""/v1/friends: friends, friend requests and suggestions."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Response, Router, delete, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, QueryParameter

from socius.api.body import decode_body
from socius.api.dependencies import Caller, container_of
from socius.api.fast import fast, fast_write, page_query
from socius.api.options import with_options
from socius.api.rest.bodies import encode, json_response, renderer
from socius.api.rest.fields import IdText
from socius.api.rest.graph_views import (
    RelationshipOut,
    SuggestionsOut,
    UserListOut,
    change_relationship,
    fast_change,
    relationship_out,
    suggestion_out,
    user_list_out,
)
from socius.api.rest.params import EdgeCursor, IdPath, Limit, user_id_or_404
from socius.domain.graph import EdgeType
from socius.domain.pagination import MAX_LIMIT
from socius.services.auth import Principal
from socius.services.container import Container
from socius.services.graph import GraphService

__all__ = ["router"]

_render_list = renderer(user_list_out)


class FriendRequestIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    user_id: IdText


async def _friends_body(
    container: Container, principal: Principal, limit: int | None, cursor: str | None
) -> bytes:
    return await container.graph.list_own_body(
        principal.user_id, EdgeType.FRIEND, limit=limit, cursor=cursor, render=_render_list
    )


async def _fast_friends(
    container: Container, principal: Principal, _params: tuple[str, ...], query: bytes
) -> bytes | None:
    limit, cursor = page_query(query, MAX_LIMIT)
    if limit == -1:  # NOT_SIMPLE: Litestar reads the query
        return None
    return await _friends_body(container, principal, limit, cursor)


@get("/", summary="Your friends, newest first", opt=fast(_fast_friends))  # answered by the front
async def list_friends(
    state: State, principal: Caller, limit: Limit = None, cursor: EdgeCursor = None
) -> Response[UserListOut]:
    return json_response(await _friends_body(container_of(state), principal, limit, cursor))


@delete("/{user_id:str}", status_code=200, summary="Unfriend")
async def unfriend(user_id: IdPath, state: State, principal: Caller) -> RelationshipOut:
    graph = container_of(state).graph
    return relationship_out(await graph.unfriend(principal.user_id, user_id_or_404(user_id)))


async def _send_request(
    container: Container, principal: Principal, data: FriendRequestIn
) -> RelationshipOut:
    other = user_id_or_404(data.user_id)
    return relationship_out(await container.graph.send_friend_request(principal.user_id, other))


async def _fast_send_request(
    container: Container, principal: Principal, _params: tuple[str, ...], body: bytes
) -> bytes:
    data = decode_body(body, FriendRequestIn)  # as Litestar's StrictRequest decodes it
    return encode(await _send_request(container, principal, data))


@post(
    "/requests",
    status_code=200,
    summary="Send a friend request",
    description="If they already asked you, you become friends. Idempotent; returns the "
    "relationship. 403 `blocked` if you block them; 404 if they block you. 429 "
    "`rate_limited` with Retry-After past the per-user friend-request limit.",
    opt=fast_write(_fast_send_request, body=True),  # answered by the front (api/fast.py)
)
async def send_request(
    data: JSONBody[FriendRequestIn], state: State, principal: Caller
) -> RelationshipOut:
    return await _send_request(container_of(state), principal, data)


@get("/requests", summary="Pending friend requests, newest first")
async def list_requests(
    state: State,
    principal: Caller,
    direction: Annotated[
        Literal["incoming", "outgoing"], QueryParameter(description="which requests")
    ] = "incoming",
    limit: Limit = None,
    cursor: EdgeCursor = None,
) -> UserListOut:
    type_ = EdgeType.REQUEST_IN if direction == "incoming" else EdgeType.REQUEST_OUT
    page = await container_of(state).graph.list_own(
        principal.user_id, type_, limit=limit, cursor=cursor
    )
    return user_list_out(page)


@post(
    "/requests/{user_id:str}/accept",
    status_code=200,
    summary="Accept a friend request",
    opt=fast_change(GraphService.accept_friend_request),  # answered by the front
)
async def accept(user_id: IdPath, state: State, principal: Caller) -> RelationshipOut:
    return await change_relationship(
        container_of(state), principal, user_id, GraphService.accept_friend_request
    )


@post("/requests/{user_id:str}/decline", status_code=200, summary="Decline a friend request")
async def decline(user_id: IdPath, state: State, principal: Caller) -> RelationshipOut:
    graph = container_of(state).graph
    rel = await graph.decline_friend_request(principal.user_id, user_id_or_404(user_id))
    return relationship_out(rel)


@delete("/requests/{user_id:str}", status_code=200, summary="Cancel your outgoing friend request")
async def cancel(user_id: IdPath, state: State, principal: Caller) -> RelationshipOut:
    graph = container_of(state).graph
    rel = await graph.cancel_friend_request(principal.user_id, user_id_or_404(user_id))
    return relationship_out(rel)


@get(
    "/suggestions",
    summary="People you may know",
    description="Friends of friends ranked by mutual friends (Adamic-Adar); never you, a "
    "friend, a pending request either way, or anyone blocked either way.",
)
async def suggestions(
    state: State,
    principal: Caller,
    limit: Annotated[int, QueryParameter(ge=1, le=100, description="1-100, default 20")] = 20,
) -> SuggestionsOut:
    found = await container_of(state).suggestions.suggest(principal.user_id, limit=limit)
    return SuggestionsOut(items=[suggestion_out(s) for s in found])


router = Router(
    path="/v1/friends",
    route_handlers=with_options(
        [
            list_friends,
            suggestions,
            list_requests,
            send_request,
            accept,
            decline,
            cancel,
            unfriend,
        ]
    ),
    tags=["graph"],
    security=[{"bearer": []}],
)
