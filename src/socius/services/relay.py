"""The relay: moves domain events from the outbox to the stream.

One round: take the relay lease (one active relay per cluster), read the oldest unsent
events, publish them to the stream (JetStream with ``Nats-Msg-Id`` = the event id, or the
database's stream table, unique by id), then mark them sent. A relay killed between
publish and mark publishes the same events again on its next round; the stream drops
them as duplicates, so nothing is lost and nothing is there twice.

When the stream is the database's own table, a round is one statement that moves the
oldest events from the outbox to the stream (``move_outbox``, decision 0045): atomic, so
there is nothing to publish twice, and no event passes through Python.

The lease (``services/leased_reader.Lease``) is renewed once half of it is gone; a relay
refused it waits ``refused_wait`` before it reads the outbox or asks again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from socius.domain.errors import Unavailable
from socius.domain.stream import DomainEvent
from socius.services.leased_reader import Lease
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
        gather: float = 0.02,
        refused_wait: float = 1.0,
    ) -> None:
        """``gather``: seconds a round waits after being woken, so that the writes of
        that moment go out in one round (a round is ~7 statements: decision 0027).
        ``refused_wait``: seconds a relay whose lease another holds lets pass before it
        reads the outbox or asks for the lease again (decision 0033)."""
        self._uow = uow
        self._stream = stream
        self._batch = batch
        self._gather = gather
        self._on_published = on_published
        self._lease = Lease(
            uow, clock, name=LEASE, lease_seconds=lease_seconds, refused_wait=refused_wait
        )
        self.holder = self._lease.holder
        self._work = asyncio.Event()
        # The database's stream moves the outbox to itself in one statement (decision
        # 0045); JetStream is published to, then the batch marked sent.
        self._move: Callable[[int], Awaitable[int]] | None = getattr(stream, "move_outbox", None)

    def wake(self) -> None:
        """Something was committed to the outbox in this process: run a round now."""
        self._work.set()

    async def _unsent(self, limit: int | None = None) -> list[DomainEvent]:
        async with self._uow(write=False, driver=True) as uow:
            return await uow.domain_events.unsent(limit or self._batch)

    async def _moved(self, move: Callable[[int], Awaitable[int]]) -> int | None:
        """A round on the database's stream: one statement a batch while the lease is
        held (an empty outbox too); a read of the outbox first when it must be taken."""
        if not self._lease.held:
            if not await self._unsent(1):
                return 0
            if not await self._lease.hold():
                return None
        total = 0
        while True:
            moved = await move(self._batch)
            total += moved
            if moved:
                self._on_published(moved)
            if moved < self._batch or not await self._lease.hold():
                return total

    async def run_once(self) -> int | None:
        """One round; how many events it published (None: another relay holds the lease).
        An empty outbox costs one read: the lease is taken only when there is work. A
        relay refused the lease lately does nothing until ``refused_wait`` has passed."""
        if self._lease.resting:  # another relay holds it (decision 0033)
            return None
        if self._move is not None:
            return await self._moved(self._move)
        batch = await self._unsent()
        if not batch:
            return 0
        # Renewed once half of it is gone, not every round: a round under load would
        # otherwise pay a write transaction (a synchronous commit) for the lease besides
        # the one that marks its batch sent. Refused: another relay holds it and publishes
        # what is committed here too (on its next round, within its ``interval``); asking
        # again at every wake cost a write transaction per commit of this process, for
        # nothing (decision 0033): it is asked again ``refused_wait`` later.
        if not await self._lease.hold():
            return None
        total = 0
        while True:
            if not batch:
                return total
            await self._stream.publish(batch)
            async with self._uow(driver=True) as uow:  # one statement, on the driver
                await uow.domain_events.mark_sent([e.id for e in batch])
                await uow.commit()
            total += len(batch)
            self._on_published(len(batch))
            if len(batch) < self._batch or not await self._lease.hold():
                return total
            batch = await self._unsent()

    async def release(self) -> None:
        await self._lease.release()

    async def run(self, *, interval: float = 1.0) -> None:
        """Rounds for ever (a background task): ``gather`` seconds after a commit in this
        process (``wake``), else every ``interval`` seconds (events other processes wrote). An
        outage waits and tries again."""
        while True:
            self._work.clear()
            try:
                published = await self.run_once()
            except Unavailable as exc:
                log.warning("relay_unavailable", error=exc.message)
                published = 0
            except Exception:
                log.exception("relay_failed")
                published = 0
            if not published:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._work.wait()
            if self._gather > 0:
                # Under load a commit wakes the relay every few milliseconds: let the
                # commits of the next moment join this round rather than each have its own.
                await asyncio.sleep(self._gather)
