"""W4 login, without HTTP: argon2id verifications (the default cost, 64 MiB, t=3, p=1) at
10/s open loop on the default executor (``asyncio.to_thread``, before decision 0036) or on
``PasswordHasher``'s own executor (one thread per core), alternating, in one process.

    flock /tmp/socius-cpu.lock .venv/bin/python -m bench.workloads.w4_hash_ab 8 out.json

Prints one JSON line per round: latency p50/p99/max from each verification's scheduled
start, CPU per verification, the event loop's lag p99 (a 10 ms ticker), the load average.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop
from argon2 import PasswordHasher as Argon2

from socius.services.passwords import PasswordHasher

RATE = 10.0
PASSWORD = "login-Secret-1-pw"  # noqa: S105 (a bench password)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _round(policy: str, stored: str, duration: float) -> dict[str, Any]:
    hasher = PasswordHasher(memory_kib=65536, time_cost=3, parallelism=1)
    verify: Callable[[], Awaitable[bool]]
    if policy == "default":

        def verify() -> Awaitable[bool]:
            return asyncio.to_thread(hasher._verify, stored, PASSWORD)

    else:

        def verify() -> Awaitable[bool]:
            return hasher.verify(stored, PASSWORD)

    latencies: list[float] = []
    lags: list[float] = []
    stop = False

    async def ticker() -> None:
        while not stop:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t - 0.01)

    async def one(at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        if not await verify():
            raise AssertionError("the password did not verify")
        latencies.append((time.perf_counter() - at) * 1e3)

    tick = asyncio.create_task(ticker())
    start, cpu = time.perf_counter(), time.process_time()
    n = int(RATE * duration)
    await asyncio.gather(*(one(start + i / RATE) for i in range(n)))
    stop = True
    await tick
    hasher.close()
    return {
        "policy": policy,
        "n": n,
        "p50_ms": round(_pct(latencies, 50), 1),
        "p99_ms": round(_pct(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
        "cpu_ms_per_verify": round((time.process_time() - cpu) / n * 1e3, 1),
        "loop_lag_p99_ms": round(_pct(lags, 99) * 1e3, 2),
        "loadavg": os.getloadavg(),
    }


async def _main(duration: float, out: Path) -> None:
    stored = Argon2(memory_cost=65536, time_cost=3, parallelism=1).hash(PASSWORD)
    rounds = []
    for policy in ("default", "own", "default", "own"):
        rounds.append(await _round(policy, stored, duration))
        print(json.dumps(rounds[-1]), flush=True)
    await asyncio.to_thread(out.write_text, json.dumps(rounds, indent=1))


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(
        _main(
            float(sys.argv[1]) if len(sys.argv) > 1 else 8.0,
            Path(sys.argv[2] if len(sys.argv) > 2 else "w4-hash-ab.json"),
        )
    )
