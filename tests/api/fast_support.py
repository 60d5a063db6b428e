"""The served app (the front's fast lane on) and the same Litestar app behind a front
without it, in one event loop (the test client's, so both may write to the same
database): a request with the ``x-test-lane: litestar`` header goes to the second."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from socius.api.app import build_litestar
from socius.api.front import Front, auth_table
from socius.bootstrap import Wiring, build, wrap
from socius.observability.access_log import AccessLog
from socius.settings import Settings

SLOW = {"x-test-lane": "litestar"}
_SLOW = (b"x-test-lane", b"litestar")


@asynccontextmanager
async def both_lanes(
    settings: Settings,
) -> AsyncIterator[tuple[AsyncTestClient[Any], Litestar, Wiring]]:
    wiring = build(settings)
    litestar = build_litestar(wiring.container, wiring.metrics)
    served = wrap(litestar, wiring, settings)
    plain = Front(
        litestar,
        table=auth_table(litestar, fast_reads=False),
        authenticate=wiring.container.auth.authenticate,
        stats=wiring.metrics.http,
        access_log=AccessLog(sample_rate=0.0),
    )

    async def both(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and _SLOW in scope["headers"]:
            await plain(scope, receive, send)
        else:
            await served(scope, receive, send)

    async with AsyncTestClient(both) as client:  # type: ignore[arg-type]  # runs the lifespan
        yield client, litestar, wiring


PASSWORD = "correct horse battery staple"


async def register(client: Any, name: str) -> tuple[str, str]:
    """A new account's id and access token."""
    r = await client.post("/v1/auth/register", json={"username": name, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return r.json()["user"]["id"], r.json()["access_token"]
