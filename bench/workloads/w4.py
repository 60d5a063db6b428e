"""W4 — identity: login latency, refresh throughput, token verification cost.

Targets (docs/workloads.md): login p99 ≤ 250 ms at 10 logins/s offered with the DEFAULT argon2id
cost (64 MiB, t=3); ≥ 3,000 refreshes/s; verifying an access token ≤ 20 µs (hot path).

How it runs (bench/README.md has the details):
1. A fresh stack (SQLite data dir, or a new PostgreSQL database + a private Redis prefix).
2. Seeding server: `socius serve` with argon2 lowered to 1 MiB, t=1 ONLY to register the
   seed accounts quickly; each registration is one session with a live refresh token.
   The server is then stopped. Those accounts are never logged in by the bench.
3. Measurement server: `socius serve` with the default argon2 settings. It registers the
   accounts used for login (their hashes are 64 MiB, t=3, checked and recorded).
4. Each run: the framework floor (bench/harness/floor.py), GET /healthz, the database
   floor (PK reads through the driver), login (open loop, 10/s), refresh (wrk, chained
   token rotation), GET /v1/me (wrk), in-process AccessTokens.verify cost.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from bench.harness.dbfloor import pk_read_floor, user_ids
from bench.harness.floor import FloorServer, define_floor_metrics, floor_phase
from bench.harness.machine import machine_info
from bench.harness.measured import server_and_floor
from bench.harness.openloop import open_loop
from bench.harness.options import Options
from bench.harness.profiler import Profiler
from bench.harness.progress import BenchProgress
from bench.harness.publish import publish
from bench.harness.results import RESULTS_DIR, Report
from bench.harness.server import ServerProcess, free_port
from bench.harness.source import Source, export_ref, working_tree
from bench.harness.stack import Stack, fresh_stack
from bench.harness.stats import median
from bench.harness.wrk import run_wrk
from bench.workloads.w4_verify import verify_cost_subprocess
from socius.client import ApiError, AsyncClient

__all__ = ["run"]

ROOT = Path(__file__).resolve().parents[2]
LOGIN_RATE = 10.0  # logins per second offered (docs/workloads.md)
LOGIN_USERS = 10  # accounts the login phase cycles through
POOL_FACTOR = 4  # live refresh tokens per wrk connection (slack for the token pool)
SEED_CONCURRENCY = 16
PAUSE = 1.0  # seconds of quiet between phases

# The seeding server only: cheap hashes so hundreds of accounts register in seconds.
SEED_ARGON2 = {"SOCIUS_ARGON2_MEMORY_KIB": "1024", "SOCIUS_ARGON2_TIME_COST": "1"}
# Both servers: every bench account registers from 127.0.0.1; the per-IP registration
# throttle (100/hour, kept in Redis across restarts on the postgres stack) would refuse
# them. Not on any measured path.
BENCH_ENV = {"SOCIUS_REGISTER_MAX_PER_IP_PER_HOUR": "1000000"}


def run(options: Options) -> int:
    return asyncio.run(_main(options))


def _seed_password(i: int) -> str:
    return f"seed-{i}-Pw!x9"


def _login_password(i: int) -> str:
    return f"login-Secret-{i}-pw"


async def _seed(stack: Stack, source: Source, count: int, workdir: Path) -> list[tuple[str, str]]:
    """Register `count` accounts on a cheap-argon2 server; their (access, refresh) tokens."""
    server = ServerProcess(
        stack.settings_env() | BENCH_ENV | SEED_ARGON2,
        port=free_port(),
        workers=1,
        log_path=workdir / "seed-server.log",
        extra_env=source.env(),
    )
    await server.start()
    try:
        limits = httpx.Limits(max_connections=SEED_CONCURRENCY)
        async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=60) as http:
            gate = asyncio.Semaphore(SEED_CONCURRENCY)

            async def one(i: int) -> tuple[str, str]:
                async with gate:
                    result = await AsyncClient(server.base_url, http=http).register(
                        f"w4s{i:05d}", _seed_password(i)
                    )
                return result.access_token, result.refresh_token

            return list(await asyncio.gather(*(one(i) for i in range(count))))
    finally:
        await server.stop()


async def _register_login_users(base_url: str) -> list[tuple[str, str]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:

        async def one(i: int) -> tuple[str, str]:
            name = f"w4login{i:02d}"
            await AsyncClient(base_url, http=http).register(name, _login_password(i))
            return name, _login_password(i)

        return list(await asyncio.gather(*(one(i) for i in range(LOGIN_USERS))))


async def _password_hash_params(stack: Stack, username: str) -> str:
    """The argon2 parameter string stored for `username` (proof of the measured cost)."""
    query = "SELECT password_hash FROM users WHERE username = "
    if stack.database_url:
        import asyncpg

        conn = await asyncpg.connect(stack.database_url)
        try:
            value = await conn.fetchval(query + "$1", username)
        finally:
            await conn.close()
    else:
        import aiosqlite

        async with aiosqlite.connect(stack.sqlite_path) as db:
            async with db.execute(query + "?", (username,)) as cur:
                row = await cur.fetchone()
            value = row[0] if row else None
    return "$".join(str(value).split("$")[:4]) if value else "?"


async def _login_phase(base_url: str, users: list[tuple[str, str]], duration: float) -> Any:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as http:
        client = AsyncClient(base_url, http=http)

        async def login(i: int) -> str | None:
            name, password = users[i % len(users)]
            try:
                await client.with_token(None).login(name, password)
            except ApiError as exc:
                return f"status {exc.status} {exc.code}"
            return None

        return await open_loop(login, rate=LOGIN_RATE, duration=duration)


async def _fresh_access_tokens(base_url: str, chains: list[str]) -> list[str]:
    """Refresh each /v1/me session once (updating `chains`); its new access tokens."""
    out: list[str] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        client = AsyncClient(base_url, http=http)
        for k, refresh in enumerate(chains):
            result = await client.refresh(refresh)
            chains[k] = result.refresh_token
            out.append(result.access_token)
    return out


def _cpu_warnings(report: Report) -> None:
    """Say so when processes outside the bench took CPU during the load phases."""
    others: dict[str, list[float]] = {}
    for raw in report.runs:
        for phase, data in raw.items():
            if isinstance(data, dict) and "cpu" in data:
                others.setdefault(phase, []).append(data["cpu"]["other_cores"])
    summary = {phase: round(median(v), 2) for phase, v in others.items()}
    report.config["cpu_other_processes_median_cores"] = summary
    # PostgreSQL and Redis are "other" on the postgres stack; only flag the embedded one,
    # and phases where the database does no work.
    busy = {
        p: v
        for p, v in summary.items()
        if v > 0.25 and (report.stack == "embedded" or p in {"healthz", "verify"})
    }
    if busy:
        report.warnings.append(
            "other processes used CPU during the run (median cores per phase: "
            + ", ".join(f"{p} {v}" for p, v in busy.items())
            + "): the machine was shared, these figures are pessimistic"
        )


THROUGHPUT = "throughput (requests/s)"
LATENCY = "latency (ms)"
VERIFY = "token verification (µs per call, in process)"
SERVER_CPU = "server CPU per request (µs, all server threads; robust to a shared machine)"


def _define_metrics(r: Report) -> None:
    lower = {"higher_is_better": False}
    define_floor_metrics(r)
    r.metric("healthz", "GET /healthz", "req/s", THROUGHPUT, is_floor=True)
    r.metric("db", "PK read via driver (database floor)", "req/s", THROUGHPUT, is_floor=True)
    r.metric("me", "GET /v1/me (authenticated)", "req/s", THROUGHPUT)
    r.metric("refresh", "POST /v1/auth/refresh (rotation)", "req/s", THROUGHPUT, target=3000.0)
    r.metric("login_p50", "login p50 @ 10/s", "ms", LATENCY, phase="login", **lower)
    r.metric("login_p99", "login p99 @ 10/s", "ms", LATENCY, phase="login", target=250.0, **lower)
    r.metric("refresh_p99", "refresh p99 (closed loop)", "ms", LATENCY, phase="refresh", **lower)
    r.metric("me_p99", "GET /v1/me p99 (closed loop)", "ms", LATENCY, phase="me", **lower)
    r.metric(
        "verify_hot",
        "AccessTokens.verify, hot (cached)",
        "µs",
        VERIFY,
        phase="verify",
        target=20.0,
        **lower,
    )
    r.metric(
        "verify_cold", "AccessTokens.verify, cold (1st)", "µs", VERIFY, phase="verify", **lower
    )
    r.metric(
        "authenticate", "authenticate, hot (+ revocation)", "µs", VERIFY, phase="verify", **lower
    )
    for key, label in (("healthz", "GET /healthz"), ("refresh", "refresh"), ("me", "GET /v1/me")):
        r.metric(f"cpu_{key}", f"server CPU, {label}", "µs", SERVER_CPU, phase=key, **lower)
    r.metric("cpu_login", "server CPU, login", "µs", SERVER_CPU, phase="login", **lower)
    for key, label in (("healthz", "GET /healthz"), ("refresh", "refresh"), ("me", "GET /v1/me")):
        r.ratio(f"cpu_{key}_floor", f"server CPU, {label} ÷ floor CPU")
    r.ratio("refresh_healthz", "refresh ÷ /healthz")
    r.ratio("me_healthz", "/v1/me ÷ /healthz")
    r.ratio("refresh_db", "refresh ÷ DB floor")
    r.ratio("me_db", "/v1/me ÷ DB floor")


async def _main(o: Options) -> int:
    console = Console(stderr=True)
    started = datetime.now(UTC)
    workdir = RESULTS_DIR / "tmp" / f"w4-{o.stack}-{started:%Y%m%dT%H%M%SZ}"
    source = export_ref(ROOT, o.ref, workdir / "source") if o.ref else working_tree(ROOT)
    per_run_refresh = o.connections * POOL_FACTOR
    me_sessions = max(16, o.connections)
    seed_count = per_run_refresh * o.runs + me_sessions
    report = Report(
        workload="w4",
        stack=o.stack,
        started_at=started,
        machine=machine_info(ROOT),
        config={
            "duration_s": o.duration,
            "runs": o.runs,
            "workers": o.workers,
            "wrk_connections": o.connections,
            "wrk_threads": o.wrk_threads,
            "db_floor_tasks": o.db_tasks,
            "login_rate_offered": LOGIN_RATE,
            "login_accounts": LOGIN_USERS,
            "measured_source": source.description,
            "argon2_measured": "the server's defaults (no SOCIUS_ARGON2_* set)",
            "seeding": {
                "accounts": seed_count,
                "how": "registered on a separate seeding server run with argon2 lowered to "
                "1 MiB, t=1 (each registration = one session with a live refresh token); "
                "that server is stopped and the measurement server runs with default argon2",
                "refresh_tokens_per_run": per_run_refresh,
                "me_sessions": me_sessions,
            },
            "server_settings_changed": BENCH_ENV,
            "wait_quiet_s": o.wait_quiet,
        },
    )
    _define_metrics(report)
    total_phases = 2 + 7 * o.runs
    with BenchProgress(console, total_phases) as progress:
        async with fresh_stack(
            o.stack,
            workdir,
            postgres_admin_url=o.postgres_url,
            redis_url=o.redis_url,
            tag="w4",
        ) as stack:
            async with progress.phase(f"seeding {seed_count} sessions", seed_count / 150):
                seeded = await _seed(stack, source, seed_count, workdir)
            report.machine["stack"] = {"kind": o.stack, **stack.info}
            async with server_and_floor(
                o,
                stack.settings_env() | BENCH_ENV,
                workdir,
                source,
                progress,
                label="measurement server + login accounts",
                expected_s=5,
            ) as (server, floor):
                login_users = await _register_login_users(server.base_url)
                params = await _password_hash_params(stack, login_users[0][0])
                report.config["argon2_stored_for_login_accounts"] = params
                runner = _Runner(o, report, progress, server, stack, source, workdir)
                runner.floor = floor
                runner.login_users = login_users
                runner.ids = await user_ids(
                    sqlite_path=stack.sqlite_path, database_url=stack.database_url
                )
                runner.me_chains = [refresh for _, refresh in seeded[:me_sessions]]
                for run_no in range(o.runs):
                    first = me_sessions + run_no * per_run_refresh
                    tokens = [t for _, t in seeded[first : first + per_run_refresh]]
                    await runner.run(run_no, tokens)

    report.finished_at = datetime.now(UTC)
    _cpu_warnings(report)
    report.notes += [
        "2 cores shared: wrk / the asyncio generators, the server and the database all run "
        "on the same machine, so every rate is lower than on a dedicated server.",
        "login latency is measured from each request's scheduled start (open loop), so "
        "queueing in the server counts; p99 of one run rests on duration*10 samples.",
        "refresh and /v1/me are closed-loop wrk runs: their p99 is at full load, not at a "
        "fixed offered rate.",
        "server CPU per request = CPU time of the server processes (all threads) during the "
        "phase ÷ requests completed; it moves much less than rates when the machine is shared.",
    ]
    publish(report, source, width=132)
    if not o.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if report.total_errors == 0 else 1


class _Runner:
    """One run = every phase once, in the same order, on the same server."""

    def __init__(
        self,
        o: Options,
        report: Report,
        progress: BenchProgress,
        server: ServerProcess,
        stack: Stack,
        source: Source,
        workdir: Path,
    ) -> None:
        self.o = o
        self.report = report
        self.m = report.metrics
        self.progress = progress
        self.server = server
        self.stack = stack
        self.source = source
        self.workdir = workdir
        self.ids: list[int] = []
        self.me_chains: list[str] = []
        self.login_users: list[tuple[str, str]] = []
        self.floor: FloorServer | None = None

    @asynccontextmanager
    async def _phase(
        self, raw: dict[str, Any], key: str, name: str, seconds: float, profile: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """Wait for quiet if asked, show progress, meter the CPU, maybe profile the server."""
        waited = await self.progress.wait_for_quiet(self.o.wait_quiet)
        record: dict[str, Any] = {}
        profiler: Profiler | None = None
        if profile and self.o.profile and raw["run"] == 1:
            out = RESULTS_DIR / "tmp" / "profiles" / f"{self.report.stem}-{key}.folded"
            profiler = Profiler(self.server.worker_pids()[0], out, seconds - 1)
        async with self.progress.phase(name, seconds, server_pids=self.server.pids()) as cpu:
            if profiler is not None:
                async with profiler:
                    yield record
            else:
                yield record
        raw[key] = record
        record["cpu"] = cpu.result
        record["waited_for_quiet_s"] = waited
        if profiler is not None:
            record["profile"] = profiler.summary()
        await asyncio.sleep(PAUSE)

    def _cpu_per_request(self, key: str, record: dict[str, Any], requests: int) -> None:
        per = record["cpu"]["server_cpu_s"] / requests * 1e6 if requests else float("nan")
        record["server_cpu_us_per_request"] = per
        self.m[f"cpu_{key}"].add(per, record.get("errors", 0))

    async def _wrk(
        self, raw: dict[str, Any], key: str, name: str, script: str, tokens: Path | None
    ) -> dict[str, Any]:
        o = self.o
        async with self._phase(raw, key, name, o.duration, profile=key != "healthz") as record:
            res = await run_wrk(
                self.server.base_url,
                script,
                duration=o.duration,
                connections=o.connections,
                threads=o.wrk_threads,
                env={"BENCH_TOKENS": str(tokens)} if tokens else None,
            )
            record.update(res.to_json())
        self.m[key].add(res.rate, res.errors)
        if f"{key}_p99" in self.m:
            self.m[f"{key}_p99"].add(res.latency_ms["p99"], res.errors)
        self._cpu_per_request(key, record, res.requests)
        return record

    async def run(self, run_no: int, refresh_tokens: list[str]) -> None:
        o, m = self.o, self.m
        self.progress.set_overall(f"run {run_no + 1}/{o.runs}")
        raw: dict[str, Any] = {"run": run_no + 1}

        assert self.floor is not None
        floor_cpu = await floor_phase(o, self.report, self.progress, self.floor, raw)
        await asyncio.sleep(PAUSE)
        await self._wrk(raw, "healthz", "wrk GET /healthz", "healthz.lua", None)

        async with self._phase(raw, "db_floor", "database floor: PK reads", o.duration) as rec:
            rec.update(
                await pk_read_floor(
                    self.ids,
                    duration=o.duration,
                    tasks=o.db_tasks,
                    sqlite_path=self.stack.sqlite_path,
                    database_url=self.stack.database_url,
                )
            )
        m["db"].add(rec["rate"], rec["errors"])

        name = f"login: open loop {LOGIN_RATE:.0f}/s"
        async with self._phase(raw, "login", name, o.duration, profile=True) as rec:
            result = await _login_phase(self.server.base_url, self.login_users, o.duration)
            rec.update(result.to_json())
        lat = rec["latency_ms"]
        m["login_p50"].add(lat.get("p50", float("nan")), result.errors)
        m["login_p99"].add(lat.get("p99", float("nan")), result.errors)
        self._cpu_per_request("login", rec, result.ok)

        tokens_file = self.workdir / f"refresh-{run_no + 1}.txt"
        tokens_file.write_text("\n".join(refresh_tokens) + "\n")
        name = "refresh: wrk, chained rotation"
        await self._wrk(raw, "refresh", name, "refresh.lua", tokens_file)

        access = await _fresh_access_tokens(self.server.base_url, self.me_chains)
        me_file = self.workdir / f"access-{run_no + 1}.txt"
        me_file.write_text("\n".join(access) + "\n")
        await self._wrk(raw, "me", "wrk GET /v1/me", "me.lua", me_file)

        async with self._phase(raw, "verify", "AccessTokens.verify in process", 3) as rec:
            rec.update(await verify_cost_subprocess(self.stack.settings_env(), self.source.env()))
        m["verify_hot"].add(rec["hot_us"], rec["errors"])
        m["verify_cold"].add(rec["cold_us"], rec["errors"])
        m["authenticate"].add(rec["authenticate_us"], rec["errors"])

        ratios, last = self.report.ratios, {k: v.values[-1] for k, v in m.items() if v.values}
        for key in ("healthz", "refresh", "me"):
            ratios[f"cpu_{key}_floor"].values.append(last[f"cpu_{key}"] / floor_cpu)
        ratios["refresh_healthz"].values.append(last["refresh"] / last["healthz"])
        ratios["me_healthz"].values.append(last["me"] / last["healthz"])
        ratios["refresh_db"].values.append(last["refresh"] / last["db"])
        ratios["me_db"].values.append(last["me"] / last["db"])
        self.report.runs.append(raw)
