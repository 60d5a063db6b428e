"""What every resolver gets: the services, the caller, and the DataLoaders of this caller.

The caller is authenticated exactly as REST does it. Over HTTP: ``authenticate`` of
api/dependencies.py, on the request (the Bearer token; verified once per request). Over
the WebSocket: the token of the ``connection_init`` payload, verified when the socket
opens (controller.py); the socket then outlives its token, as the gateway's does, and
every operation checks that its session has not been revoked.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.litestar.controller import BaseContext

from socius.api.dependencies import authenticate
from socius.domain.conversations import Member
from socius.domain.errors import Unauthenticated
from socius.domain.graph import Relationship
from socius.services.auth import Principal
from socius.services.container import Container
from socius.services.graph import MAX_RELATIONSHIP_IDS
from socius.services.profiles import Profile

__all__ = ["GraphContext", "Loaders", "loaders", "viewer"]

MemberPage = tuple[list[Member], str | None]


class GraphContext(BaseContext, kw_only=True):
    """One per HTTP request, or one per WebSocket (shared by its operations)."""

    container: Container
    principal: Principal | None = None  # over the WebSocket: from connection_init
    connection_params: dict[str, Any] | None = None  # set by Strawberry (connection_init)
    loaders: Loaders | None = None  # made on first use, for the caller


def _context(info: strawberry.Info) -> GraphContext:
    context = info.context
    assert isinstance(context, GraphContext)
    return context


async def viewer(info: strawberry.Info) -> Principal:
    """The caller: 401-style ``unauthenticated`` errors as REST gives them."""
    context = _context(info)
    principal: Principal
    if context.request is not None:
        principal = await authenticate(context.request)
    else:
        if context.principal is None:
            raise Unauthenticated("an access token is required", code="missing_token")
        principal = context.principal
        if await context.container.revocations.is_revoked(principal.session_id):
            raise Unauthenticated("the session has ended", code="session_revoked")
    if context.loaders is None:
        # Over HTTP the context lives for one request: its loaders may remember what they
        # read. A WebSocket's context lives for the socket: there they only batch.
        context.loaders = Loaders(
            context.container, principal.user_id, cache=context.request is not None
        )
    return principal


def loaders(info: strawberry.Info) -> Loaders:
    """The caller's loaders (a nested field: the root field has authenticated already)."""
    found = _context(info).loaders
    assert found is not None, "viewer() runs first, in every root field"
    return found


class Loaders:
    """Batch the reads that the items of a page would otherwise make one by one."""

    __slots__ = ("members", "relationships", "users")

    def __init__(self, container: Container, viewer_id: int, *, cache: bool) -> None:
        graph, messaging = container.graph, container.messaging

        async def users(ids: list[int]) -> list[Profile | None]:
            found = await graph.visible_profiles(viewer_id, ids)
            return [found.get(u) for u in ids]

        async def relationships(ids: list[int]) -> list[Relationship]:
            unique = list(dict.fromkeys(ids))
            found: dict[int, Relationship] = {}
            for k in range(0, len(unique), MAX_RELATIONSHIP_IDS):
                chunk = unique[k : k + MAX_RELATIONSHIP_IDS]
                for rel in await graph.relationships(viewer_id, chunk):
                    found[rel.user_id] = rel
            return [found[u] for u in ids]

        async def members(keys: list[tuple[int, int]]) -> list[MemberPage | None]:
            by_limit: dict[int, list[int]] = {}
            for cid, limit in keys:
                by_limit.setdefault(limit, []).append(cid)
            pages: dict[tuple[int, int], MemberPage] = {}
            for limit, cids in by_limit.items():
                found = await messaging.first_members(viewer_id, cids, limit=limit)
                pages.update({(cid, limit): page for cid, page in found.items()})
            return [pages.get(key) for key in keys]

        self.users: DataLoader[int, Profile | None] = DataLoader(users, cache=cache)
        self.relationships: DataLoader[int, Relationship] = DataLoader(relationships, cache=cache)
        self.members: DataLoader[tuple[int, int], MemberPage | None] = DataLoader(
            members, cache=cache
        )
