"""A fleet of WebSocket clients in one load-generator process (W2 receivers, W3 idle
connections), driven by the bench process through `bench.harness.procs`.

Every socket is the SDK's `RealtimeClient` (authenticate, resume from a cursor); the only
change (a subclass) is how the TCP connection is opened: from one of several loopback
source addresses (one 127.0.0.x has ~28,000 ephemeral ports towards one server port), and
without websockets' own protocol-level keepalive pings, because the heartbeat is the
gateway's: a `{"type": "ping"}` frame every `ping_interval` seconds (docs/realtime.md: the
server closes a socket it has heard nothing from for 60 s). Pings are spread evenly.

Bench messages carry `B|<tag>|<scheduled send start, time.monotonic()>|...` as their body;
CLOCK_MONOTONIC is one clock for every process of the machine, so the delivery latency is
the receive time minus that. For each tag the fleet keeps, per (socket, conversation), the
`seq`s of the `message.created` frames in arrival order, and checks them on demand against
the server's history (no loss, no duplicate, in order).

A socket the server closes reconnects with its cursor (backoff with jitter), counting the
close code: W2 counts any close as an error, W3 uses it for the restart.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import itertools
import random
import time
from collections import Counter, defaultdict
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import connect as ws_connect

from bench.harness.procs import proc_rss_kib, run_child, serve_commands
from socius.client import RealtimeClient
from socius.client._realtime import RealtimeClosed

__all__ = ["fleet_main"]

TICK = 0.25


class BenchClient(RealtimeClient):
    """RealtimeClient opened from a given loopback address, without library keepalives."""

    def __init__(self, url: str, token: str, *, local_ip: str, open_timeout: float) -> None:
        super().__init__(url, token, open_timeout=open_timeout)
        self.local_ip = local_ip

    async def connect(self) -> str:  # RealtimeClient.connect, with two connect arguments
        self._ws = await ws_connect(
            self._url,
            open_timeout=self._open_timeout,
            max_size=self._max_size,
            ping_interval=None,
            local_addr=(self.local_ip, 0),
        )
        await self._send({"type": "auth", "token": self._token, "cursor": self.cursor})
        self.replayed = []
        while True:
            frame = await self._recv_frame()
            if frame.get("type") == "ready":
                self.cursor = frame.get("cursor") or self.cursor
                return str(self.cursor)
            if frame.get("type") == "event":
                self.replayed.append(frame)

    @property
    def extensions(self) -> str:
        ws = self._ws
        if ws is None or ws.response is None:
            return ""
        return ws.response.headers.get("Sec-WebSocket-Extensions", "")


class Fleet:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.url: str = spec["url"]
        self.tokens: list[str] = spec["tokens"]
        self.convs: list[list[str]] = spec.get("convs") or [[] for _ in self.tokens]
        self.local_ips: list[str] = spec.get("local_ips") or ["127.0.0.1"]
        self.handshakes: int = spec.get("handshakes", 128)
        self.ping_interval: float = spec.get("ping_interval", 30.0)
        self.open_timeout: float = spec.get("open_timeout", 10.0)
        self.ready_timeout: float = spec.get("ready_timeout", 30.0)
        self.backoff_cap: float = spec.get("backoff_cap", 30.0)
        # reconnects: 0 = every client on its own (a herd); N = at most N handshakes at once
        gate = spec.get("resume_gate", 0)
        self._resume_gate = asyncio.Semaphore(gate) if gate else None
        n = len(self.tokens)
        self.clients: list[BenchClient | None] = [None] * n
        self.up = [False] * n  # connected and past `ready`
        self.tasks: list[asyncio.Task[None] | None] = [None] * n
        self.closes: Counter[str] = Counter()
        self.connect_errors: Counter[str] = Counter()
        self.reconnects = 0
        self.reconnect_failures = 0
        self.reconnect_errors: Counter[str] = Counter()
        self.pongs = 0
        self.pings = 0
        self.other_frames: Counter[str] = Counter()
        self.down_since: dict[int, float] = {}
        self.resumed_at: dict[int, float] = {}
        self.stopping = False
        self.extensions: Counter[str] = Counter()
        # per tag: latencies (s), arrival order of seqs per (socket, conversation), counts
        self.lat: dict[str, array.array[float]] = defaultdict(lambda: array.array("d"))
        self.seqs: dict[str, dict[tuple[int, str], list[int]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.count: Counter[str] = Counter()
        self.last_at: dict[str, float] = {}
        self.connect_lat: list[float] = []
        self._heartbeat: asyncio.Task[None] | None = None
        self._connected_upto = 0

    # -- frames --------------------------------------------------------------------------

    def on_frame(self, i: int, frame: dict[str, Any], now: float) -> None:
        kind = frame.get("type")
        if kind == "event":
            event = frame.get("event") or {}
            etype = event.get("type")
            if etype == "message.created":
                message = event["message"]
                body = message.get("body") or ""
                if body.startswith("B|"):
                    _, tag, sched, _rest = body.split("|", 3)
                    self.lat[tag].append(now - float(sched))
                    self.seqs[tag][(i, message["conversation_id"])].append(int(message["seq"]))
                    self.count[tag] += 1
                    self.last_at[tag] = now
                    return
            self.other_frames[str(etype)] += 1
        elif kind == "pong":
            self.pongs += 1
        else:
            self.other_frames[f"frame:{kind}"] += 1

    # -- one socket --------------------------------------------------------------------------

    def _client(self, i: int) -> BenchClient:
        c = self.clients[i]
        if c is None:
            ip = self.local_ips[i % len(self.local_ips)]
            c = BenchClient(self.url, self.tokens[i], local_ip=ip, open_timeout=self.open_timeout)
            self.clients[i] = c
        return c

    async def _open(self, i: int) -> None:
        c = self._client(i)
        async with asyncio.timeout(self.open_timeout + self.ready_timeout):
            await c.connect()
        now = time.monotonic()
        for frame in c.replayed:
            self.on_frame(i, frame, now)
        c.replayed = []
        self.up[i] = True

    async def _life(self, i: int) -> None:
        """Read the socket; when the server closes it, reconnect with the cursor."""
        c = self.clients[i]
        assert c is not None
        while True:
            try:
                frame = await c.recv()
            except (RealtimeClosed, AssertionError, OSError) as exc:
                self.up[i] = False
                if self.stopping:
                    return
                code = exc.code if isinstance(exc, RealtimeClosed) else type(exc).__name__
                self.closes[str(code)] += 1
                self.down_since[i] = time.monotonic()
                self.resumed_at.pop(i, None)
                await self._reconnect(i)
                if not self.up[i]:
                    return
                continue
            self.on_frame(i, frame, time.monotonic())

    async def _reconnect(self, i: int) -> None:
        c = self.clients[i]
        assert c is not None
        with contextlib.suppress(Exception):
            await c.close()
        # exponential backoff with full jitter: 0..1 s, then 0..2, 0..4, ... capped
        for attempt in range(200):
            await asyncio.sleep(random.uniform(0, min(self.backoff_cap, 2.0**attempt)))
            if self.stopping:
                return
            try:
                if self._resume_gate is None:
                    await self._open(i)
                else:
                    async with self._resume_gate:
                        await self._open(i)
            except Exception as exc:
                self.reconnect_failures += 1
                kind = type(exc).__name__
                if isinstance(exc, RealtimeClosed):
                    kind = f"closed {exc.code}: {exc.reason[:40]}"
                self.reconnect_errors[kind] += 1
                with contextlib.suppress(Exception):
                    await c.close()
                continue
            self.reconnects += 1
            self.resumed_at[i] = time.monotonic()
            return

    async def _heartbeats(self) -> None:
        slots = max(1, round(self.ping_interval / TICK))
        tick = 0
        while True:
            await asyncio.sleep(TICK)
            tick += 1
            for i in range(tick % slots, self._connected_upto, slots):
                c = self.clients[i]
                if c is not None and self.up[i]:
                    try:
                        await c.ping()
                        self.pings += 1
                    except Exception:  # noqa: S112 (closing: its reader reconnects it)
                        continue

    # -- commands ----------------------------------------------------------------------

    async def connect(self, upto: int, max_failures: int) -> dict[str, Any]:
        """Open sockets [already open .. upto); stops early after max_failures."""
        start, upto = self._connected_upto, min(upto, len(self.tokens))
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._heartbeats())
        gate = asyncio.Semaphore(self.handshakes)
        failures = 0
        ok = 0
        t0 = time.monotonic()
        abort = asyncio.Event()

        async def one(i: int) -> None:
            nonlocal failures, ok
            async with gate:
                if abort.is_set():
                    return
                t = time.monotonic()
                try:
                    await self._open(i)
                except Exception as exc:
                    failures += 1
                    self.connect_errors[type(exc).__name__] += 1
                    if failures >= max_failures:
                        abort.set()
                    return
                self.connect_lat.append(time.monotonic() - t)
                ok += 1
                self._connected_upto = max(self._connected_upto, i + 1)  # heartbeats from now
                c = self.clients[i]
                assert c is not None
                self.extensions[c.extensions or "none"] += 1
                self.tasks[i] = asyncio.create_task(self._life(i))

        await asyncio.gather(*(one(i) for i in range(start, upto)))
        self._connected_upto = upto
        return {
            "opened": ok,
            "failed": failures,
            "aborted": abort.is_set(),
            "seconds": time.monotonic() - t0,
            "first_at": t0,
            "up": sum(self.up),
        }

    def status(self) -> dict[str, Any]:
        lat = sorted(self.connect_lat)
        return {
            "sockets": len(self.tokens),
            "up": sum(self.up),
            "closes": dict(self.closes),
            "connect_errors": dict(self.connect_errors),
            "reconnects": self.reconnects,
            "reconnect_failures": self.reconnect_failures,
            "reconnect_errors": dict(self.reconnect_errors),
            "pings": self.pings,
            "pongs": self.pongs,
            "other_frames": dict(self.other_frames),
            "extensions": dict(self.extensions),
            "rss_kib": proc_rss_kib_self(),
            "connect_p50_ms": 1000 * lat[len(lat) // 2] if lat else None,
            "connect_p99_ms": 1000 * lat[int(len(lat) * 0.99)] if lat else None,
        }

    def counts(self, tags: list[str]) -> dict[str, Any]:
        return {
            "counts": {t: self.count.get(t, 0) for t in tags},
            "last_at": {t: self.last_at.get(t) for t in tags},
            "closes": sum(self.closes.values()),
            "up": sum(self.up),
        }

    def verify(self, tag: str, expected: dict[str, list[int]], keep: bool) -> dict[str, Any]:
        """Compare, for every socket and each of its conversations, the seqs received
        for `tag` with the server's history (`expected`: conversation -> seqs in order)."""
        got = self.seqs.get(tag, {})
        lost = dup = out_of_order = phantom = checked = 0
        bad: list[str] = []
        for i, convs in enumerate(self.convs):
            for conv in convs:
                want = expected.get(conv, [])
                have = got.get((i, conv), [])
                if not want and not have:
                    continue
                checked += 1
                if have == want:
                    continue
                hs, ws = set(have), set(want)
                lost += len(ws - hs)
                phantom += len(hs - ws)
                dup += len(have) - len(hs)
                out_of_order += sum(1 for a, b in itertools.pairwise(have) if b < a)
                if len(bad) < 5:
                    bad.append(f"socket {i} conv {conv}: want {want[:8]} got {have[:8]}")
        # frames for conversations this socket is not a member of
        mine = {(i, c) for i, convs in enumerate(self.convs) for c in convs}
        foreign = sum(len(v) for k, v in got.items() if k not in mine)
        lat = self.lat.get(tag, array.array("d"))
        out = {
            "tag": tag,
            "deliveries": self.count.get(tag, 0),
            "checked_pairs": checked,
            "lost": lost,
            "duplicated": dup,
            "out_of_order": out_of_order,
            "phantom": phantom,
            "foreign": foreign,
            "examples": bad,
            "latencies": lat.tobytes(),
            "last_at": self.last_at.get(tag),
        }
        if not keep:
            self.seqs.pop(tag, None)
            self.lat.pop(tag, None)
        return out

    def resume_status(self, since: float) -> dict[str, Any]:
        """After a restart: who came back, and when (monotonic)."""
        times = sorted(t for i, t in self.resumed_at.items() if t >= since)
        return {
            "up": sum(self.up),
            "resumed": len(times),
            "down": sum(1 for i, d in self.down_since.items() if d >= since),
            "first": times[0] if times else None,
            "last": times[-1] if times else None,
            "times": array.array("d", times).tobytes(),
            "closes": dict(self.closes),
            "reconnect_failures": self.reconnect_failures,
            "reconnect_errors": dict(self.reconnect_errors),
        }

    async def close_all(self) -> dict[str, Any]:
        self.stopping = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        t0 = time.monotonic()
        for task in self.tasks:
            if task is not None:
                task.cancel()
        gate = asyncio.Semaphore(512)

        async def close(c: BenchClient) -> None:
            async with gate:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5):
                        await c.close()

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                await asyncio.gather(*(close(c) for c in self.clients if c is not None))
        return {"seconds": time.monotonic() - t0}


def proc_rss_kib_self() -> int:
    import os

    return proc_rss_kib(os.getpid())


def fleet_main(conn: Connection, spec: dict[str, Any]) -> None:
    async def main() -> None:
        fleet = Fleet(spec)

        async def handle(name: str, args: tuple[Any, ...]) -> Any:
            if name == "connect":
                return await fleet.connect(*args)
            if name == "status":
                return fleet.status()
            if name == "counts":
                return fleet.counts(*args)
            if name == "verify":
                return fleet.verify(*args)
            if name == "resume_status":
                return fleet.resume_status(*args)
            if name == "close_all":
                return await fleet.close_all()
            if name == "exit":
                return None
            raise ValueError(f"unknown command {name!r}")

        await serve_commands(conn, handle)

    run_child(main)
