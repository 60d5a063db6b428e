"""The relay: moves domain events from the outbox to the stream.

One round: take the relay lease (one active relay per cluster), read the oldest unsent
events, publish them to the stream (JetStream with ``Nats-Msg-Id`` = the event id, or the
database's stream table, unique by id), then mark them sent. A relay killed between
publish and mark publishes the same events again on its next round; the stream drops
them as duplicates, so nothing is lost and nothing is there twice.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Callable
from datetime import timedelta

import structlog

from socius.domain.errors import Unavailable
from socius.services.ports import Clock, EventStream, UnitOfWorkFactory

__all__ = ["LEASE", "Relay"]

LEASE = "event_relay"
log = structlog.get_logger("socius.relay")


class Relay:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        stream: EventStream,
        clock: Clock,
        *,
        lease_seconds: float = 15.0,
        batch: int = 500,
        on_published: Callable[[int], None] = lambda _n: None,
    ) -> None:
        self._uow = uow
        self._stream = stream
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)
        self._batch = batch
        self._on_published = on_published
        self.holder = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"

    async def _hold(self) -> bool:
        now = self._clock()
        async with self._uow() as uow:
            held = await uow.leases.take(LEASE, self.holder, now=now, until=now + self._lease)
            await uow.commit()
        return held

    async def run_once(self) -> int | None:
        """One round; how many events it published (None: another relay holds the lease)."""
        if not await self._hold():
            return None
        total = 0
        while True:
            async with self._uow(write=False) as uow:
                batch = await uow.domain_events.unsent(self._batch)
            if not batch:
                return total
            await self._stream.publish(batch)
            async with self._uow() as uow:
                await uow.domain_events.mark_sent([e.id for e in batch])
                await uow.commit()
            total += len(batch)
            self._on_published(len(batch))
            if len(batch) < self._batch or not await self._hold():
                return total

    async def release(self) -> None:
        async with self._uow() as uow:
            await uow.leases.release(LEASE, self.holder, now=self._clock())
            await uow.commit()

    async def run(self, *, interval: float = 0.2) -> None:
        """Rounds for ever (a background task); an outage waits and tries again."""
        while True:
            try:
                published = await self.run_once()
            except Unavailable as exc:
                log.warning("relay_unavailable", error=exc.message)
                published = 0
            except Exception:
                log.exception("relay_failed")
                published = 0
            if not published:
                await asyncio.sleep(interval)
