"""Warm reads with and without the node's L1 (docs/decisions/0016): server CPU per request.

    flock /tmp/socius-cpu.lock .venv/bin/python -m bench.warm_reads
    flock /tmp/socius-cpu.lock .venv/bin/python -m bench.warm_reads --stacks postgres --seconds 5

For each stack (embedded; PostgreSQL + Redis) and each L1 setting (on: the default; off:
``SOCIUS_L1_CACHE_ENTRIES=0``), one `socius serve` worker is started on a fresh stack and
seeded with one user who has 50 friends. After a warm-up, wrk (``-c16``) drives each
endpoint in turn for ``--seconds``: ``GET /healthz`` (the reference), ``GET /v1/me``,
``GET /v1/users/{id}`` and ``GET /v1/friends`` (a page of 50). Server CPU µs per request
comes from /proc (bench/harness/cpu.py). Writes bench/results/warm-reads-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness.cpu import CpuMeter
from bench.harness.server import ServerProcess, free_port
from bench.harness.stack import fresh_stack
from bench.harness.wrk import run_wrk

PASSWORD = "correct horse battery staple"  # noqa: S105 (throwaway accounts)
RESULTS = Path(__file__).resolve().parent / "results"
FRIENDS = 50
FAST = {"SOCIUS_ARGON2_MEMORY_KIB": "1024", "SOCIUS_ARGON2_TIME_COST": "1"}


async def seed(base_url: str) -> tuple[str, list[str]]:
    """One owner with ``FRIENDS`` friends: the owner's id, and every account's token."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        tag = os.urandom(3).hex()

        async def join(i: int) -> dict[str, Any]:
            r = await http.post(
                "/v1/auth/register", json={"username": f"wr{tag}_{i}", "password": PASSWORD}
            )
            r.raise_for_status()
            body: dict[str, Any] = r.json()
            return body

        owner = await join(0)
        friends = [await join(i + 1) for i in range(FRIENDS)]
        owner_auth = {"Authorization": f"Bearer {owner['access_token']}"}
        for f in friends:
            auth = {"Authorization": f"Bearer {f['access_token']}"}
            r = await http.post(
                "/v1/friends/requests", json={"user_id": owner["user"]["id"]}, headers=auth
            )
            r.raise_for_status()
            r = await http.post(
                f"/v1/friends/requests/{f['user']['id']}/accept", headers=owner_auth
            )
            r.raise_for_status()
        tokens = [owner["access_token"]] + [f["access_token"] for f in friends]
        return owner["user"]["id"], tokens


async def measure(
    server: ServerProcess, path: str, tokens_file: Path, tokens: list[str], seconds: float
) -> dict[str, Any]:
    env = {"BENCH_TOKENS": str(tokens_file)}
    lines = "".join(f"{token} {path}\n" for token in tokens)  # lua/paths.lua's lines
    await asyncio.to_thread(tokens_file.write_text, lines)
    # Warm-up: every token verified, every cache filled.
    await run_wrk(server.base_url, "paths.lua", duration=1, connections=16, env=env)
    with CpuMeter(server.pids()) as meter:
        result = await run_wrk(
            server.base_url, "paths.lua", duration=seconds, connections=16, env=env
        )
    errors = result.non2xx + sum(result.socket_errors.values())
    return {
        "path": path,
        "requests": result.requests,
        "rate": round(result.rate, 1),
        "errors": errors,
        "server_cpu_us": round(meter.result["server_cpu_s"] / max(result.requests, 1) * 1e6, 1),
        "p99_ms": result.latency_ms.get("p99"),
        "machine_busy_cores": meter.result["machine_busy_cores"],
    }


async def run_stack(kind: str, l1: bool, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    async with fresh_stack(
        kind,
        work / f"{kind}-{int(l1)}",
        postgres_admin_url=args.postgres,
        redis_url=args.redis,
        tag="warm",
    ) as stack:
        extra = dict(FAST)
        if not l1:
            extra["SOCIUS_L1_CACHE_ENTRIES"] = "0"
        server = ServerProcess(
            stack.settings_env(),
            port=free_port(),
            workers=1,
            log_path=work / f"{kind}-{int(l1)}.log",
            extra_env=extra,
        )
        await server.start()
        try:
            owner, tokens = await seed(server.base_url)
            tokens_file = work / "tokens.txt"
            rows = []
            for path, who in (
                ("/healthz", tokens),
                ("/v1/me", tokens),
                (f"/v1/users/{owner}", tokens[1:]),
                ("/v1/friends?limit=50", tokens[:1]),
            ):
                rows.append(await measure(server, path, tokens_file, who, args.seconds))
        finally:
            await server.stop()
    healthz = rows[0]["server_cpu_us"] or 1.0
    for row in rows:
        row["x_healthz"] = round(row["server_cpu_us"] / healthz, 2)
    return {"stack": kind, "l1": l1, "endpoints": rows}


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stacks", default="embedded,postgres")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument(
        "--postgres",
        default=os.environ.get(
            "SOCIUS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1/postgres"
        ),
    )
    p.add_argument(
        "--redis", default=os.environ.get("SOCIUS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = p.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="socius-warm-") as tmp:
        for kind in args.stacks.split(","):
            for l1 in (False, True):
                run = await run_stack(kind, l1, args, Path(tmp))
                runs.append(run)
                for row in run["endpoints"]:
                    print(
                        f"{kind:9} L1={'on ' if l1 else 'off'} {row['path']:28} "
                        f"{row['server_cpu_us']:8.1f} µs/req  {row['x_healthz']:5.2f}x healthz  "
                        f"{row['rate']:8.1f} req/s  errors {row['errors']}"
                    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"warm-reads-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps({"seconds": args.seconds, "runs": runs}, indent=1) + "\n")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
