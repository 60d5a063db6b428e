"""A friends page through GraphQL vs through REST: server CPU per request, same run.

    flock /tmp/socius-cpu.lock .venv/bin/python -m bench.graphql_friends
    flock /tmp/socius-cpu.lock .venv/bin/python -m bench.graphql_friends --stack postgres

One `socius serve` (the harness's server, stack and CPU meter; wrk with lua/friends.lua)
on a seeded database: users with 60 friends each, so a page is a full 50. The same page,
with the same fields (REST's ``GET /v1/friends?limit=50``, GraphQL's ``friends(first:
50)`` asking for every field REST returns), is loaded by wrk for ``--duration`` seconds,
REST and GraphQL alternating, ``--runs`` times; the figure is the server's CPU seconds
per request (median of the runs), and the GraphQL / REST ratio. Both are served from the
warm cache: what differs is the transport's own work. Every answer is checked (a GraphQL
answer with ``errors`` counts as an error). Each run also measures the framework floor
(bench/harness/floor.py: a bare Litestar + msgspec GET under the same Granian settings)
and gives both figures as a ratio to the floor's CPU per request of that run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

from bench.harness.cpu import CpuMeter
from bench.harness.floor import FloorServer, measure_floor
from bench.harness.machine import machine_info
from bench.harness.server import ServerProcess, free_port
from bench.harness.stack import fresh_stack
from bench.harness.wrk import run_wrk

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PASSWORD = "correct horse battery staple"  # noqa: S105 (a test account's)


async def _seed(base: str, users: int, friends: int) -> list[str]:
    """``users`` accounts with ``friends`` friends each; their access tokens."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def register(name: str) -> tuple[str, str]:
            r = await http.post("/v1/auth/register", json={"username": name, "password": PASSWORD})
            r.raise_for_status()
            body = r.json()
            return body["user"]["id"], body["access_token"]

        tag = hex(time.time_ns())[-6:]
        people = [await register(f"gf_{tag}_{k}") for k in range(users + friends)]
        owners, others = people[:users], people[users:]
        for owner_id, owner_token in owners:
            for other_id, other_token in others:
                auth = {"Authorization": f"Bearer {owner_token}"}
                r = await http.post(
                    "/v1/friends/requests", json={"user_id": other_id}, headers=auth
                )
                r.raise_for_status()
                r = await http.post(
                    f"/v1/friends/requests/{owner_id}/accept",
                    headers={"Authorization": f"Bearer {other_token}"},
                )
                r.raise_for_status()
        return [token for _, token in owners]


async def main(args: argparse.Namespace) -> int:
    workdir = RESULTS / "tmp" / f"graphql-friends-{int(time.time())}"
    runs: list[dict[str, dict[str, float]]] = []
    async with fresh_stack(
        args.stack,
        workdir,
        postgres_admin_url=args.postgres_url,
        redis_url=args.redis_url,
        tag="gqlfriends",
    ) as stack:
        env = {**stack.settings_env(), "SOCIUS_LIMIT_FRIEND_REQUESTS": "0"}
        server = ServerProcess(env, port=free_port(), workers=1, log_path=workdir / "server.log")
        floor = FloorServer(workdir / "floor.log")
        await server.start()
        try:
            await floor.start()
            tokens = await _seed(server.base_url, args.users, args.friends)
            token_file = workdir / "tokens.txt"
            token_file.write_text("\n".join(tokens) + "\n")
            for run in range(args.runs):
                row: dict[str, dict[str, float]] = {}
                floor_rec = await measure_floor(
                    floor, duration=args.duration, connections=args.connections
                )
                floor_cpu = floor_rec["server_cpu_us_per_request"]
                row["floor"] = {
                    "requests": floor_rec["requests"],
                    "rate": round(floor_rec["rate"], 1),
                    "server_cpu_us_per_request": round(floor_cpu, 1),
                    "errors": floor_rec["errors"],
                }
                order = ("rest", "graphql") if run % 2 == 0 else ("graphql", "rest")
                for api in order:
                    wrk_env = {"BENCH_API": api, "BENCH_TOKENS": str(token_file)}
                    # warm-up: caches filled, code paths hot
                    await run_wrk(
                        server.base_url, "friends.lua", duration=1, connections=8, env=wrk_env
                    )
                    with CpuMeter(server.worker_pids()) as meter:
                        result = await run_wrk(
                            server.base_url,
                            "friends.lua",
                            duration=args.duration,
                            connections=args.connections,
                            env=wrk_env,
                        )
                    cpu = meter.result["server_cpu_s"]
                    row[api] = {
                        "requests": result.requests,
                        "rate": round(result.rate, 1),
                        "p50_ms": round(result.latency_ms.get("p50", 0.0), 2),
                        "p99_ms": round(result.latency_ms.get("p99", 0.0), 2),
                        "server_cpu_s": cpu,
                        "server_cpu_us_per_request": round(cpu / max(result.requests, 1) * 1e6, 1),
                        "over_floor": round(cpu / max(result.requests, 1) * 1e6 / floor_cpu, 2),
                        "errors": result.errors,
                        "machine_busy_cores": meter.result["machine_busy_cores"],
                    }
                runs.append(row)
        finally:
            await floor.stop()
            await server.stop()

    def median(api: str, key: str) -> float:
        return float(statistics.median(r[api][key] for r in runs))

    summary: dict[str, dict[str, float]] = {
        api: {
            "server_cpu_us_per_request": median(api, "server_cpu_us_per_request"),
            "over_floor": median(api, "over_floor"),
            "rate": median(api, "rate"),
            "p99_ms": median(api, "p99_ms"),
            "errors": int(sum(r[api]["errors"] for r in runs)),
        }
        for api in ("rest", "graphql")
    }
    summary["floor"] = {
        "server_cpu_us_per_request": median("floor", "server_cpu_us_per_request"),
        "rate": median("floor", "rate"),
        "errors": int(sum(r["floor"]["errors"] for r in runs)),
    }
    summary["graphql_over_rest_cpu"] = {
        "ratio": round(
            summary["graphql"]["server_cpu_us_per_request"]
            / summary["rest"]["server_cpu_us_per_request"],
            2,
        )
    }
    record = {
        "benchmark": "graphql-friends",
        "stack": args.stack,
        "page": 50,
        "args": vars(args),
        "machine": machine_info(ROOT),
        "summary": summary,
        "runs": runs,
    }
    await asyncio.to_thread(RESULTS.mkdir, parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = RESULTS / f"graphql-friends-{args.stack}-{stamp}.json"
    await asyncio.to_thread(out.write_text, json.dumps(record, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {out.relative_to(RESULTS.parent.parent)}")
    errors = summary["rest"]["errors"] + summary["graphql"]["errors"] + summary["floor"]["errors"]
    return 0 if errors == 0 else 1


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", choices=["embedded", "postgres"], default="embedded")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--users", type=int, default=8, help="accounts whose page is read")
    parser.add_argument("--friends", type=int, default=60, help="friends of each")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(_args(sys.argv[1:]))))
