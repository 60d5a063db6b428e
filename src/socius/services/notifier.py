"""The notifier: turns committed messages and reactions into notifications, and pushes
them to the devices of users who have no live socket (decision 0022, docs/push.md).

It is a consumer of the durable event stream (decision 0017), off the send path: a send
writes nothing more than it did. One round: read the stream after the notifier's
position (``message.created``, ``message.reacted``), read what the batch needs (the
messages, their conversations' members and mutes, blocks and mutes between recipients
and senders, usernames for ``@mentions``, each recipient's settings), then in one
transaction move the position (compare-and-set, so two notifiers never both write a
batch) and write the notifications with their ``notification`` events. After that
commit, each recipient without a live socket on any node gets one push per conversation
on each of their devices, retried with back-off; a device the push service calls gone
(404, 410) is removed.

One notifier is active per cluster (a lease); it wakes when this process's relay
publishes, and polls otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog

from socius.domain.errors import Unavailable
from socius.domain.events import Event, JsonPayload, json_payload
from socius.domain.push import (
    Device,
    NotificationKind,
    NotificationSettings,
    mentioned,
    push_backoff,
)
from socius.domain.stream import StreamedEvent
from socius.services.delivery import Delivery
from socius.services.leased_reader import LeasedReader
from socius.services.ports import Clock, EventStream, PushSender, UnitOfWorkFactory, WebhookRefused

__all__ = ["CONSUMER", "LEASE", "Notifier", "PushOptions"]

LEASE = "notifier"  # the lease and the stream position (CONSUMER) share the name
CONSUMER = "notifier"
TYPES = ["message.created", "message.reacted"]
MAX_NOTES = 20_000  # notifications written per round, at most (past one item's own)
log = structlog.get_logger("socius.notifier")
_encode = msgspec.json.Encoder().encode

Online = Callable[[Sequence[int]], Awaitable[set[int]]]


async def _nobody(_users: Sequence[int]) -> set[int]:
    return set()


@dataclass(frozen=True, slots=True)
class PushOptions:
    attempts: int = 5  # tries per push before giving up
    retry_base_seconds: float = 1.0  # then doubling
    ttl_seconds: int = 24 * 3600  # how long a push service keeps an undelivered push
    concurrency: int = 32  # pushes in flight per node


@dataclass(frozen=True, slots=True)
class _Note:
    user_id: int
    kind: NotificationKind
    conversation_id: int
    message_id: int
    actor_id: int

    def payload(self) -> JsonPayload:
        """The inbox payload, with its JSON made here (ids as strings, no escaping)."""
        actor = "user_id" if self.kind is NotificationKind.REACTION else "sender_id"
        c, m, a = self.conversation_id, self.message_id, self.actor_id
        return json_payload(
            {"conversation_id": str(c), "message_id": str(m), actor: str(a)},
            b'{"conversation_id":"%d","message_id":"%d","%b":"%d"}' % (c, m, actor.encode(), a),
        )


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


class Notifier:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        stream: EventStream,
        delivery: Delivery,
        sender: PushSender,
        *,
        options: PushOptions | None = None,
        lease_seconds: float = 15.0,
        batch: int = 200,
        on_push: Callable[[str], None] = lambda _outcome: None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._stream = stream
        self._delivery = delivery
        self._sender = sender
        self._options = options or PushOptions()
        self._reader = LeasedReader(uow, clock, stream, name=CONSUMER, lease_seconds=lease_seconds)
        self._batch = batch
        self._on_push = on_push
        self.online: Online = _nobody  # set by bootstrap: presence on every node
        self.holder = self._reader.holder
        self._work = asyncio.Event()
        self._pushes: set[asyncio.Task[None]] = set()
        self._busy = 0  # rounds in progress
        self._delivered: set[int] = set()  # devices pushed to since the last flush
        self.gather_seconds = 0.05  # after a wake, let more events come into the round
        self._slots = asyncio.Semaphore(self._options.concurrency)

    def wake(self, *_args: object) -> None:
        """Events were published to the stream in this process: run a round now."""
        self._work.set()

    async def begin(self) -> None:
        """On a cluster's first start with a notifier, start reading at the stream's end:
        messages sent before it existed (an upgrade) make no notifications or pushes."""
        await self._reader.begin()

    # one round ------------------------------------------------------------------------

    async def run_once(self) -> int | None:
        """One batch: how many stream events it consumed (None: another notifier holds
        the lease)."""
        self._busy += 1
        try:
            return await self._round()
        finally:
            self._busy -= 1

    async def _round(self) -> int | None:
        position = await self._reader.position()
        items = await self._stream.read(after=position, types=TYPES, limit=self._batch)
        if not items:
            return 0
        if not await self._reader.hold():
            return None
        notes: list[_Note] = []
        upto = position
        for at, made in await self._plan(items):
            if notes and len(notes) + len(made) > MAX_NOTES:
                break  # the rest next round: one transaction stays bounded
            notes += made
            upto = at
        async with self._uow() as uow:
            if not await uow.push.move(CONSUMER, position, upto):
                return 0  # another notifier wrote this batch
            stored = await self._delivery.notify(
                uow, [(n.user_id, n.kind.value, n.payload(), n.message_id) for n in notes]
            )
            await uow.commit()
        if stored:
            await self._push(notes, stored)
        return len(items)

    async def _plan(self, items: Sequence[StreamedEvent]) -> list[tuple[int, list[_Note]]]:
        """Per stream item, in order: its position and the notifications it makes."""
        created: list[dict[str, Any]] = []
        reacted: list[dict[str, Any]] = []
        for item in items:
            data = item.event.data
            if item.event.type == "message.created":
                created.append(data)
            elif data.get("added") is True:
                reacted.append(data)
        wanted = {_int(d.get("message_id")) for d in created + reacted}
        wanted |= {_int(d.get("reply_to")) for d in created}
        async with self._uow(write=False) as uow:
            facts = await uow.push.messages(sorted(m for m in wanted if m is not None))
            conversations = sorted({f[0] for f in facts.values()})
            members = await uow.push.members(conversations)
            names: dict[int, str] = {}
            if any(mentioned(facts[m][2]) for m in facts):
                names = await uow.push.usernames(sorted({u for c in members.values() for u in c}))
            recipients = sorted({u for c in members.values() for u in c})
            actors = sorted(
                {a for d in created for a in [_int(d.get("sender_id"))] if a is not None}
                | {a for d in reacted for a in [_int(d.get("user_id"))] if a is not None}
            )
            quiet = await uow.push.quiet(recipients, actors)
            settings = await uow.push.settings(recipients)

        def keeps(user: int, actor: int, conversation: int) -> bool:
            muted = members.get(conversation, {}).get(user)
            return user != actor and muted is False and (user, actor) not in quiet

        planned: list[tuple[int, list[_Note]]] = []
        for item in items:
            d = item.event.data
            made: list[_Note] = []
            planned.append((item.position, made))
            message_id = _int(d.get("message_id"))
            fact = facts.get(message_id) if message_id is not None else None
            if message_id is None or fact is None or fact[2] is None:
                continue  # gone, or deleted meanwhile
            conversation, author, body = fact
            if item.event.type != "message.created":
                reactor = _int(d.get("user_id"))
                if d.get("added") is not True or reactor is None or author is None:
                    continue
                if (
                    keeps(author, reactor, conversation)
                    and settings.get(author, NotificationSettings()).reaction
                ):
                    made.append(
                        _Note(author, NotificationKind.REACTION, conversation, message_id, reactor)
                    )
                continue
            if author is None:
                continue
            said = mentioned(body)
            reply_to = _int(d.get("reply_to"))
            replied = facts[reply_to][1] if reply_to in facts else None
            for user in members.get(conversation, {}):
                if not keeps(user, author, conversation):
                    continue
                kinds = []
                if said and names.get(user) in said:
                    kinds.append(NotificationKind.MENTION)
                if replied == user:
                    kinds.append(NotificationKind.REPLY)
                kinds.append(NotificationKind.MESSAGE)
                mine = settings.get(user, NotificationSettings())
                kind = next((k for k in kinds if mine.allows(k)), None)
                if kind is not None:
                    made.append(_Note(user, kind, conversation, message_id, author))
        return planned

    # pushes ---------------------------------------------------------------------------

    async def _push(self, notes: Sequence[_Note], stored: Sequence[Event]) -> None:
        """One push per (user, conversation), the newest, to each device of each user
        without a live socket."""
        ids = [e.payload["notification"]["id"] for e in stored if e.type == "notification"]
        latest: dict[tuple[int, int], tuple[_Note, str]] = {}
        for note, nid in zip(notes, ids, strict=True):
            latest[(note.user_id, note.conversation_id)] = (note, nid)
        users = sorted({u for u, _ in latest})
        try:
            online = await self.online(users)
        except Exception:  # presence is best effort: push rather than miss
            log.warning("notifier_presence_failed", exc_info=True)
            online = set()
        offline = [u for u in users if u not in online]
        if not offline:
            return
        async with self._uow(write=False) as uow:
            devices = await uow.push.devices(offline)
        by_user: dict[int, list[Device]] = {}
        for device in devices:
            if self._sender.supports(device.kind.value):
                by_user.setdefault(device.user_id, []).append(device)
        for (user, conversation), (note, nid) in latest.items():
            body = _encode(
                {
                    "type": note.kind.value,
                    "notification_id": nid,
                    "conversation_id": str(conversation),
                    "message_id": str(note.message_id),
                }
            )
            for device in by_user.get(user, []):
                task = asyncio.create_task(self._deliver(device, body, f"c{conversation}"))
                self._pushes.add(task)
                task.add_done_callback(self._pushes.discard)

    async def _deliver(self, device: Device, body: bytes, topic: str) -> None:
        options = self._options
        for attempt in range(1, options.attempts + 1):
            status: int | None = None
            async with self._slots:
                try:
                    status = await self._sender.send(
                        device, body, topic=topic, ttl=options.ttl_seconds
                    )
                except WebhookRefused as refused:
                    log.info("push_refused", device_id=device.id, reason=refused.reason)
                except Exception:
                    log.exception("push_failed", device_id=device.id)
            if status is not None and 200 <= status < 300:
                self._on_push("delivered")
                self._delivered.add(device.id)  # last_pushed_at, at the next flush
                return
            if status in (404, 410):
                self._on_push("gone")
                await self._quietly(lambda uow: uow.push.drop_devices([device.id]))
                return
            if status is not None and 400 <= status < 500 and status != 429:
                self._on_push("rejected")
                log.warning("push_rejected", device_id=device.id, status=status)
                return
            if attempt < options.attempts:
                self._on_push("retried")
                if status is None and attempt == 1:
                    continue  # no answer (often a pooled connection the server closed): now
                await asyncio.sleep(
                    push_backoff(attempt, options.retry_base_seconds).total_seconds()
                )
        self._on_push("failed")

    async def _quietly(self, write: Callable[[Any], Awaitable[None]]) -> None:
        try:
            async with self._uow() as uow:
                await write(uow)
                await uow.commit()
        except Exception:
            log.warning("push_bookkeeping_failed", exc_info=True)

    async def settle(self) -> None:
        """Wait until no round is in progress and no push is in flight (tests)."""
        while self._busy or self._pushes:
            if self._pushes:
                await asyncio.gather(*list(self._pushes), return_exceptions=True)
            else:
                await asyncio.sleep(0.01)
        await self.flush()

    async def flush(self) -> None:
        """Record when the devices pushed to since the last flush were: one statement
        for all of them, not a transaction per push."""
        if self._delivered:
            done, self._delivered = sorted(self._delivered), set()
            await self._quietly(lambda uow: uow.push.pushed(done, self._clock()))

    async def run(self, *, interval: float = 0.5) -> None:
        """Rounds for ever (a background task): at once when woken, else every
        ``interval`` seconds."""
        while True:
            self._work.clear()
            try:
                await self.flush()
                made = await self.run_once()
            except Unavailable as exc:
                log.warning("notifier_unavailable", error=exc.message)
                made = 0
            except Exception:
                log.exception("notifier_failed")
                made = 0
            if not made:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._work.wait()
            if not made or made < self._batch:
                # Woken by one publish, or caught up: others follow closely under load.
                # One round for them all costs fewer statements than a round each (50 ms
                # at most), and one write transaction instead of many, each of which
                # the send groups wait for on the recipients' log counters (decision
                # 0029). A full batch goes on at once (catching up).
                await asyncio.sleep(self.gather_seconds)

    async def close(self) -> None:
        for task in list(self._pushes):
            task.cancel()
        await asyncio.gather(*list(self._pushes), return_exceptions=True)
        await self._sender.close()
