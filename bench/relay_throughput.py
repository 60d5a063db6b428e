"""Event stream relay benchmark: events/s through the relay and its lag, under a W2-like
send load.

    .venv/bin/python -m bench.relay_throughput                 # SQLite, database stream
    .venv/bin/python -m bench.relay_throughput --nats nats://127.0.0.1:4222
    .venv/bin/python -m bench.relay_throughput --nats nats://127.0.0.1:4222 \
        --postgres postgresql://postgres@127.0.0.1:5432/postgres

W2-like: users in direct conversations and groups of 5-50 members; messages are sent
through ``MessagingService.send`` (no HTTP, no sockets: the load is the write path, each
send appending its ``message.created`` domain event in its transaction) at a fixed offered
rate, open loop. The relay runs in the same process, as servers run it (a background task
holding the lease). Reported:

- offered and accepted messages/s;
- events/s through the relay (published and marked sent) while the load runs, and the
  time it took to drain what was left when the load stopped;
- lag: from an event's commit-time timestamp to the stream's acknowledgement (p50/p99/max);
- the relay alone: ``--backlog`` sends made while no relay runs, then drained round by
  round: the process's CPU per event while draining (the relay's and its stream
  client's; the read-back of the database stream's one-statement rounds not counted);
- lost and duplicated: the stream must hold every event appended, once (both 0);
- send errors by code (an overloaded stack may refuse sends, e.g. 503 ``unavailable``
  when the database pool times out): counted, never fatal, and the exit status is 1.

Whatever happens, the services are stopped (their background tasks with them) and the
bench's JetStream stream is deleted before the bench's PostgreSQL database is dropped.

The figures include the senders' CPU (one process, one event loop): so does
``process_cpu_us_per_message`` (the process's CPU from the load's start to the drain's end
per accepted message; PostgreSQL's not included), whose change between two trees running the
same senders is the relay's. Results go to
bench/results/relay-<stream>-<stack>-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bench.harness.openloop import open_loop
from bench.harness.scratch import save_result, scratch_settings
from bench.harness.stats import percentiles_ms
from socius.bootstrap import build
from socius.domain.stream import DomainEvent
from socius.services.auth import ClientInfo
from socius.services.ports import EventStream
from socius.services.relay import Relay
from socius.settings import load_settings
from socius.storage.migrate import upgrade

PASSWORD = "relay bench password 1"  # noqa: S105 (throwaway accounts)


class Timed:
    """The stream, noting each event's lag when the stream acknowledges it."""

    def __init__(self, inner: EventStream) -> None:
        self._inner = inner
        self.name = inner.name
        self.lags: list[float] = []
        self.ids: list[int] = []
        self.bookkeeping_cpu = 0.0  # process CPU seconds spent here, not by the relay
        if hasattr(inner, "move_outbox"):  # the database's stream (decision 0045)
            self.move_outbox = self._move
            self._after = -1

    async def _move(self, limit: int) -> int:
        """The relay's round on the database's stream: no event passes through the relay,
        so the ones it moved are read back here for their lag and ids (CPU not counted)."""
        if self._after < 0:  # the first round (the setup's): where the stream ends
            cpu = time.process_time()
            self._after = await self._inner.head()
            self.bookkeeping_cpu += time.process_time() - cpu
        moved: int = await self._inner.move_outbox(limit)  # type: ignore[attr-defined]
        now = datetime.now(UTC)
        cpu = time.process_time()
        if moved:
            found = await self._inner.read(after=self._after, limit=moved)
            self._after = found[-1].position
            self.lags += [(now - e.event.occurred_at).total_seconds() for e in found]
            self.ids += [e.event.id for e in found]
        self.bookkeeping_cpu += time.process_time() - cpu
        return moved

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        await self._inner.publish(events)
        now = datetime.now(UTC)
        self.lags += [(now - e.occurred_at).total_seconds() for e in events]
        self.ids += [e.id for e in events]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def _conversations(
    services: Any, ids: list[int], rng: random.Random
) -> list[tuple[int, int]]:
    """(conversation, a member who sends there): each user in about 10 direct
    conversations and 2 groups of 5-50 members, as in W2."""
    targets: list[tuple[int, int]] = []
    for i, user in enumerate(ids):
        for k in range(1, 6):  # 5 started by each: about 10 each
            other = ids[(i + k) % len(ids)]
            view, _ = await services.messaging.open_direct(user, other)
            targets.append((view.conversation.id, user))
    for start in range(0, len(ids), 25):
        size = rng.randint(5, 50)
        members = [ids[(start + j) % len(ids)] for j in range(size)]
        view = await services.messaging.create_group(members[0], "bench", members[1:])
        targets += [(view.conversation.id, m) for m in members[:10]]
    return targets


