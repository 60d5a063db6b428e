"""The event stream in NATS JetStream: stream ``SOCIUS_EVENTS``, subjects
``socius.events.<type>``.

Each event is published with ``Nats-Msg-Id`` = its id, so JetStream drops a second copy
published within the stream's duplicate window (a relay that died between publishing
and marking sent publishes again). Positions are JetStream's stream sequence numbers.
Reads are direct gets ("the next message on this subject from this sequence"); finding
the position of a time uses a short-lived ephemeral consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
import nats
import structlog
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from socius.domain.errors import Unavailable
from socius.domain.stream import DomainEvent, StreamedEvent, type_matches

__all__ = ["JetStreamEventStream"]

log = structlog.get_logger("socius.stream")

_FAILURES = (NatsError, OSError, TimeoutError)


class _Wire(msgspec.Struct, frozen=True):
    """An event on the wire (the message body)."""

    id: str
    type: str
    occurred_at: datetime
    data: dict[str, Any]
    message_id: str | None = None
    v: int = 1


class _Stored(msgspec.Struct):
    """A stored message in a ``STREAM.MSG.GET`` answer (its data base64, as JSON says it;
    its headers left out: nothing here reads them)."""

    seq: int
    data: bytes | None = None


class _GetError(msgspec.Struct):
    code: int
    description: str = ""


class _Got(msgspec.Struct):
    """JetStream's answer to ``$JS.API.STREAM.MSG.GET.<stream>``."""

    message: _Stored | None = None
    error: _GetError | None = None


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Wire).decode
_decode_got = msgspec.json.Decoder(_Got).decode
_API = "$JS.API"  # JetStream's API prefix (the context's default: no domain)
_WINDOW = 32  # a read's gets in flight at most


def _unavailable(exc: BaseException) -> Unavailable:
    return Unavailable(f"the event stream is unavailable: {exc!r}"[:300], retry_after=5)


def decode_event(data: bytes) -> DomainEvent:
    wire = _decode(data)
    return DomainEvent(
        int(wire.id),
        wire.type,
        wire.occurred_at,
        dict(wire.data),
        int(wire.message_id) if wire.message_id else None,
    )


def encode_event(event: DomainEvent) -> bytes:
    return _encode(
        _Wire(
            str(event.id),
            event.type,
            event.occurred_at,
            event.data,
            str(event.message_id) if event.message_id is not None else None,
        )
    )


