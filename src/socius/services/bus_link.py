"""Whether this node hears the bus, and catching up when it hears it again.

What each node keeps in memory because the bus tells it of changes (the revocation list,
the L1 cache) is only as good as the node's link to the bus: a message published while the
link was down never arrives. So every such part is a ``Follower``: while the link is
*current* it trusts its memory; when the link is lost it is told at once (``lost``) and
answers from the shared stores (Redis, the database) per request; once the link is back
each follower ``catch_up``s from the database and only then is the link current again.

The link is lost when the bus reports its connection gone (``Bus.watch``), when a publish
fails, or when this node's own heartbeat, published every ``heartbeat`` seconds on a
subject only it listens to, has not come back for ``3 * heartbeat`` (a silently stalled
connection). See docs/decisions/0016-coherent-node-cache-and-revocations.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from socius.domain.errors import BusUnavailable, CacheUnavailable, Unavailable
from socius.services.ports import Bus, Subscription

__all__ = ["BusLink", "Follower"]

log = structlog.get_logger("socius.bus_link")

_RETRY_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0)


class Follower(Protocol):
    """A part of the node fed by the bus."""

    subject: str

    async def on_message(self, payload: bytes) -> None: ...

    def lost(self) -> None:
        """The link is lost: stop trusting memory (called synchronously, at once)."""

    async def catch_up(self) -> None:
        """The link is back: reload from the database what may have been missed. Raises
        when it cannot (the link stays not current and it is tried again)."""


class BusLink:
    def __init__(
        self,
        bus: Bus,
        *,
        heartbeat: float = 1.0,
        on_change: Callable[[bool], None] = lambda _current: None,
    ) -> None:
        self._bus = bus
        self._heartbeat = heartbeat
        self._on_change = on_change
        self._followers: list[Follower] = []
        self._subscriptions: list[Subscription] = []
        self._subject = f"link.{secrets.token_hex(8)}"
        self._current = False
        self._epoch = 0  # moves on at each loss: a catch-up that saw one starts over
        self._last_beat = 0.0
        self._recovery: asyncio.Task[None] | None = None
        self._beats: asyncio.Task[None] | None = None
        self._started = False

    @property
    def current(self) -> bool:
        """True while the bus is connected and every follower has caught up."""
        return self._current

    def follow(self, follower: Follower) -> None:
        self._followers.append(follower)

    async def start(self) -> None:
        """Subscribe and catch up (in the background if the bus is down)."""
        self._started = True
        self._bus.watch(self._watched)
        self._beats = asyncio.create_task(self._beat(), name="socius-bus-link")
        await self._recover()
        if not self._current:
            self._schedule()

    async def stop(self) -> None:
        self._started = False
        self._set(False)
        tasks = [t for t in (self._recovery, self._beats) if t is not None]
        self._recovery = self._beats = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def lose(self, why: str) -> None:
        """The link is lost (a failed publish, a silent connection, the bus said so)."""
        self._epoch += 1
        was = self._current
        self._set(False)
        for follower in self._followers:
            follower.lost()
        if was:
            log.warning("bus_link_lost", why=why)
        self._schedule()

    async def publish(self, subject: str, payload: bytes) -> bool:
        """Publish for the followers of other nodes; False (and the link lost) on failure."""
        try:
            await self._bus.publish(subject, payload)
        except BusUnavailable:
            self.lose("publish")
            return False
        return True

    # ------------------------------------------------------------------ internals

    def _set(self, current: bool) -> None:
        if current != self._current:
            self._current = current
            self._on_change(current)

    def _watched(self, up: bool) -> None:
        if up:
            self._schedule()
        else:
            self.lose("disconnected")

    def _schedule(self) -> None:
        if not self._started or (self._recovery is not None and not self._recovery.done()):
            return
        self._recovery = asyncio.create_task(self._retry(), name="socius-bus-link-recover")

    async def _retry(self) -> None:
        attempt = 0
        while self._started and not self._current:
            await asyncio.sleep(_RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)])
            attempt += 1
            await self._recover()

    async def _recover(self) -> None:
        epoch = self._epoch
        try:
            if not self._subscriptions:
                await self._bus.start()
                await self._subscribe()
            # A round trip: the broker has our subscriptions (again) before we read the
            # database, so whatever commits after this read reaches us on the bus.
            await self._bus.ping()
            for follower in self._followers:
                await follower.catch_up()
        except (BusUnavailable, CacheUnavailable, Unavailable, OSError) as exc:
            log.info("bus_link_not_yet", error=repr(exc))
            return
        except Exception:
            log.exception("bus_link_catch_up_failed")
            return
        if epoch == self._epoch:
            self._last_beat = time.monotonic()
            self._set(True)
            log.info("bus_link_current")

    async def _subscribe(self) -> None:
        subscriptions: list[Subscription] = []
        try:
            subscriptions.append(await self._bus.subscribe(self._subject, self._heard))
            for follower in self._followers:
                subscriptions.append(await self._bus.subscribe(follower.subject, _guard(follower)))
        except BaseException:
            for sub in subscriptions:
                with contextlib.suppress(BusUnavailable):
                    await sub.unsubscribe()
            raise
        self._subscriptions = subscriptions

    async def _heard(self, _payload: bytes) -> None:
        self._last_beat = time.monotonic()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            if not self._current:
                continue
            if time.monotonic() - self._last_beat > 3 * self._heartbeat:
                self.lose("silent")
                continue
            await self.publish(self._subject, b"")


def _guard(follower: Follower) -> Callable[[bytes], Awaitable[None]]:
    async def handle(payload: bytes) -> None:
        try:
            await follower.on_message(payload)
        except Exception:
            log.exception("bus_follower_failed", subject=follower.subject)

    return handle
