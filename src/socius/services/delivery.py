"""Delivery: events go into the recipients' logs in the writer's transaction, and onto the
bus after commit, so nothing is pushed before it is durable.

The bus is best effort. A connection that sees a gap in its user's numbers fills it from
the log, and one that sees a number twice drops it: delivery is at least once on the bus
and exactly once, in order, on the socket.

On the bus, events go by shard of their recipients (decision 0050): a user's events go on
``deliver.<shard_of(user_id)>``, and each publish sends one bus message per shard that
holds recipients (a ``Fanout``): each distinct event once, with the users (and their log
positions) it goes to. A node subscribes the shards of the users connected to it and
hands each event to those of its recipients it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from socius.domain.errors import BusUnavailable
from socius.domain.events import Event, JsonPayload, json_payload
from socius.domain.ids import IdGenerator
from socius.domain.notifications import Notification
from socius.domain.stream import DomainEvent
from socius.services.events import DomainEvents
from socius.services.ports import Bus, Clock, UnitOfWork

__all__ = [
    "MAX_FANOUT_BYTES",
    "SHARDS",
    "Delivery",
    "EncodedBusEvent",
    "Fanned",
    "shard_of",
    "shard_subject",
]


class EncodedBusEvent(msgspec.Struct, frozen=True):
    """One event for one recipient, as a node hands it to a connection: a logged event
    (``seq`` set) or an ephemeral one, its payload JSON already (``msgspec.Raw``, as it
    came in the shard's bus message: a receiver that only forwards it keeps it)."""

    type: str
    payload: msgspec.Raw
    seq: int | None = None
    created_at: datetime | None = None


class Fanned(msgspec.Struct, frozen=True, array_like=True):
    """One event as a shard's bus message carries it: its type, payload (JSON, as in
    ``EncodedBusEvent``) and time, once, for every recipient of ``users`` in that shard;
    ``seqs`` their log positions, in the same order (None: an ephemeral event). A bus
    message is a JSON array of them, in the order each recipient must see them."""

    type: str
    payload: msgspec.Raw
    created_at: datetime | None
    users: list[int]
    seqs: list[int] | None = None


_encode = msgspec.json.Encoder().encode

#: The delivery subjects. Every node must agree on it: changing it is a cluster restart.
SHARDS = 16
#: About the most one shard's bus message carries (an event alone may be larger): far
#: below NATS's usual 1 MiB limit on a payload, which fails a whole publish.
MAX_FANOUT_BYTES = 128 * 1024
_SUBJECTS = [f"deliver.{k}" for k in range(SHARDS)]


def shard_of(user_id: int) -> int:
    """The shard of ``user_id``'s events. An id is milliseconds | node | sequence
    (domain/ids.py) and the sequence is 0 for nearly every id made alone in its
    millisecond, so the id alone would put almost everyone in shard 0: the millisecond's
    low bits are mixed in."""
    return ((user_id >> 22) ^ user_id) % SHARDS


def shard_subject(user_id: int) -> str:
    """The bus subject of ``user_id``'s events (shared with the other users of its shard)."""
    return _SUBJECTS[shard_of(user_id)]


class Delivery:
    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        ids: IdGenerator,
        *,
        on_bus_error: Callable[[str], None] = lambda _op: None,
        events: DomainEvents | None = None,
    ) -> None:
        self._events = events
        self._bus = bus
        self._clock = clock
        self._ids = ids
        self._on_bus_error = on_bus_error

    async def record(
        self, uow: UnitOfWork, events: Sequence[Event], *, notify: Sequence[Event] = ()
    ) -> list[Event]:
        """Log ``events`` in ``uow`` and publish them after commit. Those also in ``notify``
        land in their recipient's notification inbox too."""
        if not events:
            return []
        now = self._clock()
        stored = await uow.outbox.add(events, now)
        stored += await self._notes(
            uow, [(e.user_id, e.type, e.payload, e.message_id) for e in notify], now
        )

        async def publish() -> None:
            await self.publish(stored)

        uow.after_commit(publish)
        return stored

    def prepare(
        self, events: Sequence[Event], notify: Sequence[Event], now: datetime
    ) -> tuple[list[Event], list[Notification]]:
        """What ``record`` writes, for a caller that stores it with its other writes
        (decision 0027): the events to log (``events``, then a ``notification`` event per
        inbox row) and the inbox rows. Publish the stored events after commit (``messages``
        with the caller's invalidation, decision 0040)."""
        notes, logged = self._made(
            [(e.user_id, e.type, e.payload, e.message_id) for e in notify], now
        )
        return list(events) + logged, notes

    def prepare_domain(
        self, uow: UnitOfWork, type_: str, data: dict[str, Any]
    ) -> list[DomainEvent]:
        """The domain event ``domain`` would append, for the caller to store (none when
        the stream is not wired)."""
        if self._events is None:
            return []
        return self._events.prepare(uow, [(type_, data, None)])

    def prepare_domain_many(
        self, uow: UnitOfWork, items: Sequence[tuple[str, dict[str, Any], int | None]]
    ) -> list[DomainEvent]:
        """The domain events ``domain_many`` would append (``(type, data, message_id)``),
        for the caller to store (none when the stream is not wired)."""
        if self._events is None:
            return []
        return self._events.prepare(uow, items)

    def publish_after_commit(self, uow: UnitOfWork, stored: Sequence[Event]) -> None:
        """Publish ``stored`` (events the caller logged, with their numbers) once ``uow``
        has committed, as ``record`` does with what it logs."""
        if stored:

            async def publish() -> None:
                await self.publish(stored)

            uow.after_commit(publish)

    async def notify(
        self, uow: UnitOfWork, items: Sequence[tuple[int, str, dict[str, Any], int | None]]
    ) -> list[Event]:
        """Notifications alone (``(user_id, type, payload, message_id)``): each in its
        user's inbox and, as a ``notification`` event, in their log; published after
        commit. The logged events (their ``notification`` payloads hold the ids)."""
        stored = await self._notes(uow, items, self._clock())
        if stored:

            async def publish() -> None:
                await self.publish(stored)

            uow.after_commit(publish)
        return stored

    async def _notes(
        self,
        uow: UnitOfWork,
        items: Sequence[tuple[int, str, dict[str, Any], int | None]],
        now: datetime,
    ) -> list[Event]:
        if not items:
            return []
        notes, logged = self._made(items, now)
        await uow.notifications.add(notes)
        return await uow.outbox.add(logged, now)

    def _made(
        self, items: Sequence[tuple[int, str, dict[str, Any], int | None]], now: datetime
    ) -> tuple[list[Notification], list[Event]]:
        """The inbox rows and their ``notification`` events. Each notification is
        encoded once (decision 0038): its payload's JSON is spliced into its event's,
        and the inbox row, the log row and the bus frame reuse those bytes."""
        created = _timestamp(now)
        stamp = b',"created_at":"' + created.encode() + b'","read":false}}'
        notes: list[Notification] = []
        logged: list[Event] = []
        next_id = self._ids.next_id
        for user_id, type_, payload, about in items:
            nid = next_id()
            inner = (
                payload if type(payload) is JsonPayload else json_payload(payload, _encode(payload))
            )
            outer = json_payload(
                {
                    "notification": {
                        "id": str(nid),
                        "type": type_,
                        "payload": inner,
                        "created_at": created,
                        "read": False,
                    }
                },
                b'{"notification":{"id":"%d","type":%b,"payload":%b%b'
                % (nid, _type_json(type_), inner.json, stamp),
            )
            notes.append(Notification(nid, user_id, type_, inner, now, message_id=about))
            logged.append(Event(user_id, "notification", outer, message_id=about))
        return notes, logged

    async def domain(
        self,
        uow: UnitOfWork,
        type_: str,
        data: dict[str, Any],
        *,
        message_id: int | None = None,
    ) -> None:
        """The domain write's one event in the durable stream (services/events.py), in
        the same unit of work (nothing when the stream is not wired: unit tests)."""
        if self._events is not None:
            await self._events.append(uow, type_, data, message_id=message_id)

    async def domain_many(
        self, uow: UnitOfWork, items: Sequence[tuple[str, dict[str, Any], int | None]]
    ) -> None:
        """Several domain events (``(type, data, message_id)``) in one append."""
        if self._events is not None:
            await self._events.append_many(uow, items)

    async def publish(self, events: Sequence[Event]) -> None:
        """Every event onto its recipient's subject, in one bus call. Events that share a
        payload (a message's, for each member) share its encoding."""
        try:
            await self._bus.publish_many(self.messages(events))
        except BusUnavailable:
            # Durable in the log: clients get it on their next gap check or reconnect.
            self._on_bus_error("publish")

    def unpublished(self) -> None:
        """Messages of ``messages`` could not be published by the caller that took them."""
        self._on_bus_error("publish")

    def messages(self, events: Sequence[Event]) -> list[tuple[str, bytes]]:
        """What ``publish`` sends for ``events``: ``(subject, payload)``, one per shard of
        their recipients (decision 0050), for a caller that publishes them with other
        messages (decision 0040; then ``unpublished`` if that fails). Events that share a
        payload (a message's, for each member) go once per shard, with their users. A
        shard's message past ``MAX_FANOUT_BYTES`` goes out as it is and the shard's next
        events start another one (after it: the same subject keeps their order)."""
        out: list[tuple[str, bytes]] = []
        shards: dict[int, _Shard] = {}
        encoded: dict[int, msgspec.Raw] = {}
        for e in events:
            shard = shards.get(k := shard_of(e.user_id))
            if shard is None:
                shard = shards[k] = _Shard()
            key = (id(e.payload), e.type, e.created_at)
            item = shard.open.get(key)
            if item is None or shard.last.get(e.user_id, -1) > item[0]:
                raw = encoded.get(id(e.payload))
                if raw is None:
                    payload = e.payload
                    json = payload.json if type(payload) is JsonPayload else _encode(payload)
                    raw = encoded[id(payload)] = msgspec.Raw(json)
                if shard.items and shard.size + len(raw) > MAX_FANOUT_BYTES:
                    out.append((_SUBJECTS[k], _fanout(shard.items)))
                    shard = shards[k] = _Shard()
                item = shard.open[key] = (len(shard.items), [], [])
                shard.items.append((e.type, raw, e.created_at, item[1], item[2]))
                shard.size += len(raw) + 64
            shard.last[e.user_id] = item[0]
            shard.size += 32  # a recipient and its position
            item[1].append(e.user_id)
            item[2].append(e.seq)
        out += [(_SUBJECTS[k], _fanout(shard.items)) for k, shard in shards.items()]
        return out

    async def ephemeral(self, user_ids: Sequence[int], type_: str, payload: dict[str, Any]) -> None:
        """Typing and presence: not logged, not replayed, carry no cursor."""
        raw = msgspec.Raw(_encode(payload))
        by_shard: dict[int, list[int]] = {}
        for u in user_ids:
            by_shard.setdefault(shard_of(u), []).append(u)
        items = [
            (_SUBJECTS[k], _encode([Fanned(type_, raw, None, users)]))
            for k, users in by_shard.items()
        ]
        try:
            await self._bus.publish_many(items)
        except BusUnavailable:
            self._on_bus_error("ephemeral")


# An event of a shard's message being built: type, payload, time, users, their seqs.
_Item = tuple[str, msgspec.Raw, "datetime | None", list[int], list["int | None"]]


class _Shard:
    """``Delivery.messages``'s work for one shard: its events so far, each open to more
    recipients (same payload, type and time) unless one of them already has a later one
    in this shard's message (each user's events stay in their order)."""

    __slots__ = ("items", "last", "open", "size")

    def __init__(self) -> None:
        self.size = 0  # about the bytes of its message so far
        self.items: list[_Item] = []
        self.open: dict[tuple[int, str, datetime | None], tuple[int, list[int], list[int | None]]]
        self.open = {}
        self.last: dict[int, int] = {}  # user -> index of the item of their latest event


def _fanout(items: list[_Item]) -> bytes:
    return _encode(
        [
            Fanned(t, raw, at, users, None if seqs[0] is None else seqs)  # type: ignore[arg-type]
            for t, raw, at, users, seqs in items
        ]
    )


def _timestamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


_TYPES: dict[str, bytes] = {}


def _type_json(type_: str) -> bytes:
    """A notification type as JSON (a handful of them: each encoded once)."""
    found = _TYPES.get(type_)
    if found is None:
        found = _TYPES[type_] = _encode(type_)
    return found
