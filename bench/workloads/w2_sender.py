"""W2's HTTP senders: one load-generator process posting messages at a constant offered rate.

Open loop: message i of a step is due at t0 + i/rate and is started then whatever happened
to the earlier ones (no coordinated omission). Its body carries that scheduled time
(`B|<tag>|<t, time.monotonic()>|...`), so the receivers measure delivery latency from the
scheduled send start. Each message goes from a random user (uniform) to one of that user's
conversations (uniform), over a fixed pool of keep-alive connections
(bench/harness/rawhttp.py: httpx cost the generator more CPU than the server); 201 is
success (200 would mean the client_msg_id was already used).

After the step, `idempotency` re-posts a sample of accepted messages with the same
client_msg_id and body: each must come back 200 with the same id and seq.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from bench.harness.procs import run_child, serve_commands
from bench.harness.rawhttp import RawHttpError, RawHttpPool

__all__ = ["sender_main"]

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode
FILLER = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor"


class Sender:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.base_url: str = spec["base_url"]
        self.tokens: list[str] = spec["tokens"]
        self.convs: list[list[str]] = spec["convs"]  # by user index
        self.sizes: dict[str, int] = spec["sizes"]  # members per conversation
        self.seed: int = spec["seed"]
        self.max_connections: int = spec.get("max_connections", 128)
        self.timeout: float = spec.get("timeout", 30.0)
        self.senders = [u for u, c in enumerate(self.convs) if c]
        self.http = RawHttpPool(self.base_url, size=self.max_connections, timeout=self.timeout)
        self.auth = [
            {"Authorization": f"Bearer {t}", "Content-Type": "application/json"}
            for t in self.tokens
        ]
        self.accepted: dict[str, list[tuple[int, str, str, str, str, int]]] = {}

    async def step(self, tag: str, rate: float, duration: float, part: int, parts: int) -> Any:
        """Post round(rate*duration) messages (this process's share: every parts-th)."""
        rng = random.Random(f"{self.seed}-{tag}")
        total = round(rate * duration)
        picks = []
        for _ in range(total):
            u = rng.choice(self.senders)
            picks.append((u, rng.choice(self.convs[u])))
        mine = range(part, total, parts)
        lat: list[float] = []
        lag: list[float] = []
        kinds: Counter[str] = Counter()
        expected = 0
        accepted: list[tuple[int, str, str, str, str, int]] = []
        last_done = 0.0
        clock = time.monotonic

        async def one(i: int, due: float) -> None:
            nonlocal expected, last_done
            u, conv = picks[i]
            start = clock()
            lag.append(start - due)
            cmid = f"w2-{tag}-{i}"
            body = f"B|{tag}|{due:.6f}|{i} {FILLER}"
            try:
                status, content = await self.http.request(
                    "POST",
                    f"/v1/conversations/{conv}/messages",
                    _encode({"client_msg_id": cmid, "body": body}),
                    self.auth[u],
                )
            except (OSError, TimeoutError, RawHttpError, ValueError) as exc:
                kinds[type(exc).__name__] += 1
                return
            done = clock()
            last_done = max(last_done, done)
            if status != 201:
                kinds[f"status {status}"] += 1
                return
            lat.append(done - due)
            expected += self.sizes[conv]
            if len(accepted) < 2000:
                m = _decode(content)
                accepted.append((u, conv, cmid, body, m["id"], int(m["seq"])))

        t0 = clock() + 0.2
        tasks: list[asyncio.Task[None]] = []
        for i in mine:
            due = t0 + i / rate
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        sent_at = clock()
        unfinished = 0
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.timeout + 5)
            for task in pending:
                task.cancel()
                unfinished += 1
        if unfinished:
            kinds["unfinished"] += unfinished
        self.accepted[tag] = accepted
        lag.sort()
        return {
            "tag": tag,
            "rate": rate,
            "duration": duration,
            "sent": len(mine),
            "ok": len(lat),
            "errors": sum(kinds.values()),
            "error_kinds": dict(kinds),
            "expected_deliveries": expected,
            "t0": t0,
            "last_sent": sent_at,
            "last_done": last_done,
            "latencies": lat,
            "lag_p50_ms": 1000 * lag[len(lag) // 2] if lag else None,
            "lag_p99_ms": 1000 * lag[int(len(lag) * 0.99)] if lag else None,
            "lag_max_ms": 1000 * lag[-1] if lag else None,
        }

    async def idempotency(self, tag: str, count: int) -> dict[str, Any]:
        """Re-post `count` accepted messages of `tag`: each must be 200, same id and seq."""
        sample = self.accepted.get(tag, [])
        sample = random.Random(tag).sample(sample, min(count, len(sample)))
        bad: Counter[str] = Counter()

        async def again(u: int, conv: str, cmid: str, body: str, mid: str, seq: int) -> None:
            try:
                status, content = await self.http.request(
                    "POST",
                    f"/v1/conversations/{conv}/messages",
                    _encode({"client_msg_id": cmid, "body": body}),
                    self.auth[u],
                )
            except (OSError, TimeoutError, RawHttpError, ValueError) as exc:
                bad[type(exc).__name__] += 1
                return
            if status != 200:
                bad[f"status {status}"] += 1
                return
            m = _decode(content)
            if m["id"] != mid or int(m["seq"]) != seq:
                bad["different message"] += 1

        await asyncio.gather(*(again(*s) for s in sample))
        return {"checked": len(sample), "errors": sum(bad.values()), "kinds": dict(bad)}


def sender_main(conn: Connection, spec: dict[str, Any]) -> None:
    async def main() -> None:
        sender = Sender(spec)

        async def handle(name: str, args: tuple[Any, ...]) -> Any:
            if name == "step":
                return await sender.step(*args)
            if name == "idempotency":
                return await sender.idempotency(*args)
            if name == "exit":
                await sender.http.close()
                return None
            raise ValueError(f"unknown command {name!r}")

        await serve_commands(conn, handle)

    run_child(main)
