"""The gate of every ``/v1/admin`` route: a valid access token (401), then an administrator
(403 ``admin_required``), before anything else about the request is looked at.

Every admin router is made with ``admin_router``, which puts the gate on it and provides
``admin`` (services/audit.py ``Actor``: who is acting, with the request id and client
address the audit log records) to its handlers. The check itself is the one in
``AdminService.require_admin``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from litestar import Request, Router
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.handlers import HTTPRouteHandler
from litestar.handlers.base import BaseRouteHandler

from socius.api.dependencies import Requester, authenticate, container_of
from socius.api.options import with_options
from socius.observability.logging import current_request_id
from socius.services.audit import Actor

__all__ = ["AdminActor", "admin_router", "require_admin"]

AdminActor = NamedDependency[Actor]
"""The administrator making the request (the route's router is an ``admin_router``)."""

_ACTOR = "socius.admin_actor"


async def _check(connection: ASGIConnection[Any, Any, Any, Any]) -> Actor:
    known = connection.state.get(_ACTOR)
    if isinstance(known, Actor):
        return known
    principal = await authenticate(connection)
    actor = await container_of(connection.app.state).admin.require_admin(
        principal, request_id=current_request_id()
    )
    connection.state[_ACTOR] = actor
    return actor


async def require_admin(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """A guard: guards run before parameters are parsed, so a caller who is not an
    administrator gets 403 whatever else is wrong with the request. ``OPTIONS`` (which
    methods a path has: the OpenAPI document tells as much) needs only a valid token, as
    on every other path."""
    if connection.scope.get("method") == "OPTIONS":
        await authenticate(connection)
        return
    await _check(connection)


async def provide_actor(request: Request[Any, Any, Any], client: Requester) -> Actor:
    actor = await _check(request)
    return dataclasses.replace(actor, ip=client.ip or None)


def admin_router(
    path: str, handlers: Sequence[HTTPRouteHandler], *, tags: Sequence[str] = ("admin",)
) -> Router:
    """A router under ``/v1/admin`` whose every route needs an administrator."""
    assert path.startswith("/v1/admin"), path
    return Router(
        path=path,
        route_handlers=with_options(handlers),
        tags=list(tags),
        security=[{"bearer": []}],
        guards=[require_admin],
        dependencies={"admin": Provide(provide_actor)},
    )
