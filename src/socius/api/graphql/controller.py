"""/graphql on Strawberry's Litestar integration: POST (and GET) for queries and mutations,
``graphql-transport-ws`` subscriptions on the same path, GraphiQL for a browser.

- HTTP: the caller's ``Authorization: Bearer`` token, as REST (context.py).
- WebSocket: ``connection_init``'s payload carries the token, as ``{"token": "..."}`` or
  as a header-like ``{"Authorization": "Bearer ..."}`` (what GraphiQL and most clients
  send). A bad or revoked token closes the socket with 4403, Strawberry's code for a
  rejected ``connection_init``; no ``connection_init`` within 10 s closes it with 4408.
- ``GET /graphql`` from a browser: GraphiQL, from files shipped in the package (no CDN).
- Request errors Strawberry answers itself (a body that is not JSON, no query, a mutation
  over GET) keep their status, with a GraphQL-shaped body and a code.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, ClassVar

import msgspec
import structlog
from cross_web import HTTPException
from litestar import MediaType, Request, Response, WebSocket, get, post, websocket
from litestar.background_tasks import BackgroundTasks
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException, ValidationException
from litestar.status_codes import HTTP_200_OK
from litestar.types import Dependencies
from strawberry.exceptions import ConnectionRejectionError
from strawberry.litestar.controller import GraphQLController, GraphQLResource
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from socius.api import web
from socius.api.dependencies import container_of
from socius.api.graphql.context import GraphContext
from socius.api.graphql.schema import build_schema
from socius.domain.errors import BusUnavailable, CacheUnavailable, Unauthenticated, Unavailable

__all__ = ["PATH", "graphql_controller", "token_of"]

log = structlog.get_logger("socius.api")

PATH = "/graphql"
MAX_SUBSCRIPTIONS = 20  # operations at once on one socket (each subscription is a stream)
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_SUB_RESPONSE = "socius.graphql.response"
_STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


def token_of(payload: dict[str, Any] | None) -> str | None:
    """The access token a ``connection_init`` payload carries, if any."""
    if not payload:
        return None
    token = payload.get("token")
    if isinstance(token, str) and token:
        return token
    for key, value in payload.items():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, rest = value.partition(" ")
            if scheme.lower() == "bearer" and rest.strip():
                return rest.strip()
    return None


async def _http_context(
    state: State, request: Request[Any, Any, Any], response: NamedDependency[Response[Any]]
) -> GraphContext:
    return GraphContext(container=container_of(state), request=request, response=response)


async def _ws_context(state: State, socket: WebSocket[Any, Any, Any]) -> GraphContext:
    return GraphContext(container=container_of(state), websocket=socket)


async def _no_root_value() -> None:
    return None


def _sub_response() -> Response[Any]:
    """Where a resolver or extension sets the answer's status and headers."""
    return Response({}, background=BackgroundTasks([]))


def graphql_controller() -> type[GraphQLController]:
    """The controller to register on the app: one schema, built here."""

    class SociusGraphQL(GraphQLController):
        path = PATH
        include_in_schema = False  # GraphQL describes itself (introspection, GraphiQL)
        dependencies: ClassVar[Dependencies] = {  # type: ignore[misc]
            "context": Provide(_http_context),
            "context_ws": Provide(_ws_context),
            "root_value": Provide(_no_root_value),
            "response": Provide(_sub_response, sync_to_thread=False),
        }
        schema = build_schema()
        graphql_ide = "graphiql"
        allow_queries_via_get = True
        protocols = (GRAPHQL_TRANSPORT_WS_PROTOCOL,)
        connection_init_wait_timeout = timedelta(seconds=10)
        max_subscriptions_per_connection = MAX_SUBSCRIPTIONS

        def encode_json(self, data: object) -> bytes:
            return _encode(data)

        def decode_json(self, data: str | bytes) -> object:
            try:
                return _decode(data)
            except (msgspec.DecodeError, RecursionError) as exc:
                # What Strawberry expects for a body or a frame that is not JSON.
                raise json.JSONDecodeError(str(exc), "", 0) from exc

        async def render_graphql_ide(  # type: ignore[override]
            self, request: Request[Any, Any, Any]
        ) -> Response[bytes]:
            return web.graphiql_page(request)

        async def execute_request(
            self, request: Request[Any, Any, Any], context: Any, root_value: Any
        ) -> Response[GraphQLResource | str]:
            try:
                return await self.run(request, context=context, root_value=root_value)
            except HTTPException as exc:
                code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
                body = {
                    "data": None,
                    "errors": [{"message": exc.reason, "extensions": {"code": code}}],
                }
                return Response(
                    _encode(body),  # type: ignore[arg-type]
                    status_code=exc.status_code,
                    media_type=MediaType.JSON,
                )

        # Strawberry's own handlers, with their dependencies declared (Litestar deprecates
        # inferring them), and the sub-response kept in the request, not on the shared
        # controller.
        @get(raises=[ValidationException, NotFoundException])
        async def handle_http_get(
            self,
            request: Request[Any, Any, Any],
            context: NamedDependency[Any],
            root_value: NamedDependency[Any],
            response: NamedDependency[Response[Any]],
        ) -> Response[GraphQLResource | str]:
            request.state[_SUB_RESPONSE] = response
            return await self.execute_request(request, context, root_value)

        @post(status_code=HTTP_200_OK)
        async def handle_http_post(
            self,
            request: Request[Any, Any, Any],
            context: NamedDependency[Any],
            root_value: NamedDependency[Any],
            response: NamedDependency[Response[Any]],
        ) -> Response[GraphQLResource | str]:
            request.state[_SUB_RESPONSE] = response
            return await self.execute_request(request, context, root_value)

        @websocket()
        async def websocket_endpoint(
            self,
            socket: WebSocket[Any, Any, Any],
            context_ws: NamedDependency[Any],
            root_value: NamedDependency[Any],
        ) -> None:
            await self.run(request=socket, context=context_ws, root_value=root_value)

        async def get_sub_response(self, request: Request[Any, Any, Any]) -> Response[Any]:
            sub: Response[Any] = request.state[_SUB_RESPONSE]
            return sub

        async def on_ws_connect(self, context: Any) -> UnsetType | dict[str, object] | None:
            assert isinstance(context, GraphContext)
            token = token_of(context.connection_params)
            if token is None:
                raise ConnectionRejectionError({"code": "missing_token"})
            try:
                context.principal = await context.container.auth.authenticate(token)
            except Unauthenticated as exc:
                raise ConnectionRejectionError({"code": exc.code}) from exc
            except (Unavailable, CacheUnavailable, BusUnavailable, OSError) as exc:
                log.warning("dependency unavailable", path=PATH, error=repr(exc)[:300])
                raise ConnectionRejectionError({"code": "unavailable"}) from exc
            unset: UnsetType = UNSET
            return unset

    return SociusGraphQL
