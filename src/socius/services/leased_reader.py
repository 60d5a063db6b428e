"""Work that one node at a time may run: a named lease, and a reader of the event stream
that acts only while it holds one.

``Lease`` is the lease as its holder sees it: taken, or renewed once half of it is gone
(not at every round: a round under load would otherwise pay a write transaction for it),
and, when another node holds it, left alone for ``refused_wait`` seconds: the node on
standby neither asks again nor reads what it would act on (a write transaction and reads
at every wake, for nothing: decisions 0033 and 0034). A standby takes over once the
holder's lease has expired, at most ``refused_wait`` later than it could have.

The relay holds a ``Lease``. The notifier and the suggestion refresher each read the
durable stream from a position of their own (a row in ``push_positions``, named after the
reader) and act on what they read only while they hold a lease of the same name: that is
``LeasedReader``. What a round does with the events is theirs.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta

from socius.services.ports import Clock, EventStream, UnitOfWorkFactory

__all__ = ["Lease", "LeasedReader"]


class Lease:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        *,
        name: str,
        lease_seconds: float,
        refused_wait: float = 0.0,
    ) -> None:
        """``refused_wait``: seconds a node refused the lease lets pass before it asks
        again (0: at every ``hold``)."""
        self._uow = uow
        self._clock = clock
        self._name = name
        self._lease = timedelta(seconds=lease_seconds)
        self._refused_wait = timedelta(seconds=refused_wait)
        self.holder = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._held_until: datetime | None = None  # the lease, as this node took it
        self._resting_until: datetime | None = None  # refused: no asking before this

    @property
    def resting(self) -> bool:
        """True for ``refused_wait`` seconds after the lease was refused: another node
        holds it and does the work; this one should not even read for it."""
        if self._resting_until is None:
            return False
        left = self._resting_until - self._clock()
        return timedelta(0) < left <= self._refused_wait  # (a clock set back: not resting)

    @property
    def held(self) -> bool:
        """True while this node holds the lease with more than half of it left: ``hold``
        would answer True without a statement."""
        return self._held_until is not None and self._clock() < self._held_until - self._lease / 2

    async def hold(self) -> bool:
        """True while this node holds the lease (taken, or renewed once half of it is
        gone); False when another node holds it (asked at most once per
        ``refused_wait``)."""
        now = self._clock()
        if self._held_until is not None and now < self._held_until - self._lease / 2:
            return True
        if self.resting:
            return False
        async with self._uow() as uow:
            held = await uow.leases.take(self._name, self.holder, now=now, until=now + self._lease)
            await uow.commit()
        if held:
            self._held_until, self._resting_until = now + self._lease, None
            return True
        self._held_until = None
        if self._refused_wait:
            self._resting_until = now + self._refused_wait
        return False

    async def release(self) -> None:
        """Let the lease go at once (a clean shutdown: another node takes over at once)."""
        self._held_until = self._resting_until = None
        async with self._uow() as uow:
            await uow.leases.release(self._name, self.holder, now=self._clock())
            await uow.commit()


class LeasedReader(Lease):
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        stream: EventStream,
        *,
        name: str,
        lease_seconds: float,
        refused_wait: float = 0.0,
    ) -> None:
        """``name``: the reader's stream position and its lease."""
        super().__init__(
            uow, clock, name=name, lease_seconds=lease_seconds, refused_wait=refused_wait
        )
        self._stream = stream

    async def begin(self) -> None:
        """On a cluster's first start with this reader, start reading at the stream's
        end (a no-op once the position exists)."""
        async with self._uow(write=False) as uow:
            if await uow.push.position(self._name):
                return
        head = await self._stream.head()
        async with self._uow() as uow:
            if await uow.push.start_at(self._name, head):
                await uow.commit()

    async def position(self) -> int:
        """Where the next read starts (made at the stream's end the first time)."""
        async with self._uow(write=False, driver=True) as uow:  # one statement
            position = await uow.push.position(self._name)
        if not position:
            await self.begin()
            async with self._uow(write=False) as uow:
                position = await uow.push.position(self._name)
        return position
