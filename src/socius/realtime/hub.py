"""The hub: this process's live connections by user, and their bus subscriptions.

Events go on the bus by shard of their recipients (``deliver.<shard_of(user_id)>``,
decision 0050). The first connection here of a user of a shard subscribes that shard's
subject; the last one of its users to leave unsubscribes. Each bus message (a JSON array
of ``Fanned`` events, each with its recipients) is decoded once, its events' payloads left
as JSON, and each event handed to every connection here of each of its recipients.
Handing over never waits (a connection queues it), so the bus's dispatcher is never held
up by a slow client. ``on_change(user_id)`` is told, without waiting, when a user's first
connection here arrives or their last one leaves (presence reconciles it in the
background: it is not on the connect path).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec
import structlog

from socius.domain.errors import BusUnavailable
from socius.observability.spans import strip_trace_context
from socius.services.delivery import EncodedBusEvent, Fanned, shard_of, shard_subject
from socius.services.ports import Bus, Subscription

__all__ = ["Hub", "Listener"]

log = structlog.get_logger("socius.realtime")

Change = Callable[[int], None]

# The payloads stay JSON (msgspec.Raw): a connection forwards them, rendered once per
# event for all of them (Gateway.event_json), and never needs them as objects.
_decode = msgspec.json.Decoder(list[Fanned]).decode


def _decode_untraced(payload: bytes) -> list[Fanned] | None:
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


class _ShardHandler:
    """The bus handler of one shard's subject. ``now`` never waits: a bus that can call a
    plain function as it reads (NatsBus) calls it without a task of its own."""

    __slots__ = ("hub",)

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def __call__(self, payload: bytes) -> None:
        self.hub.fan_out(payload)

    def now(self, payload: bytes) -> None:
        self.hub.fan_out(payload)


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
        self._subs: dict[int, Subscription] = {}  # by shard
        self._held: dict[int, int] = {}  # shard -> its users with a connection here
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}  # by shard

    def users(self) -> list[int]:
        """Users with at least one connection here."""
        return list(self._members)

    def listeners(self, user_id: int) -> list[Listener]:
        return list(self._members.get(user_id, ()))

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._members

    def __len__(self) -> int:
        return sum(len(m) for m in self._members.values())

    async def _locked(self, shard: int, action: Callable[[], Awaitable[None]]) -> None:
        lock, users = self._locks.get(shard) or (asyncio.Lock(), 0)
        self._locks[shard] = (lock, users + 1)
        try:
            async with lock:
                await action()
        finally:
            lock, users = self._locks[shard]
            if users <= 1:
                del self._locks[shard]
            else:
                self._locks[shard] = (lock, users - 1)

    async def join(self, user_id: int, listener: Listener) -> None:
        """Register ``listener``; returns once the bus delivers its user's events from
        now on. Raises BusUnavailable when the subscription cannot be made."""
        shard = shard_of(user_id)

        async def action() -> None:
            if shard not in self._subs:
                self._subs[shard] = await self._bus.subscribe(
                    shard_subject(user_id), _ShardHandler(self)
                )
            members = self._members.get(user_id)
            if members is not None:
                members.add(listener)
                return
            self._members[user_id] = {listener}
            self._held[shard] = self._held.get(shard, 0) + 1
            self._changed(user_id)

        await self._locked(shard, action)

    async def leave(self, user_id: int, listener: Listener) -> None:
        shard = shard_of(user_id)

        async def action() -> None:
            members = self._members.get(user_id)
            if members is None or listener not in members:
                return
            members.discard(listener)
            if members:
                return
            del self._members[user_id]
            self._changed(user_id)
            held = self._held[shard] = self._held[shard] - 1
            if held:
                return
            del self._held[shard]
            sub = self._subs.pop(shard, None)
            if sub is not None:
                try:
                    await sub.unsubscribe()
                except BusUnavailable as exc:
                    log.warning("ws_unsubscribe_failed", shard=shard, error=str(exc))

        await self._locked(shard, action)

    def _changed(self, user_id: int) -> None:
        try:
            self._on_change(user_id)
        except Exception:  # presence is best effort: never fail a connection over it
            log.exception("ws_presence_hook_failed", user_id=user_id)

    def fan_out(self, payload: bytes) -> None:
        """Hand the events of one shard's bus message to the connections here of their
        recipients (never suspends)."""
        fanned: list[Fanned] | None
        try:
            fanned = _decode(payload)
        except msgspec.DecodeError:
            # From a node that traces while this one does not: the trace context first.
            fanned = _decode_untraced(payload)
            if fanned is None:
                log.warning("ws_bad_bus_payload", size=len(payload))
                return
        members = self._members
        for f in fanned:
            seqs = f.seqs
            shared: EncodedBusEvent | None = None
            for i, user_id in enumerate(f.users):
                listeners = members.get(user_id)
                if not listeners:
                    continue
                if seqs is not None:
                    event = EncodedBusEvent(f.type, f.payload, seqs[i], f.created_at)
                elif shared is None:
                    event = shared = EncodedBusEvent(f.type, f.payload, None, f.created_at)
                else:
                    event = shared
                for listener in tuple(listeners):
                    listener.deliver(event)
