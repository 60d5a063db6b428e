"""Two app nodes of one cluster, in this test's event loop.

Clustered: both on the test's PostgreSQL database and Redis prefix (and NATS when the
settings name it). Embedded: both on the test's SQLite file, their in-process buses on one
``MemoryBroker``, as the nodes of a cluster share a broker. Both nodes run in the test's
loop (``AsyncTestClient``), so gathered requests really interleave across them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from litestar.testing import AsyncTestClient
from litestar.types import ASGIApp

from conftest import App, make_app
from socius.bus.memory import MemoryBroker, MemoryBus
from socius.settings import Settings

__all__ = ["Node", "eventually", "metric", "two_nodes"]


@dataclass
class Node:
    http: AsyncTestClient[ASGIApp]
    app: App

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def me_status(self, token: str) -> int:
        return (await self.http.get("/v1/me", headers=self.bearer(token))).status_code

    async def metric(self, name: str, **labels: str) -> float:
        return metric((await self.http.get("/metrics")).text, name, **labels)

    async def link_current(self) -> bool:
        return await self.metric("bus_link_current") == 1.0


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:\{{([^}}]*)\}})? ([0-9.e+-]+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float, what: str) -> float:
    """Poll ``check`` until it is true; the seconds it took. Fails after ``within``."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        elapsed = time.monotonic() - started
        assert elapsed < within, f"{what}: not within {within} s"
        await asyncio.sleep(0.002)  # polling, not an assertion


@contextlib.asynccontextmanager
async def two_nodes(stack: str, settings: Settings) -> AsyncIterator[tuple[Node, Node]]:
    if stack == "sqlite":
        broker = MemoryBroker()
        apps = [make_app(settings, bus=MemoryBus(broker=broker)) for _ in range(2)]
    else:
        apps = [make_app(settings) for _ in range(2)]
    async with (
        AsyncTestClient(apps[0].asgi) as a,  # type: ignore[arg-type]
        AsyncTestClient(apps[1].asgi) as b,  # type: ignore[arg-type]
    ):
        yield Node(a, apps[0]), Node(b, apps[1])
