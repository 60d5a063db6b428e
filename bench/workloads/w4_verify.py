"""In-process cost of access-token verification (`AccessTokens.verify`), in µs per call.

Built exactly as the server builds it (`socius.bootstrap.build` from the same SOCIUS_*
settings), with the server's signing key loaded from the stack's database:

- cold: the first verification of each of N distinct tokens (header parse, Ed25519
  signature check, claims, then the insert into the verified-token cache);
- hot: verifying tokens already in that cache (the path every request takes after the
  first one with a given token);
- authenticate: the whole per-request check (`AuthService.authenticate`: hot verify plus
  the revocation lookup in the cache, in-process memory or Redis).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from socius.bootstrap import build
from socius.settings import load_settings

__all__ = ["verify_cost", "verify_cost_subprocess"]

_ROOT = Path(__file__).resolve().parents[2]  # bench/ lives here


async def verify_cost(
    settings_env: dict[str, str], *, tokens: int = 2000, hot_rounds: int = 25
) -> dict[str, Any]:
    settings = load_settings(environ=settings_env)
    wiring = build(settings)
    errors = 0
    try:
        access = wiring.container.tokens
        await access.load_keys()
        issued = [access.issue(10_000 + i, 20_000 + i) for i in range(tokens)]

        start = time.perf_counter_ns()
        for token in issued:
            await access.verify(token)
        cold_us = (time.perf_counter_ns() - start) / tokens / 1000

        hot_samples: list[float] = []
        for _ in range(hot_rounds):
            start = time.perf_counter_ns()
            for token in issued:
                await access.verify(token)
            hot_samples.append((time.perf_counter_ns() - start) / tokens / 1000)
        hot_samples.sort()

        authenticate = wiring.container.auth.authenticate
        auth_calls = min(tokens, 2000)
        start = time.perf_counter_ns()
        for token in issued[:auth_calls]:
            principal = await authenticate(token)
            if principal.user_id < 10_000:
                errors += 1
        auth_us = (time.perf_counter_ns() - start) / auth_calls / 1000
    finally:
        await wiring.cache.close()
        await wiring.database.dispose()
    return {
        "tokens": tokens,
        "hot_rounds": hot_rounds,
        "cold_us": cold_us,
        "hot_us": hot_samples[len(hot_samples) // 2],
        "hot_us_min": hot_samples[0],
        "authenticate_us": auth_us,
        "authenticate_cache": "redis" if settings.redis_url else "memory",
        "errors": errors,
    }


async def verify_cost_subprocess(settings_env: dict[str, str], extra_env: dict[str, str]) -> Any:
    """Run `verify_cost` in a fresh interpreter, on the same code the server runs."""
    root = _ROOT
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIUS_")}
    env.update(settings_env)
    paths = [p for p in (extra_env.get("PYTHONPATH"), str(root)) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.workloads.w4_verify",
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"verify micro-benchmark failed: {err.decode()[-2000:]}")
    return json.loads(out)


if __name__ == "__main__":
    env = {k: v for k, v in os.environ.items() if k.startswith("SOCIUS_")}
    print(json.dumps(asyncio.run(verify_cost(env))))
