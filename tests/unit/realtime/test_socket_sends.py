"""A connection's sends on a socket whose send is a future already under way (Granian's
``websocket.send``, through ``AsgiSocket.send_soon``): one send in flight per socket, the
next frame at once when it is done, frames behind one in flight sent in order when it
completes, a full queue closes 4408, a failed send ends the connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from socius.domain.events import Event
from socius.domain.ids import IdGenerator
from socius.domain.sessions import AccessClaims
from socius.realtime.gateway import CLOSE_TOO_SLOW, Gateway
from socius.realtime.hub import Hub
from socius.services.delivery import Delivery
from socius.services.inbox import seq_of

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
USER = 1000


class _NoBus:
    async def subscribe(self, _subject: str, _handler: Any) -> Any:
        return self

    async def unsubscribe(self) -> None:
        return None

    async def publish_many(self, _items: Any) -> None:
        return None


class _Revocations:
    async def revoked_among(self, _sessions: list[int]) -> set[int]:
        return set()


class _Inbox:
    async def positions(self, _users: list[int]) -> dict[int, int]:
        return {}


class _FutureSocket:
    """A socket whose ``send_soon`` starts a send the test completes (or fails) later."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.pending: list[asyncio.Future[None]] = []
        self.closed: int | None = None
        self._frames: asyncio.Queue[str | None] = asyncio.Queue()
        self._frames.put_nowait('{"type":"auth","token":"t","cursor":null}')

    async def receive(self) -> str | bytes | None:
        return await self._frames.get()

    def send_soon(self, text: str) -> asyncio.Future[None]:
        self.sent.append(json.loads(text))
        future = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return future

    async def send(self, text: str) -> None:
        await self.send_soon(text)

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = code

    def in_flight(self) -> int:
        return sum(not f.done() for f in self.pending)

    def complete(self) -> None:
        for f in self.pending:
            if not f.done():
                f.set_result(None)

    def seqs(self) -> list[int]:
        return [seq_of(f["cursor"]) for f in self.sent if f["type"] == "event"]


async def _connected(**limits: Any) -> tuple[Gateway, Hub, _FutureSocket, asyncio.Task[None]]:
    hub = Hub(_NoBus())  # type: ignore[arg-type]
    none: Any = None
    gateway = Gateway(hub, none, _Revocations(), _Inbox(), none)  # type: ignore[arg-type]
    if limits:
        gateway.configure(**limits)
    socket = _FutureSocket()
    claims = AccessClaims(user_id=USER, session_id=1, expires_at=2**40, issued_at=0)
    task = asyncio.create_task(gateway.serve(socket, claims=claims))
    await _until(lambda: bool(socket.sent))
    assert socket.sent[0]["type"] == "ready"
    socket.complete()
    await asyncio.sleep(0)
    return gateway, hub, socket, task


def _fan(hub: Hub, seqs: range) -> None:
    delivery = Delivery(_NoBus(), lambda: NOW, IdGenerator(node_id=1))  # type: ignore[arg-type]
    for seq in seqs:
        event = Event(USER, "message.created", {"message": {"n": seq}}, seq, NOW, seq)
        for _, payload in delivery.messages([event]):
            hub.fan_out(payload)


async def _until(done: Callable[[], bool]) -> None:
    for _ in range(200):
        if done():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def test_one_send_in_flight_and_the_frames_behind_it_go_in_order_when_it_completes() -> None:
    _, hub, socket, task = await _connected()
    _fan(hub, range(1, 2))
    assert socket.seqs() == [1]  # at once: nothing was in flight
    _fan(hub, range(2, 6))
    assert socket.seqs() == [1]  # queued behind the one in flight
    assert socket.in_flight() == 1
    for k in range(2, 6):
        socket.complete()
        await _until(lambda k=k: socket.seqs()[-1] == k)
        assert socket.in_flight() == 1  # one at a time
    socket.complete()
    await asyncio.sleep(0)
    _fan(hub, range(6, 7))  # the last send is done: at once again
    assert socket.seqs() == [1, 2, 3, 4, 5, 6]
    task.cancel()


async def test_a_client_that_does_not_take_its_frames_is_closed_4408() -> None:
    _, hub, socket, task = await _connected(send_queue=3)
    _fan(hub, range(1, 10))
    await asyncio.wait_for(task, 5)
    assert socket.closed == CLOSE_TOO_SLOW
    assert socket.seqs() == [1]  # the one in flight; the queue never moved


async def test_a_failed_send_ends_the_connection() -> None:
    _, hub, socket, task = await _connected()
    _fan(hub, range(1, 3))
    socket.pending[-1].set_exception(ConnectionError("the client went away"))
    await asyncio.wait_for(task, 5)
    assert socket.closed is None  # gone: nothing to close
    assert socket.seqs() == [1]


async def test_a_send_that_failed_on_an_idle_socket_ends_it_at_the_next_sweep() -> None:
    # Nothing more to send on it, so no frame looks at the failed send: the gateway's
    # sweep does (every idle_timeout / 4), before the socket would count as silent.
    _, hub, socket, task = await _connected(idle_timeout=2.0)
    _fan(hub, range(1, 2))
    socket.pending[-1].set_exception(ConnectionError("the client went away"))
    await asyncio.wait_for(task, 1.5)
    assert socket.closed is None  # gone, not closed for silence (4408)
