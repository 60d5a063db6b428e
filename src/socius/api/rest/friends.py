"""/v1/friends: friends, friend requests and suggestions."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Response, Router, delete, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, QueryParameter

from socius.api.body import decode_body
from socius.api.dependencies import Caller, container_of
from socius.api.fast import fast, fast_page, fast_write, limit_query
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
from socius.services.auth import Principal
from socius.services.container import Container
from socius.services.graph import GraphService
from socius.services.suggestions import Suggestion

__all__ = ["router"]

_render_list = renderer(user_list_out)


class FriendRequestIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    user_id: IdText


async def _friends_body(
    container: Container,
    principal: Principal,
    _params: tuple[str, ...],
    limit: int | None,
    cursor: str | None,
) -> bytes:
    return await container.graph.list_own_body(
        principal.user_id, EdgeType.FRIEND, limit=limit, cursor=cursor, render=_render_list
    )


@get(
    "/",
    summary="Your friends, newest first",
    opt=fast(fast_page(_friends_body)),  # the front answers a plain GET itself (api/fast.py)
)
async def list_friends(
    state: State, principal: Caller, limit: Limit = None, cursor: EdgeCursor = None
) -> Response[UserListOut]:
    return json_response(await _friends_body(container_of(state), principal, (), limit, cursor))


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


SUGGESTIONS_MAX = 100
SUGGESTIONS_DEFAULT = 20


def _suggestions_out(found: list[Suggestion]) -> SuggestionsOut:
    return SuggestionsOut(items=[suggestion_out(s) for s in found])


_render_suggestions = renderer(_suggestions_out)


async def _suggestions_body(container: Container, principal: Principal, limit: int) -> bytes:
    return _render_suggestions(await container.suggestions.suggest(principal.user_id, limit=limit))


async def _fast_suggestions(
    container: Container, principal: Principal, _params: tuple[str, ...], query: bytes
) -> bytes | None:
    limit = limit_query(query, SUGGESTIONS_MAX, SUGGESTIONS_DEFAULT)
    if limit == -1:  # Litestar reads (and judges) the query
        return None
    return await _suggestions_body(container, principal, limit)


@get(
    "/suggestions",
    summary="People you may know",
    description="Friends of friends ranked by mutual friends (Adamic-Adar); never you, a "
    "friend, a pending request either way, or anyone blocked either way.",
    opt=fast(_fast_suggestions),  # the front answers a plain GET itself (api/fast.py)
)
async def suggestions(
    state: State,
    principal: Caller,
    limit: Annotated[
        int,
        QueryParameter(
            ge=1,
            le=SUGGESTIONS_MAX,
            description=f"1-{SUGGESTIONS_MAX}, default {SUGGESTIONS_DEFAULT}",
        ),
    ] = SUGGESTIONS_DEFAULT,
) -> Response[SuggestionsOut]:
    return json_response(await _suggestions_body(container_of(state), principal, limit))


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
