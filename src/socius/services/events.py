"""The durable event stream, from the services' side: appending a domain event in the
writing transaction, and reading the stream (admin API, command line, webhooks, export).

Every domain write calls ``DomainEvents.append`` once, with the unit of work it writes
in: the event commits with the change or not at all. The relay (services/relay.py)
publishes it to the stream afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from socius.domain.errors import InvalidInput
from socius.domain.ids import IdGenerator
from socius.domain.pagination import check_limit
from socius.domain.stream import DomainEvent, StreamedEvent, check_types
from socius.services.ports import Clock, EventStream, UnitOfWork, UnitOfWorkFactory

__all__ = ["DomainEvents", "EventPage", "attach_bodies", "parse_start"]


@dataclass(frozen=True, slots=True)
class EventPage:
    items: list[StreamedEvent]
    next_after: int  # pass as ``after`` for the next page
    head: int  # the stream's last position when read


def _text(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, list | tuple):
            return [_text(v) for v in value]
        return value
    return str(value)  # ids as strings: JavaScript loses precision past 2^53


def parse_start(value: str) -> int | datetime:
    """A place to start reading: a position (digits) or an ISO 8601 time."""
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            "from must be a stream position or an ISO 8601 time",
            code="invalid_position",
            details={"field": "from"},
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class DomainEvents:
    def __init__(
        self, uow: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, stream: EventStream
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._stream = stream
        self.on_commit: Callable[[], None] | None = None  # wakes the relay (bootstrap)

    @property
    def stream(self) -> EventStream:
        return self._stream

    async def append(
        self,
        uow: UnitOfWork,
        type_: str,
        data: Mapping[str, Any],
        *,
        message_id: int | None = None,
    ) -> DomainEvent:
        """Append one domain event to the outbox, in the writing unit of work ``uow``.
        ``data`` holds ids and metadata, never content."""
        [event] = await self.append_many(uow, [(type_, data, message_id)])
        return event

    async def append_many(
        self, uow: UnitOfWork, items: Sequence[tuple[str, Mapping[str, Any], int | None]]
    ) -> list[DomainEvent]:
        """Append several domain events (``(type, data, message_id)``) in one statement,
        in the writing unit of work ``uow`` (a group of sends commits together)."""
        events = self.prepare(uow, items)
        if events:
            await uow.domain_events.add(events)
        return events

    def prepare(
        self, uow: UnitOfWork, items: Sequence[tuple[str, Mapping[str, Any], int | None]]
    ) -> list[DomainEvent]:
        """The events ``append_many`` would append, for the caller to store in ``uow``
        with its other writes (one statement: decision 0027); the relay is woken after
        commit as by ``append_many``."""
        now = self._clock()
        events = [
            DomainEvent(
                id=self._ids.next_id(),
                type=type_,
                occurred_at=now,
                data={k: _text(v) for k, v in data.items() if v is not None},
                message_id=message_id,
            )
            for type_, data, message_id in items
        ]
        if events and self.on_commit is not None:
            uow.after_commit(self._committed)
        return events

    async def _committed(self) -> None:
        if self.on_commit is not None:
            self.on_commit()

    async def read(
        self,
        *,
        after: int = 0,
        types: Sequence[str] = (),
        limit: int | None = None,
        bodies: bool = False,
    ) -> EventPage:
        """A page of the stream after position ``after``. ``bodies``: attach the body of
        each message event whose message still has content."""
        size = check_limit(limit)
        if after < 0:
            raise InvalidInput(
                "after must be >= 0", code="invalid_position", details={"field": "after"}
            )
        filters = check_types(types)
        head = await self._stream.head()
        items = await self._stream.read(after=after, types=filters, limit=size)
        if bodies:
            items = await self.with_bodies(items)
        return EventPage(items, items[-1].position if items else after, head)

    async def with_bodies(self, items: Sequence[StreamedEvent]) -> list[StreamedEvent]:
        return await attach_bodies(self._uow, items)

    async def start_after(self, start: int | datetime) -> int:
        """The position to read after, for ``--from`` (a position or a time)."""
        if isinstance(start, int):
            return max(0, start - 1)
        return await self._stream.position_at(start)

    async def pending(self) -> int:
        """Events committed but not yet in the stream."""
        async with self._uow(write=False) as uow:
            return await uow.domain_events.pending()


async def attach_bodies(
    uow_factory: UnitOfWorkFactory, items: Sequence[StreamedEvent]
) -> list[StreamedEvent]:
    """The items, each message event with the body its message has now (none once the
    message was deleted, expired or erased)."""
    wanted = [i.event.message_id for i in items if i.event.message_id is not None]
    if not wanted:
        return list(items)
    async with uow_factory(write=False) as uow:
        found = await uow.domain_events.bodies(wanted)
    return [
        replace(i, body=found.get(i.event.message_id)) if i.event.message_id else i for i in items
    ]