class JetStreamEventStream:
    """Implements the stream port (services/ports.py ``EventStream``)."""

    name = "jetstream"

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        stream: str = "SOCIUS_EVENTS",
        subject_prefix: str = "socius.events.",
        duplicate_window: float = 120.0,
        max_age: float = 0.0,
        replicas: int = 1,
        timeout: float = 5.0,
    ) -> None:
        self._servers = [url] if isinstance(url, str) else list(url)
        self.stream_name = stream
        self._prefix = subject_prefix
        self._duplicate_window = duplicate_window
        self._max_age = max_age
        self._replicas = replicas
        self._timeout = timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()

    def subject(self, type_: str) -> str:
        return self._prefix + type_

    async def start(self) -> None:
        await self._context()

    async def _context(self) -> JetStreamContext:
        if self._js is None:
            async with self._lock:
                if self._js is None:
                    self._js = await self._connect()
        return self._js

    async def _connect(self) -> JetStreamContext:
        try:
            async with asyncio.timeout(self._timeout):
                nc = await nats.connect(
                    self._servers,
                    name="socius-stream",
                    connect_timeout=max(1, int(self._timeout)),
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                )
        except _FAILURES as exc:
            raise _unavailable(exc) from exc
        js = nc.jetstream(timeout=self._timeout)
        config = StreamConfig(
            name=self.stream_name,
            subjects=[self._prefix + ">"],
            storage=StorageType.FILE,
            duplicate_window=self._duplicate_window,
            max_age=self._max_age,
            num_replicas=self._replicas,
        )
        try:
            try:
                await js.add_stream(config)
            except BadRequestError:  # there, with another configuration
                await js.update_stream(config)
        except _FAILURES as exc:
            with contextlib.suppress(*_FAILURES):
                await nc.close()
            raise _unavailable(exc) from exc
        self._nc = nc
        return js

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        js = await self._context()
        try:
            acks = [
                await js.publish_async(
                    self.subject(e.type),
                    encode_event(e),
                    stream=self.stream_name,
                    headers={"Nats-Msg-Id": str(e.id)},
                )
                for e in events
            ]
            async with asyncio.timeout(self._timeout + len(events) * 0.01):
                await asyncio.gather(*acks)
        except _FAILURES as exc:
            raise _unavailable(exc) from exc

    async def _consumer(
        self, config: ConsumerConfig, subject: str
    ) -> JetStreamContext.PullSubscription:
        js = await self._context()
        config.ack_policy = AckPolicy.NONE
        config.inactive_threshold = 60.0
        config.mem_storage = True
        return await js.pull_subscribe(subject, stream=self.stream_name, config=config)

    async def _take(
        self, config: ConsumerConfig, types: Sequence[str], limit: int
    ) -> list[StreamedEvent]:
        """Up to ``limit`` events of ``types`` from where ``config`` starts. One type (or
        prefix) filters on the server; several (NATS < 2.10 has one filter per
        consumer) read everything from there and keep those that match."""
        if len(types) == 1:
            only = types[0]
            subject = self.subject(only[:-1] + "*" if only.endswith(".*") else only)
        else:
            subject = self._prefix + ">"
        try:
            sub = await self._consumer(config, subject)
            name: str | None = None
            try:
                info = await sub.consumer_info()
                name = info.name
                pending = int(info.num_pending or 0)
                found: list[StreamedEvent] = []
                while pending > 0 and len(found) < limit:
                    batch = min(pending, max(limit - len(found), 1), 256)
                    for msg in await sub.fetch(batch, timeout=self._timeout):
                        pending = int(msg.metadata.num_pending)
                        event = decode_event(msg.data)
                        if len(found) < limit and type_matches(event.type, types):
                            found.append(StreamedEvent(msg.metadata.sequence.stream, event))
                return found
            finally:
                if name is not None:
                    with contextlib.suppress(*_FAILURES, NotFoundError):
                        js = await self._context()
                        await js.delete_consumer(self.stream_name, name)
                with contextlib.suppress(*_FAILURES):
                    await sub.unsubscribe()
        except _FAILURES as exc:
            raise _unavailable(exc) from exc

    async def read(
        self, *, after: int, types: Sequence[str] = (), limit: int
    ) -> list[StreamedEvent]:
        """Gets, each "the next message at or after this sequence on this subject" (no
        consumer to make and remove). One type or prefix filters on the server; several
        read every event and keep those that match.

        The gets go in batches, for the sequences after the last one found: one, then
        twice as many (up to ``_WINDOW``) while each get of a batch finds a message of
        its own, so a read of many events costs a round trip per batch, not per event,
        and a read of nothing one get. Answers come in order; a gap in the sequences
        (events of a type the server filters out, or removed) makes two gets find the
        same message (kept once) and the next batch one get again (a sparse type is read
        one get per event, as before); the first "nothing further" ends the read: no
        event after it is taken before it.

        The request and its answer are made and read here, not by nats-py's ``get_msg``
        (a JSON request through the stdlib, the answer's headers decoded from base64 and
        parsed as e-mail headers, then its data): only the sequence and the data are
        used, decoded in one msgspec call (the notifier reads one event per message)."""
        await self._context()
        nc = self._nc
        assert nc is not None
        if len(types) == 1:
            only = types[0]
            subject = self.subject(only[:-1] + "*" if only.endswith(".*") else only)
        else:
            subject = self._prefix + ">"
        request = f"{_API}.STREAM.MSG.GET.{self.stream_name}"
        timeout = self._timeout
        tail = b',"next_by_subj":' + _encode(subject) + b"}"
        found: list[StreamedEvent] = []
        seq = after + 1
        window = 1  # gets in flight: one, then doubling while they find one message each
        try:
            while len(found) < limit:
                gap = False
                answers = await asyncio.gather(
                    *(
                        nc.request(request, b'{"seq":%d%b' % (seq + i, tail), timeout=timeout)
                        for i in range(min(window, limit - len(found)))
                    ),
                    return_exceptions=True,  # every get of the batch waited for
                )
                for answer in answers:
                    if isinstance(answer, BaseException):
                        raise answer
                    got = _decode_got(answer.data)
                    if got.error is not None and got.error.code != 404:
                        raise Unavailable(
                            f"the event stream is unavailable: {got.error.description!r}"[:300],
                            retry_after=5,
                        )
                    stored = got.message
                    if stored is None:  # 404: nothing at or after that sequence (yet)
                        return found
                    position = stored.seq or seq
                    if position < seq:
                        gap = True  # an earlier get of this batch found it already
                        continue
                    if stored.data:  # an empty message is no event (as nats-py's get_msg)
                        event = decode_event(stored.data)
                        if type_matches(event.type, types) and len(found) < limit:
                            found.append(StreamedEvent(position, event))
                    seq = position + 1
                # Sequences with gaps (a type the server filters out between the events
                # read): more gets in flight would mostly find the same message again.
                window = 1 if gap else min(window * 2, _WINDOW)
        except (*_FAILURES, msgspec.DecodeError) as exc:
            raise _unavailable(exc) from exc
        return found

    async def head(self) -> int:
        js = await self._context()
        try:
            info = await js.stream_info(self.stream_name)
        except _FAILURES as exc:
            raise _unavailable(exc) from exc
        return int(info.state.last_seq or 0)

    async def position_at(self, when: datetime) -> int:
        """The time is the event's ``occurred_at``, as in the database stream. JetStream
        knows only when the relay stored each event, which is never before it occurred:
        the first event stored at or after ``when`` is where to start looking; events
        the relay stored late (after a relay outage: many) occurred before ``when``, so
        the first that occurred at or after it is found by bisection over the positions
        from there (the relay publishes in the order events occurred)."""
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=when)
        first = await self._take(config, (), 1)
        if not first:
            return await self.head()
        if first[0].event.occurred_at >= when:
            return first[0].position - 1
        # Bisection on "the next event at or after position s occurred at/after when (or
        # there is none)": false at ``low``, true past the head.
        low, high = first[0].position, await self.head() + 1
        while high - low > 1:
            middle = (low + high) // 2
            found = await self.read(after=middle - 1, limit=1)
            if not found or found[0].event.occurred_at >= when:
                high = middle
            else:
                low = found[0].position
        return high - 1

    async def delete(self) -> None:
        """Remove the stream (tests: each makes its own)."""
        js = await self._context()
        with contextlib.suppress(*_FAILURES, NotFoundError):
            await js.delete_stream(self.stream_name)

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(*_FAILURES):
                await nc.drain()
