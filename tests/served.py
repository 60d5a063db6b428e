"""Serve an app in the test's own event loop, so that gathered requests really interleave.

Litestar's AsyncTestClient hands each request to a portal thread and waits for it, which
runs concurrent requests one after another; the concurrency tests need them to overlap.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from socius.client import AsyncClient

__all__ = ["InFlight", "lifespan", "serving"]


class InFlight:
    """ASGI middleware that records how many HTTP requests were in the app at once.

    ``serial``: the app cannot interleave requests. Embedded SQLite runs on the event
    loop's thread (decision 0007), so a request that waits for nothing but the database
    runs to its end before the next one starts: there is nothing to race with, and the
    concurrency tests check only the outcome there.
    """

    def __init__(self, app: Any, *, serial: bool = False) -> None:
        self.app = app
        self.serial = serial
        self.now = 0
        self.most = 0

    def assert_overlapped(self) -> None:
        assert self.serial or self.most > 1, "the requests did not overlap"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


@asynccontextmanager
async def lifespan(asgi: Any) -> AsyncIterator[None]:
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(asgi(scope, to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    assert (await from_app.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        assert (await from_app.get())["type"] == "lifespan.shutdown.complete"
        await task


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[tuple[Callable[[], AsyncClient], InFlight]]:
    """``app`` (conftest's ``App``) started and served in this loop: a maker of SDK
    clients on it, and the counter of requests in flight (serial on SQLite)."""
    counter = InFlight(app.asgi, serial=app.wiring.database.primary.dialect.name == "sqlite")
    async with lifespan(app.asgi):
        transport = httpx.ASGITransport(app=counter)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield (lambda: AsyncClient(http=http)), counter
