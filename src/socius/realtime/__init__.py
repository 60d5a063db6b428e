"""Real-time delivery over WebSockets: the hub, the gateway's connections, presence.

Independent of the web framework: ``socius.api.ws`` adapts a Litestar WebSocket to
``gateway.Socket`` and hands it to ``Realtime.gateway``. Bootstrap wires one ``Realtime``
per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable

import structlog

from socius.observability.metrics import Metrics
from socius.realtime.gateway import Gateway, Limits, Render, revocation_notifier
from socius.realtime.hub import Hub
from socius.realtime.presence import Presence
from socius.realtime.socket_cap import SocketCap
from socius.services.delivery import Delivery
from socius.services.graph_cache import GraphCache
from socius.services.inbox import InboxService
from socius.services.messaging import MessagingService
from socius.services.ports import Bus, Cache, Clock
from socius.services.revocation import Revocations
from socius.services.tokens import AccessTokens

__all__ = ["Limits", "Realtime", "revocation_notifier"]

log = structlog.get_logger("socius.realtime")


class Realtime:
    def __init__(
        self,
        *,
        bus: Bus,
        cache: Cache,
        clock: Clock,
        tokens: AccessTokens,
        revocations: Revocations,
        inbox: InboxService,
        messaging: MessagingService,
        delivery: Delivery,
        graph: GraphCache,
        render: Render,
        metrics: Metrics | None = None,
        limits: Limits | None = None,
        sockets_per_user: int = 0,
        on_cache_error: Callable[[str], None] = lambda _op: None,
    ) -> None:
        """``sockets_per_user``: the cap on one user's connections, all nodes (0: none)."""
        self.sockets = SocketCap(
            cache,
            limit=sockets_per_user,
            on_refused=(
                metrics.rate_limited_total.labels(action="sockets").inc if metrics else lambda: None
            ),
            on_cache_error=on_cache_error,
        )
        self.presence = Presence(
            cache,
            delivery,
            graph,
            clock,
            node=secrets.token_hex(6),
            connected=lambda user_id: user_id in self.hub,
        )
        self.hub = Hub(bus, on_change=self.presence.changed)
        self.gateway = Gateway(
            self.hub,
            tokens,
            revocations,
            inbox,
            messaging,
            metrics=metrics,
            render=render,
            limits=limits,
            sockets=self.sockets,
        )
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh(), name="socius-presence")

    async def stop(self) -> None:
        await self.gateway.shutdown()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self.sockets.settle()  # give back the closed sockets' slots
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self.presence.settle()  # the offline transitions of those sockets
        task, self._refresher = self._refresher, None
        if task is not None:
            task.cancel()
            # gather, not suppress(CancelledError): a cancel of this close must go on
            await asyncio.gather(task, return_exceptions=True)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.presence.refresh_interval)
            try:
                await self.presence.refresh(self.hub.users())
            except Exception:  # keep refreshing; the next round tries again
                log.exception("presence_refresh_failed")
