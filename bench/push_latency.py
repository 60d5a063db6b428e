"""Push latency benchmark: from a send's answer to the Web Push request reaching the
push service, for recipients without a live socket, under a steady send load; and what
the notifier costs the senders.

    .venv/bin/python -m bench.push_latency                      # SQLite, database stream
    .venv/bin/python -m bench.push_latency --postgres postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python -m bench.push_latency --no-notifier        # the same load, no notifier
    .venv/bin/python -m bench.push_latency --no-notifier --relay   # ... the relay alone

Users in direct conversations, each with one Web Push subscription pointing at a local
HTTP server (the "push service", a thread of this process, which only records arrival
times: it decrypts after the run to tell which message each push was for). Messages are
sent through ``MessagingService.send`` at a fixed offered rate, open loop; the relay and
the notifier run in the same process as servers run them. Reported: send latency p50/p99
(with and without the notifier, for its cost), and send -> push p50/p99/max. Results go
to bench/results/push-<stack>-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.harness.openloop import open_loop
from bench.harness.scratch import save_result, scratch_settings
from bench.harness.stats import percentiles_ms
from socius.bootstrap import build
from socius.domain.push import DeviceKind
from socius.services.auth import ClientInfo
from socius.settings import load_settings
from socius.storage.migrate import upgrade

PASSWORD = "push bench password 1"  # noqa: S105 (throwaway accounts)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Service:
    """The local push service: records (path, body, arrival time)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bytes, float]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.got.append((self.path, raw, time.monotonic()))
                self.send_response(201)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


async def measure(args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    service = Service()
    settings = load_settings(
        {},
        argon2_memory_kib=1024,
        argon2_time_cost=1,
        log_json=False,
        log_level="warning",
        event_relay_in_server=False,
        push_allow_private=True,
        limit_messages=1_000_000_000,
        register_max_per_ip_per_hour=1_000_000,
        **overrides,
    )
    await upgrade(settings.effective_database_url)
    wiring = build(settings)
    services = wiring.container
    for start in services.on_start:
        await start()
    client = ClientInfo(ip="127.0.0.1", user_agent="push-bench")
    ids: list[int] = []
    keys: dict[int, tuple[ec.EllipticCurvePrivateKey, bytes]] = {}
    for i in range(args.users):
        issued = await services.accounts.register(
            f"p{secrets.token_hex(4)}{i}", PASSWORD, email=None, display_name=None, client=client
        )
        user = issued.user.id
        ids.append(user)
        key, auth = ec.generate_private_key(ec.SECP256R1()), os.urandom(16)
        keys[user] = (key, auth)
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        await services.push.register(
            user,
            DeviceKind.WEBPUSH,
            endpoint=f"http://127.0.0.1:{service.port}/{user}",
            p256dh=_b64(point),
            auth=_b64(auth),
        )
    pairs = []
    for i, user in enumerate(ids):
        other = ids[(i + 1) % len(ids)]
        view, _ = await services.messaging.open_direct(user, other)
        pairs.append((view.conversation.id, user, other))
    relay, notifier = services.relay, services.notifier
    while await relay.run_once():
        pass
    while await notifier.run_once():
        pass
    await notifier.settle()
    service.got.clear()
    tasks = []
    if not args.no_notifier or args.relay:
        services.events.on_commit = relay.wake
        tasks = [asyncio.create_task(relay.run())]
    if not args.no_notifier:
        tasks.append(asyncio.create_task(notifier.run()))
    sent_at: dict[int, float] = {}
    send_ms: list[float] = []

    async def send(n: int) -> str | None:
        conversation, sender, _ = pairs[n % len(pairs)]
        began = time.monotonic()
        message, _ = await services.messaging.send(
            sender, conversation, client_msg_id=f"b{n}", body="hello", reply_to=None
        )
        done = time.monotonic()
        send_ms.append(done - began)
        sent_at[message.id] = done
        return None

    load = await open_loop(send, rate=args.rate, duration=args.duration, drain_timeout=None)
    n, load_seconds = load.sent, load.elapsed_s
    result: dict[str, Any] = {
        "notifier": not args.no_notifier,
        "relay": not args.no_notifier or args.relay,
        "offered_per_s": args.rate,
        "sent": n,
        "send_errors": load.error_kinds,  # a send that raised (it no longer stops the run)
        "accepted_per_s": len(send_ms) / load_seconds,
        "send_ms": percentiles_ms(send_ms),
        "users": args.users,
    }
    if not args.no_notifier:
        drain = time.monotonic()
        while len(service.got) < len(sent_at) and time.monotonic() - drain < 60:  # noqa: ASYNC110 (a thread fills it)
            await asyncio.sleep(0.05)
        await notifier.settle()
        lags = []
        for path, body, arrived in service.got:
            key, auth = keys[int(path.strip("/"))]
            data = json.loads(http_ece.decrypt(body, private_key=key, auth_secret=auth))
            lags.append(arrived - sent_at[int(data["message_id"])])
        result |= {
            "pushed": len(service.got),
            "missing": len(sent_at) - len(service.got),
            "send_to_push_ms": percentiles_ms(lags),
        }
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for stop in reversed(services.on_stop):
        await stop()
    service.server.shutdown()
    return result


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--postgres", default="", help="admin URL: a fresh database beside it")
    p.add_argument("--rate", type=float, default=100.0, help="messages/s offered")
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--no-notifier", action="store_true", help="the load alone (its cost)")
    p.add_argument("--relay", action="store_true", help="with --no-notifier: the relay runs")
    args = p.parse_args()
    async with scratch_settings(args.postgres, "push") as overrides:
        result = await measure(args, overrides)
    stack = "postgres" if args.postgres else "embedded"
    save_result("push_latency", f"push-{stack}", stack, args, result)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
