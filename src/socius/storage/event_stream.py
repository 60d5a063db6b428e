"""The event stream kept in the database (embedded mode, or clustered without JetStream):
the ``event_stream`` table, numbered in the order the relay published."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from socius.domain.stream import DomainEvent, StreamedEvent
from socius.storage.unit_of_work import Database

__all__ = ["SqlEventStream"]


class SqlEventStream:
    """Implements the stream port (services/ports.py ``EventStream``)."""

    name = "database"

    def __init__(self, database: Database, *, max_age_seconds: int = 0) -> None:
        self._database = database
        self._max_age = timedelta(seconds=max_age_seconds)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        if not events:
            return
        async with self._database(driver=True) as uow:  # its statements on the driver
            await uow.stream.append(events)
            if self._max_age:  # retention, a little with each batch (as JetStream's max_age)
                before = max(e.occurred_at for e in events) - self._max_age
                await uow.stream.prune(before, limit=2 * len(events))
            await uow.commit()

    async def move_outbox(self, limit: int) -> int:
        """The relay's round on this stream (decision 0045): up to ``limit`` of the
        outbox's oldest events moved here, in order, and no longer in the outbox; how
        many. Not through Python: no event is read, decoded or encoded on the way."""
        async with self._database(driver=True) as uow:
            moved, newest = await uow.stream.move_from_outbox(limit)
            if moved and newest is not None and self._max_age:
                await uow.stream.prune(newest - self._max_age, limit=2 * moved)
            await uow.commit()
        return moved

    async def read(
        self, *, after: int, types: Sequence[str] = (), limit: int
    ) -> list[StreamedEvent]:
        async with self._database(write=False, driver=True) as uow:  # one statement
            return await uow.stream.read(after=after, types=types, limit=limit)

    async def head(self) -> int:
        async with self._database(write=False) as uow:
            return await uow.stream.head()

    async def position_at(self, when: datetime) -> int:
        async with self._database(write=False) as uow:
            return await uow.stream.position_at(when)
