"""Request-scoped values the routes ask for: the container, the caller, client info."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from socius.domain.errors import Unauthenticated
from socius.services.auth import ClientInfo, Principal
from socius.services.container import Container

__all__ = [
    "PRINCIPAL_KEY",
    "Caller",
    "Requester",
    "container_of",
    "dependencies",
    "provide_client",
    "provide_principal",
]


Caller = NamedDependency[Principal]
"""The authenticated caller; a route that asks for it needs a valid access token."""

Requester = NamedDependency[ClientInfo]
"""Where the request came from (IP, user agent)."""


def container_of(state: State) -> Container:
    container: Container = state.container
    return container


PRINCIPAL_KEY = "socius.principal"
"""Where the caller is kept in ``scope["state"]`` once verified (by api/front.py)."""


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The caller of this request, verified once and remembered in the scope. The front
    (api/front.py) has done it for every route that declares the bearer requirement; this
    is the way for anything else that needs the caller."""
    state = connection.scope.get("state")
    known = state.get(PRINCIPAL_KEY) if state else None
    if isinstance(known, Principal):
        return known
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("an access token is required", code="missing_token")
    principal = await container_of(connection.app.state).auth.authenticate(token.strip())
    connection.scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
    return principal


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    state = request.scope.get("state")
    known = state.get(PRINCIPAL_KEY) if state else None
    if isinstance(known, Principal):  # the front verified it (the usual case)
        return known
    return await authenticate(request)


def provide_client(request: Request[Any, Any, Any]) -> ClientInfo:
    container = container_of(request.app.state)
    ip = request.client.host if request.client else ""
    if container.settings.trust_forwarded_for:
        # The rightmost entry is the one our own proxy appended; the rest are the client's word.
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded:
            ip = forwarded.rsplit(",", 1)[-1].strip()
    return ClientInfo(ip=ip, user_agent=request.headers.get("user-agent", ""))


dependencies = {
    "principal": Provide(provide_principal),
    "client": Provide(provide_client, sync_to_thread=False),
}
