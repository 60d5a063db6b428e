"""A background reader of the event stream that one node at a time may run.

The notifier and the suggestion refresher each read the durable stream from a position
of their own (a row in ``push_positions``, named after the reader) and act on what
they read only while they hold a lease of the same name, taken or renewed once half of
it is gone. This is that shared part; what a round does with the events is theirs.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta

from socius.services.ports import Clock, EventStream, UnitOfWorkFactory

__all__ = ["LeasedReader"]


class LeasedReader:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        stream: EventStream,
        *,
        name: str,
        lease_seconds: float,
    ) -> None:
        """``name``: the reader's stream position and its lease."""
        self._uow = uow
        self._clock = clock
        self._stream = stream
        self._name = name
        self._lease = timedelta(seconds=lease_seconds)
        self.holder = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._held_until: datetime | None = None  # the lease, as this reader took it

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
        async with self._uow(write=False) as uow:
            position = await uow.push.position(self._name)
        if not position:
            await self.begin()
            async with self._uow(write=False) as uow:
                position = await uow.push.position(self._name)
        return position

    async def hold(self) -> bool:
        """True while this reader holds the lease (taken, or renewed once half of it is
        gone); False when another node holds it."""
        now = self._clock()
        if self._held_until is None or now >= self._held_until - self._lease / 2:
            async with self._uow() as uow:
                held = await uow.leases.take(
                    self._name, self.holder, now=now, until=now + self._lease
                )
                await uow.commit()
            if not held:
                self._held_until = None
                return False
            self._held_until = now + self._lease
        return True
