"""The hub: this process's live connections by user, and their bus subscriptions.

The first connection of a user on this process subscribes the bus subject ``user.<id>``;
the last one to leave unsubscribes. Each payload that arrives is decoded once (its event's
own payload left as JSON) and handed to every connection of that user. Handing over never
waits (a connection queues it), so the bus's dispatcher is never held up by a slow client.
``on_change(user_id)`` is told, without waiting, when a user's first connection here
arrives or their last one leaves (presence reconciles it in the background: it is not on
the connect path).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec
import structlog

from socius.domain.errors import BusUnavailable
from socius.observability.spans import strip_trace_context
from socius.services.delivery import EncodedBusEvent, user_subject
from socius.services.ports import Bus, Subscription

__all__ = ["Hub", "Listener"]

log = structlog.get_logger("socius.realtime")

Change = Callable[[int], None]

# The payload stays JSON (msgspec.Raw): a connection forwards it, rendered once per event
# for all of them (Gateway.event_json), and never needs it as objects.
_decode = msgspec.json.Decoder(EncodedBusEvent).decode


def _decode_untraced(payload: bytes) -> EncodedBusEvent | None:
    inner = strip_trace_context(payload)
    if inner is payload:
        return None
    try:
        return _decode(inner)
    except msgspec.DecodeError:
        return None


class Listener(Protocol):
    def deliver(self, event: EncodedBusEvent) -> None:
        """Take one event of the listener's user; must not block."""


def _nothing(_user_id: int) -> None:
    return None


class _UserHandler:
    """The bus handler of one user's subject. ``now`` never waits: a bus that can call a
    plain function as it reads (NatsBus) calls it without a task of its own."""

    __slots__ = ("hub", "user_id")

    def __init__(self, hub: Hub, user_id: int) -> None:
        self.hub = hub
        self.user_id = user_id

    async def __call__(self, payload: bytes) -> None:
        self.hub.dispatch_now(self.user_id, payload)

    def now(self, payload: bytes) -> None:
        self.hub.dispatch_now(self.user_id, payload)


class Hub:
    def __init__(
        self,
        bus: Bus,
        *,
        on_change: Change = _nothing,
    ) -> None:
        """``on_change(user_id)``: a user's first connection on this process arrived, or
        their last one left (must not block)."""
        self._bus = bus
        self._on_change = on_change
        self._members: dict[int, set[Listener]] = {}
        self._subs: dict[int, Subscription] = {}
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    def users(self) -> list[int]:
        """Users with at least one connection here."""
        return list(self._members)

    def listeners(self, user_id: int) -> list[Listener]:
        return list(self._members.get(user_id, ()))

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._members

    def __len__(self) -> int:
        return sum(len(m) for m in self._members.values())

    async def _locked(self, user_id: int, action: Callable[[], Awaitable[None]]) -> None:
        lock, users = self._locks.get(user_id) or (asyncio.Lock(), 0)
        self._locks[user_id] = (lock, users + 1)
        try:
            async with lock:
                await action()
        finally:
            lock, users = self._locks[user_id]
            if users <= 1:
                del self._locks[user_id]
            else:
                self._locks[user_id] = (lock, users - 1)

    async def join(self, user_id: int, listener: Listener) -> None:
        """Register ``listener``; returns once the bus delivers its user's events from
        now on. Raises BusUnavailable when the subscription cannot be made."""

        async def action() -> None:
            first = user_id not in self._subs
            if first:
                self._subs[user_id] = await self._bus.subscribe(
                    user_subject(user_id), _UserHandler(self, user_id)
                )
            self._members.setdefault(user_id, set()).add(listener)
            if first:
                self._changed(user_id)

        await self._locked(user_id, action)

    async def leave(self, user_id: int, listener: Listener) -> None:
        async def action() -> None:
            members = self._members.get(user_id)
            if members is None or listener not in members:
                return
            members.discard(listener)
            if members:
                return
            del self._members[user_id]
            sub = self._subs.pop(user_id, None)
            if sub is not None:
                try:
                    await sub.unsubscribe()
                except BusUnavailable as exc:
                    log.warning("ws_unsubscribe_failed", user_id=user_id, error=str(exc))
            self._changed(user_id)

        await self._locked(user_id, action)

    def _changed(self, user_id: int) -> None:
        try:
            self._on_change(user_id)
        except Exception:  # presence is best effort: never fail a connection over it
            log.exception("ws_presence_hook_failed", user_id=user_id)

    async def dispatch(self, user_id: int, payload: bytes) -> None:
        """Hand one bus payload to the user's connections here (never suspends)."""
        self.dispatch_now(user_id, payload)

    def dispatch_now(self, user_id: int, payload: bytes) -> None:
        """``dispatch``, as a plain call."""
        members = self._members.get(user_id)
        if not members:
            return
        event: EncodedBusEvent | None
        try:
            event = _decode(payload)
        except msgspec.DecodeError:
            # From a node that traces while this one does not: the trace context first.
            event = _decode_untraced(payload)
            if event is None:
                log.warning("ws_bad_bus_payload", user_id=user_id, size=len(payload))
                return
        for listener in tuple(members):
            listener.deliver(event)
