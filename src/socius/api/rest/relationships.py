"""/v1/relationships, /v1/blocks, /v1/follow-requests."""

from __future__ import annotations

from litestar import Response, Router, get, post
from litestar.datastructures import State

from socius.api.dependencies import Caller, container_of
from socius.api.fast import fast, id_list_query
from socius.api.options import with_options
from socius.api.rest.bodies import json_response, renderer
from socius.api.rest.graph_views import (
    RelationshipOut,
    RelationshipsOut,
    UserListOut,
    relationship_out,
    user_list_out,
)
from socius.api.rest.params import (
    ID_LIST_MAX_LENGTH,
    EdgeCursor,
    IdList,
    IdPath,
    Limit,
    parse_id_list,
    user_id_or_404,
)
from socius.domain.graph import EdgeType, Relationship
from socius.services.auth import Principal
from socius.services.container import Container

__all__ = ["router"]


def _relationships_out(found: list[Relationship]) -> RelationshipsOut:
    return RelationshipsOut(items=[relationship_out(r) for r in found])


_render_relationships = renderer(_relationships_out)


async def _relationships_body(container: Container, principal: Principal, ids: str) -> bytes:
    found = await container.graph.relationships(principal.user_id, parse_id_list(ids))
    return _render_relationships(found)


async def _fast_relationships(
    container: Container, principal: Principal, _params: tuple[str, ...], query: bytes
) -> bytes | None:
    ids = id_list_query(query, ID_LIST_MAX_LENGTH)
    if ids is None:  # Litestar reads (and judges) the query
        return None
    return await _relationships_body(container, principal, ids)


@get(
    "/v1/relationships",
    summary="Relationship objects for up to 100 users",
    opt=fast(_fast_relationships),  # the front answers a plain GET itself (api/fast.py)
)
async def relationships(
    state: State,
    principal: Caller,
    ids: IdList,
) -> Response[RelationshipsOut]:
    return json_response(await _relationships_body(container_of(state), principal, ids))


@get("/v1/blocks", summary="Users you block, newest first")
async def blocks(
    state: State, principal: Caller, limit: Limit = None, cursor: EdgeCursor = None
) -> UserListOut:
    page = await container_of(state).graph.list_own(
        principal.user_id, EdgeType.BLOCKS, limit=limit, cursor=cursor
    )
    return user_list_out(page)


@get("/v1/follow-requests", summary="Requests to follow you (private accounts)")
async def follow_requests(
    state: State, principal: Caller, limit: Limit = None, cursor: EdgeCursor = None
) -> UserListOut:
    page = await container_of(state).graph.list_own(
        principal.user_id, EdgeType.FOLLOW_REQUEST_IN, limit=limit, cursor=cursor
    )
    return user_list_out(page)


@post("/v1/follow-requests/{user_id:str}/approve", status_code=200, summary="Let a user follow you")
async def approve(user_id: IdPath, state: State, principal: Caller) -> RelationshipOut:
    graph = container_of(state).graph
    rel = await graph.approve_follow_request(principal.user_id, user_id_or_404(user_id))
    return relationship_out(rel)


@post(
    "/v1/follow-requests/{user_id:str}/reject", status_code=200, summary="Refuse a follow request"
)
async def reject(user_id: IdPath, state: State, principal: Caller) -> RelationshipOut:
    graph = container_of(state).graph
    rel = await graph.reject_follow_request(principal.user_id, user_id_or_404(user_id))
    return relationship_out(rel)


router = Router(
    path="/",
    route_handlers=with_options([relationships, blocks, follow_requests, approve, reject]),
    tags=["graph"],
    security=[{"bearer": []}],
)