async def measure(args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    settings = load_settings(
        {},
        argon2_memory_kib=1024,
        argon2_time_cost=1,
        log_json=False,
        log_level="warning",
        event_relay_in_server=False,
        limit_messages=1_000_000_000,
        limit_groups=1_000_000,
        register_max_per_ip_per_hour=1_000_000,
        **overrides,
    )
    await upgrade(settings.effective_database_url)
    wiring = build(settings)
    services = wiring.container
    stream = services.events.stream
    try:
        for start in services.on_start:
            await start()
        return await _load(args, wiring, stream)
    finally:
        # Always: the stream of our own (JetStream) removed, and every background task of
        # the services stopped before the caller drops the database under them.
        if hasattr(stream, "delete"):
            try:
                await stream.delete()
            except Exception as exc:
                print(f"warning: the bench's stream was not deleted: {exc!r}", file=sys.stderr)
        for stop in reversed(services.on_stop):
            try:
                await stop()
            except Exception as exc:
                print(f"warning: stopping the services: {exc!r}", file=sys.stderr)


async def _load(args: argparse.Namespace, wiring: Any, stream: EventStream) -> dict[str, Any]:
    services = wiring.container
    client = ClientInfo(ip="127.0.0.1", user_agent="relay-bench")
    rng = random.Random(7)
    ids = []
    for i in range(args.users):
        issued = await services.accounts.register(
            f"r{secrets.token_hex(4)}{i}", PASSWORD, email=None, display_name=None, client=client
        )
        ids.append(issued.user.id)
    targets = await _conversations(services, ids, rng)
    timed = Timed(stream)
    relay = Relay(wiring.database, timed, lambda: datetime.now(UTC), batch=args.batch)  # type: ignore[arg-type]
    while await relay.run_once():  # the setup's events first: not in the figures
        pass
    # The relay alone: a backlog of sends made while no relay runs, then drained round by
    # round; the process's CPU while draining is the relay's (and the stream's client's).
    for n in range(args.backlog):
        conversation, sender = targets[n % len(targets)]
        await services.messaging.send(
            sender, conversation, client_msg_id=f"k{n}", body="hello", reply_to=None
        )
    timed.bookkeeping_cpu = 0.0
    cpu_started, wall_started = time.process_time(), time.monotonic()
    drained = 0
    while got := await relay.run_once():
        drained += got
    backlog = {
        "events": drained,
        "relay_cpu_us_per_event": 1e6
        * (time.process_time() - cpu_started - timed.bookkeeping_cpu)
        / max(drained, 1),
        "seconds": time.monotonic() - wall_started,
    }
    timed.lags.clear()
    timed.ids.clear()
    head_before = await stream.head()
    timed.bookkeeping_cpu = 0.0
    cpu_started = time.process_time()

    relaying = asyncio.create_task(relay.run(interval=0.01))

    async def send(n: int) -> str | None:
        conversation, sender = targets[n % len(targets)]
        try:
            await services.messaging.send(
                sender, conversation, client_msg_id=f"b{n}", body="hello", reply_to=None
            )
        except Exception as exc:
            return str(getattr(exc, "code", None) or type(exc).__name__)
        return None

    # every send is awaited: one cancelled mid-commit would blur the lost/duplicated count
    load = await open_loop(send, rate=args.rate, duration=args.duration, drain_timeout=None)
    accepted, errors, n = load.ok, load.error_kinds, load.sent
    load_seconds = load.elapsed_s
    relayed_during = len(timed.ids)
    drain_started = time.monotonic()
    while len(timed.ids) < accepted:
        await asyncio.sleep(0.01)
        if time.monotonic() - drain_started > 120:
            break
    drain_seconds = time.monotonic() - drain_started
    cpu = time.process_time() - cpu_started - timed.bookkeeping_cpu
    relaying.cancel()
    await asyncio.gather(relaying, return_exceptions=True)
    head_after = await stream.head()
    stored = head_after - head_before
    return {
        "stream": stream.name,
        "offered_per_s": args.rate,
        "sent": n,
        "accepted_per_s": accepted / load_seconds,
        "send_errors": errors,
        "load_seconds": load_seconds,
        "relayed_during_load_per_s": relayed_during / load_seconds,
        "relayed_total": len(timed.ids),
        "drain_after_load_s": drain_seconds,
        "lag_ms": percentiles_ms(timed.lags),
        # The process's CPU (senders, relay, stream client) from the load's start to the
        # drain's end, per accepted message; PostgreSQL's own CPU not included.
        "process_cpu_us_per_message": 1e6 * cpu / max(accepted, 1),
        "lost": max(accepted - stored, 0),
        "duplicated": len(timed.ids) - len(set(timed.ids)) + max(stored - accepted, 0),
        "backlog_drained": backlog,
        "conversations": len({c for c, _ in targets}),
        "users": args.users,
    }


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--postgres", default="", help="admin URL: a fresh database beside it")
    p.add_argument("--nats", default="", help="JetStream for the stream (else the database)")
    p.add_argument("--rate", type=float, default=1000.0, help="messages/s offered")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--batch", type=int, default=500, help="relay batch size")
    p.add_argument("--backlog", type=int, default=5000, help="sends drained by the relay alone")
    args = p.parse_args()
    stream: dict[str, Any] = {}
    if args.nats:
        tag = secrets.token_hex(3)
        stream = {
            "nats_url": args.nats,
            "event_stream": "jetstream",
            "event_stream_name": f"SOCIUS_RELAY_BENCH_{tag.upper()}",
            "event_subject_prefix": f"socius-bench.{tag}.events.",
        }
    async with scratch_settings(args.postgres, "relay") as overrides:
        result = await measure(args, overrides | stream)
    stack = "postgres" if args.postgres else "embedded"
    save_result("relay_throughput", f"relay-{result['stream']}-{stack}", stack, args, result)
    failed = result["lost"] or result["duplicated"] or result["send_errors"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
