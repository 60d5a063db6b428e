"""An open-loop (constant arrival rate) asyncio load generator.

Request i is started at t0 + i/rate whether or not earlier ones have finished, and its
latency is measured from that scheduled start, so a slow server cannot hide its queueing
by slowing the generator down (no coordinated omission).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.harness.stats import percentiles_ms

__all__ = ["OpenLoopResult", "open_loop"]


@dataclass
class OpenLoopResult:
    offered_rate: float
    duration_s: float
    sent: int
    ok: int
    errors: int
    error_kinds: dict[str, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0  # from the first start to the last completion

    @property
    def achieved_rate(self) -> float:
        span = max(self.elapsed_s, self.duration_s)
        return self.ok / span if span else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "offered_rate": self.offered_rate,
            "achieved_rate": self.achieved_rate,
            "duration_s": self.duration_s,
            "elapsed_s": self.elapsed_s,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "error_kinds": self.error_kinds,
            "latency_ms": percentiles_ms(self.latencies_s),
        }


async def open_loop(
    call: Callable[[int], Awaitable[str | None]],
    *,
    rate: float,
    duration: float,
    drain_timeout: float | None = 30.0,
) -> OpenLoopResult:
    """Start `call(i)` at `rate` per second for `duration` seconds.

    `call` returns None on success, or a short error kind ("status 429", ...). Calls still
    running `drain_timeout` seconds after the last start are cancelled (None: awaited).
    """
    result = OpenLoopResult(offered_rate=rate, duration_s=duration, sent=0, ok=0, errors=0)
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.05
    total = int(rate * duration)
    tasks: list[asyncio.Task[None]] = []

    def error(kind: str) -> None:
        result.errors += 1
        result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1

    async def one(i: int, scheduled: float) -> None:
        try:
            outcome = await call(i)
        except Exception as exc:  # any failure of the request is an error to count
            outcome = type(exc).__name__
        if outcome is None:
            result.ok += 1
            result.latencies_s.append(loop.time() - scheduled)
        else:
            error(outcome)

    for i in range(total):
        scheduled = t0 + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
        result.sent += 1
    pending = [t for t in tasks if not t.done()]
    if pending:
        _, still = await asyncio.wait(pending, timeout=drain_timeout)
        for task in still:
            task.cancel()
            error("unfinished")
    result.elapsed_s = loop.time() - t0
    return result
