"""W0 — the request path: server CPU per request of the cheapest requests, against the floor.

Targets (issue 9, docs/workloads.md), server CPU per request ÷ the framework floor's, same
run, one worker: GET /healthz ≤ 1.5x, GET /v1/me ≤ 3x, warm GET /v1/users/{id} ≤ 2.5x,
warm GET /v1/friends (a page of 50) ≤ 4x; on both stacks.

How it runs:
1. A fresh stack; `socius serve` (one worker) and the floor (bench/harness/floor.py: a bare
   Litestar + msgspec app on the same Granian settings) side by side, each idle while the
   other is measured.
2. Seeding through the API: READERS accounts that share the same FRIENDS friends (argon2
   lowered and the friend-request limit lifted for the seeding only: neither is on a
   measured path).
3. Each run: the floor, then every endpoint with wrk (lua/paths.lua: token + path lines);
   each phase is preceded by a second of unmeasured load (caches warm, code paths hot).
   Server CPU = utime + stime of the server's processes (/proc) ÷ requests completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from bench.harness.floor import (
    SERVER_CPU,
    THROUGHPUT,
    FloorServer,
    define_floor_metrics,
    floor_phase,
)
from bench.harness.machine import machine_info
from bench.harness.measured import server_and_floor
from bench.harness.options import Options
from bench.harness.profiler import Profiler
from bench.harness.progress import BenchProgress
from bench.harness.publish import publish
from bench.harness.results import RESULTS_DIR, Report
from bench.harness.server import ServerProcess
from bench.harness.source import export_ref, working_tree
from bench.harness.stack import fresh_stack
from bench.harness.wrk import run_wrk

__all__ = ["run"]

ROOT = Path(__file__).resolve().parents[2]
READERS = 8  # accounts whose requests are cycled through
FRIENDS = 50  # friends each reader has (one full page)
PASSWORD = "w0-Secret-pw-1"  # noqa: S105 (a bench account's)
SEED_ENV = {
    "SOCIUS_ARGON2_MEMORY_KIB": "1024",
    "SOCIUS_ARGON2_TIME_COST": "1",
    "SOCIUS_LIMIT_FRIEND_REQUESTS": "0",
    "SOCIUS_REGISTER_MAX_PER_IP_PER_HOUR": "1000000",
}
PAUSE = 0.5

# key, label, target (CPU per request ÷ the floor)
ENDPOINTS: tuple[tuple[str, str, float], ...] = (
    ("healthz", "GET /healthz", 1.5),
    ("me", "GET /v1/me", 3.0),
    ("user", "GET /v1/users/{id} (warm)", 2.5),
    ("friends", "GET /v1/friends?limit=50 (50 friends, warm)", 4.0),
)


def run(options: Options) -> int:
    return asyncio.run(_main(options))


async def _seed(base_url: str) -> list[tuple[str, str, list[str]]]:
    """READERS accounts with the same FRIENDS friends: (access token, user id, friend ids)."""
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        gate = asyncio.Semaphore(16)

        async def register(name: str) -> tuple[str, str]:
            async with gate:
                r = await http.post(
                    "/v1/auth/register", json={"username": name, "password": PASSWORD}
                )
            r.raise_for_status()
            body = r.json()
            return body["access_token"], body["user"]["id"]

        readers = await asyncio.gather(*(register(f"w0r{k:02d}") for k in range(READERS)))
        friends = await asyncio.gather(*(register(f"w0f{k:03d}") for k in range(FRIENDS)))

        async def befriend(reader: tuple[str, str], friend: tuple[str, str]) -> None:
            async with gate:
                r = await http.post(
                    "/v1/friends/requests",
                    json={"user_id": friend[1]},
                    headers={"Authorization": f"Bearer {reader[0]}"},
                )
                r.raise_for_status()
                r = await http.post(
                    f"/v1/friends/requests/{reader[1]}/accept",
                    headers={"Authorization": f"Bearer {friend[0]}"},
                )
                r.raise_for_status()

        for reader in readers:
            await asyncio.gather(*(befriend(reader, f) for f in friends))
        ids = [f[1] for f in friends]
        return [(token, uid, ids) for token, uid in readers]


def _request_files(workdir: Path, readers: list[tuple[str, str, list[str]]]) -> dict[str, Path]:
    lines: dict[str, list[str]] = {"me": [], "user": [], "friends": []}
    for token, _uid, _ids in readers:
        lines["me"].append(f"{token} /v1/me")
        lines["friends"].append(f"{token} /v1/friends?limit=50")
    for j in range(FRIENDS):  # interleaved: consecutive requests differ in caller and id
        for token, _uid, ids in readers:
            lines["user"].append(f"{token} /v1/users/{ids[j]}")
    files = {}
    for key, rows in lines.items():
        path = workdir / f"{key}.txt"
        path.write_text("\n".join(rows) + "\n")
        files[key] = path
    return files


def _define_metrics(r: Report) -> None:
    lower = {"higher_is_better": False}
    define_floor_metrics(r)
    for key, label, target in ENDPOINTS:
        r.metric(key, label, "req/s", THROUGHPUT)
        r.metric(f"cpu_{key}", f"server CPU, {label}", "µs", SERVER_CPU, phase=key, **lower)
        r.ratio(f"{key}_floor", f"{label}: CPU ÷ floor CPU (target ≤ {target:g})")


async def _main(o: Options) -> int:
    console = Console(stderr=True)
    started = datetime.now(UTC)
    workdir = RESULTS_DIR / "tmp" / f"w0-{o.stack}-{started:%Y%m%dT%H%M%SZ}"
    source = export_ref(ROOT, o.ref, workdir / "source") if o.ref else working_tree(ROOT)
    report = Report(
        workload="w0",
        stack=o.stack,
        started_at=started,
        machine=machine_info(ROOT),
        config={
            "duration_s": o.duration,
            "runs": o.runs,
            "workers": o.workers,
            "server_settings": o.server_env(),
            "wrk_connections": o.connections,
            "wrk_threads": o.wrk_threads,
            "measured_source": source.description,
            "readers": READERS,
            "friends_each": FRIENDS,
            "server_settings_changed": SEED_ENV,
            "wait_quiet_s": o.wait_quiet,
        },
    )
    _define_metrics(report)
    total_phases = 1 + (1 + len(ENDPOINTS)) * o.runs
    with BenchProgress(console, total_phases) as progress:
        async with fresh_stack(
            o.stack, workdir, postgres_admin_url=o.postgres_url, redis_url=o.redis_url, tag="w0"
        ) as stack:
            report.machine["stack"] = {"kind": o.stack, **stack.info}
            async with server_and_floor(
                o,
                stack.settings_env() | SEED_ENV,
                workdir,
                source,
                progress,
                label="servers + seeding",
                expected_s=20,
            ) as (server, floor):
                readers = await _seed(server.base_url)
                files = _request_files(workdir, readers)
                for run_no in range(o.runs):
                    await _one_run(o, report, progress, server, floor, files, run_no)
    report.finished_at = datetime.now(UTC)
    report.notes += [
        "server CPU per request = CPU time of the server processes (all threads) during the "
        "phase ÷ requests completed; ratios are taken within each run, then the median.",
        "2 cores shared by wrk, the servers and the database: rates are lower than on a "
        "dedicated machine; the CPU figures and ratios are what the targets are judged on.",
    ]
    publish(report, source, width=140)
    if not o.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if report.total_errors == 0 else 1


async def _one_run(
    o: Options,
    report: Report,
    progress: BenchProgress,
    server: ServerProcess,
    floor: FloorServer,
    files: dict[str, Path],
    run_no: int,
) -> None:
    m = report.metrics
    progress.set_overall(f"run {run_no + 1}/{o.runs}")
    raw: dict[str, Any] = {"run": run_no + 1}
    floor_cpu = await floor_phase(o, report, progress, floor, raw)
    await asyncio.sleep(PAUSE)

    for key, label, _target in ENDPOINTS:
        script = "healthz.lua" if key == "healthz" else "paths.lua"
        env = None if key == "healthz" else {"BENCH_TOKENS": str(files[key])}
        await progress.wait_for_quiet(o.wait_quiet)
        await run_wrk(server.base_url, script, duration=1, connections=o.connections, env=env)
        profiler: Profiler | None = None
        if o.profile and run_no == 0 and key != "healthz":
            out = RESULTS_DIR / "tmp" / "profiles" / f"{report.stem}-{key}.folded"
            profiler = Profiler(server.worker_pids()[0], out, o.duration - 1)
        async with (
            progress.phase(f"wrk {label}", o.duration, server_pids=server.pids()) as cpu,
            profiler if profiler is not None else contextlib.nullcontext(),
        ):
            res = await run_wrk(
                server.base_url,
                script,
                duration=o.duration,
                connections=o.connections,
                threads=o.wrk_threads,
                env=env,
            )
        record = res.to_json()
        record["cpu"] = cpu.result
        per = cpu.result["server_cpu_s"] / res.requests * 1e6 if res.requests else float("nan")
        record["server_cpu_us_per_request"] = per
        record["ratio_to_floor"] = per / floor_cpu
        if profiler is not None:
            record["profile"] = profiler.summary()
        raw[key] = record
        m[key].add(res.rate, res.errors)
        m[f"cpu_{key}"].add(per, res.errors)
        report.ratios[f"{key}_floor"].values.append(per / floor_cpu)
        await asyncio.sleep(PAUSE)
    report.runs.append(raw)
