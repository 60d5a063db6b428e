"""The Litestar application: routes, error mapping, OpenAPI, lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import structlog
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from socius import __version__
from socius.api import web
from socius.api.body import StrictRequest
from socius.api.dependencies import container_of, dependencies
from socius.api.errors import exception_handlers
from socius.api.graphql import graphql_controller
from socius.api.openapi import document
from socius.api.rest import (
    admin,
    admin_events,
    admin_reports,
    admin_webhooks,
    attachments,
    auth,
    conversations,
    email_links,
    friends,
    identities,
    inbox,
    me,
    mfa,
    oidc,
    ops,
    passkeys,
    people,
    presence,
    push,
    relationships,
    reports,
    search,
    threads,
    users,
)
from socius.api.ws import ws_gateway
from socius.observability.metrics import Metrics
from socius.services.container import Container

__all__ = ["build_litestar"]

_DESCRIPTION = """socius: identity, a friend graph, conversations and real-time delivery.

Authenticate with `Authorization: Bearer <access_token>`. Errors are
`{"error": {"code", "message", "details"}}` with a stable `code`. Lists take `limit`
(1-100, default 50) and `cursor`, and answer `{"items": [...], "next_cursor": ...}`.
"""


@get(
    "/metrics",
    summary="Prometheus metrics",
    tags=["operations"],
    include_in_schema=True,
    media_type=MediaType.TEXT,
)
async def metrics_endpoint(state: State) -> Response[bytes]:
    metrics: Metrics = state.metrics
    body, content_type = metrics.render()
    return Response(body, headers={"content-type": content_type})


@get(
    "/openapi.json",
    summary="This API's OpenAPI document",
    tags=["operations"],
    include_in_schema=False,
)
async def openapi_json(request: Request[Any, Any, Any]) -> Response[bytes]:
    schema = request.app.openapi_schema.to_schema()
    return Response(msgspec.json.encode(schema), media_type="application/vnd.oai.openapi+json")


log = structlog.get_logger("socius.api")

#: The longest one step of a shutdown may take. A step that takes longer (a background
#: task that does not end when cancelled, a connection that is never given back) is
#: cancelled and logged, and the shutdown goes on: a stopping server never hangs.
STOP_STEP_SECONDS = 10.0


def build_litestar(container: Container, metrics: Metrics, *, debug: bool = False) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        c = container_of(app.state)
        for start in c.on_start:
            await start()
        try:
            yield
        finally:
            for stop in reversed(c.on_stop):
                try:
                    async with asyncio.timeout(STOP_STEP_SECONDS):
                        await stop()
                except TimeoutError:
                    log.error("stop_step_timed_out", step=getattr(stop, "__qualname__", "?"))

    openapi = OpenAPIConfig(
        title="socius",
        version=__version__,
        description=_DESCRIPTION,
        path="/openapi",
        # The interactive reference is /docs (api/web.py), served without a CDN.
        render_plugins=[JsonRenderPlugin(path="/")],
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="An access token from login or refresh",
                )
            }
        ),
    )
    app = Litestar(
        route_handlers=[
            ops.healthz,
            ops.readyz,
            metrics_endpoint,
            openapi_json,
            auth.router,
            email_links.router,
            me.router,
            mfa.router,
            oidc.router,
            identities.router,
            passkeys.me_router,
            passkeys.auth_router,
            users.router,
            people.router,
            friends.router,
            relationships.router,
            conversations.router,
            threads.router,  # .../messages/{id}/thread (docs/threads.md)
            attachments.router,
            search.router,
            inbox.router,
            presence.router,
            push.me_router,
            push.public_router,
            admin.router,
            admin_events.router,
            admin_webhooks.router,
            admin_reports.router,
            reports.router,
            ws_gateway,
            graphql_controller(),  # /graphql (docs/graphql.md)
            web.router,  # the browser client at / and the API reference at /docs
        ],
        dependencies=dependencies,
        exception_handlers=exception_handlers,
        openapi_config=openapi,
        state=State({"container": container, "metrics": metrics}),
        lifespan=[lifespan],
        request_max_body_size=container.settings.max_body_bytes,
        request_class=StrictRequest,
        debug=debug,
        logging_config=None,
    )
    document(app)
    return app
