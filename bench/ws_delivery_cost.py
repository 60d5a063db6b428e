"""Live delivery's socket side: server CPU µs per frame from the hub to real WebSockets.

    .venv/bin/python bench/ws_delivery_cost.py                 # this tree
    .venv/bin/python bench/ws_delivery_cost.py --src /tmp/other/src   # another commit
    .venv/bin/python bench/ws_delivery_cost.py --bare          # Granian's own floor

The server is Granian (one worker, as ``socius serve`` runs it) serving this module's
``app``: the real ``Hub`` and ``Gateway`` (``Connection``: its checks, cursors, sends,
the metrics counter) behind the raw ASGI socket ``api/ws.py`` uses, with stand-ins for what
a socket needs at connect only (no token check: the caller is given; no revocation; log
positions 0). ``--users`` sockets, held by ``--procs`` client processes that read every
frame and check each user's positions: once each, in order, none missing.

The load: W2-shaped traffic (``bench/fanout_cost.py``'s: each message once per member of
its conversation, 80% direct, 20% groups of 5..50; a ``notification`` per member but the
sender, in rounds of ``--note-every`` messages), encoded by ``Delivery.messages`` as the
bus carries it, handed to ``Hub.fan_out`` at ``--rate`` messages/s in send groups of
``--group``, as the bus's reader would. No database, no bus, no HTTP send. The figure: the
server process's CPU (all its threads: ``time.process_time``) from the first hand-over
until every frame has reached its client, ÷ frames. Median of ``--runs``.

``--bare``: the same frames (the same text) sent by a minimal app, one ``await send`` per
frame in a task per socket fed by a queue: the least an ASGI app on Granian spends per
frame.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from bench.fanout_cost import _traffic  # noqa: E402

FIRST_USER = 10**12


# -- the server (a Granian worker) ----------------------------------------------------------


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

    async def events_between(self, *_args: Any) -> list[Any]:
        return []


class _Server:
    def __init__(self) -> None:
        from socius.api.rest.message_views import event_body
        from socius.observability.metrics import Metrics
        from socius.realtime.gateway import Gateway
        from socius.realtime.hub import Hub

        self.bare = os.environ.get("WS_DELIVERY_BARE") == "1"
        self.hub = Hub(_NoBus())  # type: ignore[arg-type]
        self.gateway = Gateway(
            self.hub,
            None,  # type: ignore[arg-type]
            _Revocations(),  # type: ignore[arg-type]
            _Inbox(),  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            metrics=Metrics(),
            render=event_body,
        )
        self.cpu0 = 0.0
        self.threads0: dict[int, float] = {}
        self.fed = 0.0  # CPU when the last group was handed over
        self.lag = 0.0  # the pacer's worst lateness, seconds
        self.task: asyncio.Task[None] | None = None
        self.queues: dict[int, asyncio.Queue[str]] = {}  # --bare

    async def socket(self, scope: Any, receive: Any, send: Any) -> None:
        from socius.api.ws import AsgiSocket
        from socius.domain.sessions import AccessClaims

        user = int(parse_qs(scope["query_string"].decode())["u"][0])
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        if self.bare:
            await self._bare(user, receive, send)
            return
        claims = AccessClaims(user_id=user, session_id=user, expires_at=2**40, issued_at=0)
        await self.gateway.serve(AsgiSocket(receive, send), claims=claims)

    async def _bare(self, user: int, receive: Any, send: Any) -> None:
        await receive()  # the auth frame
        await send({"type": "websocket.send", "text": '{"type":"ready","cursor":null}'})
        queue = self.queues[user] = asyncio.Queue()

        async def reader() -> None:
            while (await receive())["type"] == "websocket.receive":
                pass
            queue.put_nowait("")

        task = asyncio.create_task(reader())
        try:
            while text := await queue.get():
                await send({"type": "websocket.send", "text": text})
        finally:
            task.cancel()

    def go(self, q: dict[str, list[str]]) -> dict[str, Any]:
        from socius.services.delivery import Delivery

        users = list(range(FIRST_USER, FIRST_USER + int(q["users"][0])))
        groups, total = _plan(
            users,
            int(q["messages"][0]),
            int(q["seed"][0]),
            int(q["group"][0]),
            int(q["note_every"][0]),
        )
        delivery = Delivery(_NoBus(), lambda: datetime.now(UTC), None)  # type: ignore[arg-type]
        plan = []
        for events, messages in groups:
            payloads = [p for _, p in delivery.messages(events)]
            frames = _bare_frames(events) if self.bare else []
            plan.append((payloads, frames, messages))
        rate = float(q["rate"][0])
        self.cpu0 = time.process_time()
        self.threads0 = _threads()
        self.task = asyncio.create_task(self._feed(plan, rate))
        return {"frames": total}

    async def _feed(self, plan: list[Any], rate: float) -> None:
        loop = asyncio.get_running_loop()
        at = loop.time()
        for payloads, frames, messages in plan:
            if self.bare:
                for user, text in frames:
                    queue = self.queues.get(user)
                    if queue is not None:
                        queue.put_nowait(text)
            else:
                for payload in payloads:
                    self.hub.fan_out(payload)
            at += messages / rate
            delay = at - loop.time()
            self.lag = max(self.lag, -delay)
            await asyncio.sleep(max(delay, 0.0))
        self.fed = time.process_time() - self.cpu0

    def cpu(self) -> dict[str, Any]:
        used = time.process_time() - self.cpu0
        now = _threads()
        main = now.get(os.getpid(), 0.0) - self.threads0.get(os.getpid(), 0.0)
        return {"cpu": used, "main": main, "fed": self.fed, "lag": self.lag}


def _threads() -> dict[int, float]:
    """CPU seconds of each thread of this process (/proc)."""
    out = {}
    hz = os.sysconf("SC_CLK_TCK")
    for task in Path("/proc/self/task").iterdir():
        try:
            parts = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(parts[11]) + int(parts[12])) / hz
    return out


def _plan(
    users: list[int], messages: int, seed: int, group: int, note_every: int
) -> tuple[list[tuple[list[Any], int]], int]:
    """The traffic as handed over: send groups of ``group`` messages, with a notifier round
    every ``note_every`` messages ((events, messages in it)), each user's positions
    numbered in that order; and the number of frames."""
    from dataclasses import replace

    batches, total = _traffic(users, messages, random.Random(seed))
    seq: Counter[int] = Counter()
    out = []
    for events, count in _groups(batches, group, note_every):
        renumbered = []
        for e in events:
            seq[e.user_id] += 1
            renumbered.append(replace(e, seq=seq[e.user_id]))
        out.append((renumbered, count))
    return out, total


def _groups(batches: list[Any], group: int, note_every: int) -> list[tuple[list[Any], int]]:
    out: list[tuple[list[Any], int]] = []
    pending: list[Any] = []
    count = 0
    notes: list[Any] = []
    done = 0
    for events in batches:
        if events[0].type == "notification":
            notes += events
            continue
        pending += events
        count += 1
        done += 1
        if count == group:
            out.append((pending, count))
            pending, count = [], 0
        if done % note_every == 0:
            if pending:
                out.append((pending, count))
                pending, count = [], 0
            out.append((notes, 0))
            notes = []
    if pending:
        out.append((pending, count))
    if notes:
        out.append((notes, 0))
    return out


def _bare_frames(events: list[Any]) -> list[tuple[int, str]]:
    from socius.api.rest.message_views import event_body
    from socius.services.inbox import cursor_for

    out = []
    for e in events:
        body = json.dumps(event_body(e.type, e.payload), separators=(",", ":"))
        out.append((e.user_id, f'{{"type":"event","cursor":"{cursor_for(e.seq)}","event":{body}}}'))
    return out


_server: _Server | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _server
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _server = _Server()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert _server is not None
    if scope["type"] == "websocket":
        await _server.socket(scope, receive, send)
        return
    path = scope["path"]
    q = parse_qs(scope["query_string"].decode())
    body = {} if path == "/" else _server.go(q) if path == "/go" else _server.cpu()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


# -- the clients (child processes) -----------------------------------------------------------


def _client(port: int, users: list[int], want: dict[int, int], conn: Any) -> None:
    import uvloop

    uvloop.run(_client_main(port, users, want, conn))


async def _client_main(port: int, users: list[int], want: dict[int, int], conn: Any) -> None:
    from websockets.asyncio.client import connect

    from socius.services.inbox import seq_of

    got: Counter[int] = Counter()
    bad = Counter[str]()
    total = sum(want.get(u, 0) for u in users)
    done = asyncio.Event()
    ready = 0
    all_ready = asyncio.Event()
    count = 0

    async def one(user: int) -> None:
        nonlocal ready, count
        async with connect(
            f"ws://127.0.0.1:{port}/ws?u={user}", ping_interval=None, max_queue=None
        ) as ws:
            await ws.send('{"type":"auth","token":"x","cursor":null}')
            json.loads(await ws.recv())
            ready += 1
            if ready == len(users):
                all_ready.set()
            last = 0
            async for raw in ws:
                seq = seq_of(json.loads(raw)["cursor"])
                if seq != last + 1:
                    bad["dup" if seq <= last else "gap"] += 1
                last = max(last, seq)
                got[user] += 1
                count += 1
                if count == total:
                    done.set()

    tasks = []
    for k in range(0, len(users), 50):
        tasks += [asyncio.create_task(one(u)) for u in users[k : k + 50]]
        await asyncio.sleep(0.01)
    await all_ready.wait()
    conn.send("ready")
    await asyncio.to_thread(conn.recv)  # go
    if total:
        try:
            async with asyncio.timeout(120):
                await done.wait()
        except TimeoutError:
            bad["timeout"] += 1
    conn.send({"frames": count, "bad": dict(bad), "missing": total - count})
    await asyncio.to_thread(conn.recv)  # stop
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- the driver ------------------------------------------------------------------------------


async def _run(ns: argparse.Namespace, seed: int) -> dict[str, Any]:
    import httpx

    from bench.harness.bare_ws import BareServer
    from bench.harness.procs import raise_nofile
    from bench.harness.server import free_port

    raise_nofile(ns.users * 2 + 1000)
    port = free_port()
    log = _ROOT / "bench" / "results" / "tmp" / "ws_delivery_cost.log"
    server = BareServer(port, log, target="bench.ws_delivery_cost:app")
    await server.start()
    users = list(range(FIRST_USER, FIRST_USER + ns.users))
    groups, _ = _plan(users, ns.messages, seed, ns.group, ns.note_every)
    want: Counter[int] = Counter(e.user_id for events, _ in groups for e in events)
    ctx = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    for k in range(ns.procs):
        parent, child = ctx.Pipe()
        mine = users[k :: ns.procs]
        p = ctx.Process(target=_client, args=(port, mine, {u: want[u] for u in mine}, child))
        p.start()
        pipes.append(parent)
        procs.append(p)
    try:
        for p in pipes:
            await asyncio.to_thread(p.recv)
        await asyncio.sleep(1.0)  # connects settled
        q = (
            f"users={ns.users}&messages={ns.messages}&seed={seed}&group={ns.group}"
            f"&note_every={ns.note_every}&rate={ns.rate}"
        )
        spy = None
        if ns.profile:
            import subprocess

            from bench.harness.profiler import py_spy

            spy = subprocess.Popen(  # noqa: ASYNC220 (started once, before the load)
                [str(py_spy()), "record", "--pid", str(server.worker_pids()[0]), "--rate",
                 "500", "--format", "raw", "--threads", "--nonblocking", "-o", ns.profile],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            await asyncio.sleep(1.0)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            started = time.monotonic()
            expected = (await http.get(f"/go?{q}")).json()["frames"]
            for p in pipes:
                p.send("go")
            results = [await asyncio.to_thread(p.recv) for p in pipes]
            seconds = time.monotonic() - started
            cpu = (await http.get("/cpu")).json()
        if spy is not None:
            import signal

            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        for p in pipes:
            p.send("stop")
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
        await server.stop()
    frames = sum(r["frames"] for r in results)
    bad: Counter[str] = Counter()
    for r in results:
        bad.update(r["bad"])
    return {
        "us_per_frame": cpu["cpu"] / frames * 1e6 if frames else float("nan"),
        "us_per_message": cpu["cpu"] / ns.messages * 1e6,
        "main_share": cpu["main"] / cpu["cpu"] if cpu["cpu"] else 0.0,
        "frames": frames,
        "expected": expected,
        "missing": sum(r["missing"] for r in results),
        "bad": dict(bad),
        "seconds": seconds,
        "frames_per_s": frames / seconds,
        "pacer_lag_ms": cpu["lag"] * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=1000.0, help="messages/s handed over")
    parser.add_argument("--group", type=int, default=8, help="messages per send group")
    parser.add_argument("--note-every", type=int, default=50, help="messages per notifier round")
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--src", help="another tree's src/ (a commit's export)")
    parser.add_argument("--bare", action="store_true", help="Granian's own floor")
    parser.add_argument("--profile", help="py-spy the worker into this file (raw stacks)")
    ns = parser.parse_args()
    paths = [str(_ROOT)] + ([ns.src] if ns.src else [])
    os.environ["PYTHONPATH"] = os.pathsep.join(
        ([ns.src] if ns.src else []) + paths[:1] + [os.environ.get("PYTHONPATH", "")]
    )
    if ns.bare:
        os.environ["WS_DELIVERY_BARE"] = "1"
    runs = [asyncio.run(_run(ns, seed)) for seed in range(ns.runs)]
    for r in runs:
        print(
            f"  {r['us_per_frame']:.1f} µs/frame ({r['main_share']:.0%} main thread), "
            f"{r['us_per_message']:.0f} µs/message, "
            f"{r['frames']}/{r['expected']} frames ({r['missing']} missing, bad {r['bad']}), "
            f"{r['frames_per_s']:,.0f} frames/s, pacer lag {r['pacer_lag_ms']:.0f} ms"
        )
    print(
        f"{'bare' if ns.bare else 'gateway'} {ns.src or 'this tree'}: server CPU per frame "
        f"median {statistics.median(r['us_per_frame'] for r in runs):.1f} µs"
    )


if __name__ == "__main__":
    main()
