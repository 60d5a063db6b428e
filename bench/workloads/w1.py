"""W1 — social graph API (LinkBench-like operation mix), see docs/workloads.md and bench/README.md.

Targets (issue 9, docs/workloads.md): PostgreSQL + Redis >= 2,500 requests/s with 2 workers,
embedded (SQLite) >= 3,000 requests/s; p99 <= 100 ms at half that rate (open loop); server
CPU per request <= 8x (PostgreSQL) / 6x (embedded) the framework floor's; 0 errors; the
server's RSS flat over a 5-minute run (--duration 300).

How it runs:
1. A fresh stack (SQLite data dir, or a new PostgreSQL database + a private Redis prefix).
2. Seed (w1_seed.py): 100,000 users, power-law friendships (mean 50, max ~5,000), follows
   (mean 20), 10% private, written directly with bulk inserts; cached between bench runs.
3. Callers (w1_mix.py): 5,000 sessions inserted directly, access tokens issued with the
   server's own signing key (AccessTokens on the same database).
4. The measurement server (`socius serve`, default settings, `--workers`).
5. A warm-up (not measured): the W1 mix for --warmup s (default 30), so that the caches
   hold what a running service's do (Zipf(0.8) over 100,000 users: after a few seconds
   most requests still miss).
6. Each run: the framework floor (bench/harness/floor.py), GET /healthz, database floor
   (PK reads through the driver), each for min(--duration, 30) s; then the W1 mix for
   --duration s, closed loop (wrk + bench/lua/w1.lua): its rate R, latency at full load,
   server CPU, the cache hit ratios of that phase only (one worker's /metrics counters,
   before and after, over one kept-alive connection) and the RSS of every server process
   (bench/harness/rss.py: start, end, max, slope); then the W1 mix offered at R/2 at a
   constant arrival rate for min(--duration, 60) s (w1_openloop.py: no coordinated
   omission), its p50/p99/p99.9 against the 100 ms target.
7. With --profile (diagnostics, not in the medians): one more W1 phase with py-spy on the
   first Granian worker and /proc CPU per thread, then each operation alone for 5 s (its
   rate and server CPU per request); the summary goes to
   bench/results/w1-profile-<stack>[-workers<N>].txt, the folded stacks to
   bench/results/tmp/profiles/.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console

from bench.harness.dbfloor import pk_read_floor
from bench.harness.floor import FloorServer, define_floor_metrics, floor_phase
from bench.harness.machine import machine_info
from bench.harness.measured import server_and_floor
from bench.harness.options import Options
from bench.harness.profiler import Profiler
from bench.harness.progress import BenchProgress
from bench.harness.publish import publish
from bench.harness.pyspy_text import thread_cpu, thread_cpu_delta
from bench.harness.results import RESULTS_DIR, Report
from bench.harness.rss import RssSampler
from bench.harness.server import ServerProcess
from bench.harness.source import export_ref, working_tree
from bench.harness.stack import Stack, fresh_stack
from bench.harness.stats import median
from bench.harness.wrk import run_wrk
from bench.workloads import w1_mix, w1_seed
from bench.workloads.w1_openloop import run_open_loop
from bench.workloads.w1_profile import write_profile_summary
from socius.bootstrap import build
from socius.domain.ids import IdGenerator
from socius.settings import load_settings

__all__ = ["run"]

ROOT = Path(__file__).resolve().parents[2]
PAUSE = 1.0
SLOTS_PER_SECOND = 6_000  # slot-file lines per second of load: 2x the best target (no wrap)
SHORT_PHASE_MAX_S = 30.0  # the floor, /healthz and DB floor phases: min(--duration, this)
HALF_RATE_MAX_S = 60.0  # the open-loop phase at R/2: min(--duration, this)
RSS_INTERVAL_S = 5.0
TOKEN_MAX_AGE = 600.0  # re-issue the callers' tokens when older (their ttl is 900 s)
PROFILE_SECONDS = 10
OP_SECONDS = 5.0  # --profile: each operation alone, for its cost
OP_LABELS = {
    "F": "GET /v1/friends?limit=50",
    "L": "GET /v1/users/{id}/friends?limit=50",
    "P": "GET /v1/users/{id}",
    "R": "GET /v1/relationships?ids= (10)",
    "M": "GET /v1/users/{id}/mutual-friends",
    "S": "GET /v1/friends/suggestions",
    "FO": "POST /v1/users/{id}/follow",
    "UF": "DELETE /v1/users/{id}/follow",
    "FR": "friend request + accept (alternating)",
    "E": "PATCH /v1/me",
}
TARGET_RATE = {"postgres": 2_500.0, "embedded": 3_000.0}  # postgres: with 2 workers
HALF_RATE_P99_MS = 100.0

THROUGHPUT = "throughput (requests/s)"
LATENCY = "W1 latency (ms, closed loop, full load)"
HALF_LATENCY = "W1 latency (ms, open loop at half the closed-loop rate)"
CACHE = "cache hit ratio (%, W1 closed-loop phase only, one worker's counters)"
MEMORY = "server RSS (MiB, all server processes, during the W1 closed-loop phase)"
SERVER_CPU = "server CPU per request (µs, all server threads; robust to a shared machine)"


# The measurement server: W1's Zipf-chosen callers send friend requests at rates no person
# does (the top caller a few a second); the per-user limit (50/hour by default) would
# refuse them. It still runs on every request (its cost is measured), it just never says no.
BENCH_ENV = {"SOCIUS_LIMIT_FRIEND_REQUESTS": "1000000000"}


def run(options: Options) -> int:
    try:  # uvloop: the open-loop generator runs in this process
        import uvloop
    except ImportError:
        return asyncio.run(_main(options))
    return uvloop.run(_main(options))


def _define_metrics(r: Report, stack: str) -> None:
    lower = {"higher_is_better": False}
    define_floor_metrics(r)
    r.metric("healthz", "GET /healthz", "req/s", THROUGHPUT, is_floor=True)
    r.metric("db", "PK read via driver (database floor)", "req/s", THROUGHPUT, is_floor=True)
    r.metric("w1", "W1 mix", "req/s", THROUGHPUT, target=TARGET_RATE[stack])
    r.metric("w1_p50", "W1 p50", "ms", LATENCY, phase="w1", **lower)
    r.metric("w1_p90", "W1 p90", "ms", LATENCY, phase="w1", **lower)
    r.metric("w1_p99", "W1 p99", "ms", LATENCY, phase="w1", **lower)
    r.metric("w1_p999", "W1 p99.9", "ms", LATENCY, phase="w1", **lower)
    half = {"phase": "w1_half", **lower}
    r.metric("w1_half", "W1 at R/2: achieved rate", "req/s", THROUGHPUT, phase="w1_half")
    r.metric("w1_half_p50", "W1 at R/2: p50", "ms", HALF_LATENCY, **half)
    r.metric("w1_half_p99", "W1 at R/2: p99", "ms", HALF_LATENCY, target=HALF_RATE_P99_MS, **half)
    r.metric("w1_half_p999", "W1 at R/2: p99.9", "ms", HALF_LATENCY, **half)
    mem = {"phase": "w1", **lower}
    r.metric("rss_start", "RSS at the start of the W1 phase", "MiB", MEMORY, **mem)
    r.metric("rss_end", "RSS at the end of the W1 phase", "MiB", MEMORY, **mem)
    r.metric("rss_max", "RSS max during the W1 phase", "MiB", MEMORY, **mem)
    r.metric("rss_slope", "RSS slope (least squares)", "MiB/min", MEMORY, **mem)
    r.metric("rss_anon_start", "anonymous RSS at the start of the W1 phase", "MiB", MEMORY, **mem)
    r.metric("rss_anon_end", "anonymous RSS at the end of the W1 phase", "MiB", MEMORY, **mem)
    r.metric("rss_anon_slope", "anonymous RSS slope", "MiB/min", MEMORY, **mem)
    if stack == "postgres":
        r.metric(
            "pg_connects",
            "PostgreSQL connections opened per 1,000 W1 requests",
            "",
            "PostgreSQL connections opened (pg_stat_database.sessions, W1 closed-loop phase)",
            **mem,
        )
        r.metric(
            "pg_cpu_w1",
            "PostgreSQL CPU, W1 mix",
            "µs",
            "PostgreSQL CPU per request (µs, its processes, /proc)",
            phase="w1",
            **lower,
        )
    r.metric("cpu_healthz", "server CPU, GET /healthz", "µs", SERVER_CPU, phase="healthz", **lower)
    r.metric("cpu_w1", "server CPU, W1 mix", "µs", SERVER_CPU, phase="w1", **lower)
    cpu_target = {"postgres": 8, "embedded": 6}[stack]
    r.ratio("cpu_w1_floor", f"server CPU, W1 ÷ floor CPU (target ≤ {cpu_target})")
    r.ratio("cpu_healthz_floor", "server CPU, /healthz ÷ floor CPU (target ≤ 1.5)")
    r.ratio("w1_healthz", "W1 ÷ /healthz")
    r.ratio("w1_db", "W1 ÷ DB floor")


_METRIC_LINE = re.compile(r'^cache_requests_total\{cache="([^"]+)",result="([^"]+)"\} ([0-9.e+]+)$')


async def _cache_counts(http: httpx.AsyncClient) -> dict[str, float]:
    """cache_requests_total by cache:result, as the worker `http`'s connection reaches
    counts them."""
    text = (await http.get("/metrics")).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _METRIC_LINE.match(line)
        if m:
            out[f"{m[1]}:{m[2]}"] = float(m[3])
    return out


def _hit_ratios(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    if any(v < 0 for v in delta.values()):  # the connection was re-opened to another worker
        return {"error": "counters from two different workers: no ratio"}
    out: dict[str, Any] = {}
    for cache in sorted({k.split(":")[0] for k in delta}):
        hit, miss = delta.get(f"{cache}:hit", 0.0), delta.get(f"{cache}:miss", 0.0)
        if hit + miss > 0:
            out[cache] = {
                "hits": int(hit),
                "misses": int(miss),
                "hit_ratio": round(hit / (hit + miss), 4),
            }
    return out


async def _pg_sessions(database_url: str) -> int | None:
    """Connections ever opened to the bench database (PostgreSQL >= 14; None otherwise).
    The statistics are flushed within a second or so: a phase's delta is close, not exact."""
    if not database_url:
        return None
    conn = await asyncpg.connect(database_url)
    try:
        value = await conn.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        )
    except asyncpg.PostgresError:
        return None
    finally:
        await conn.close()
    return int(value) if value is not None else None


async def _ping(http: httpx.AsyncClient) -> None:
    """Keep `http`'s connection (and so its worker) alive through a long phase."""
    while True:
        await asyncio.sleep(5.0)
        await http.get("/healthz")


class _Tokens:
    """The callers' access tokens, issued with the server's key (AccessTokens.issue)."""

    def __init__(self, stack: Stack, callers: w1_mix.Callers, graph: w1_seed.Graph) -> None:
        self.stack = stack
        self.user_ids = [int(graph.ids[u]) for u in callers.users.tolist()]
        ids = IdGenerator(1021)
        self.session_ids = [ids.next_id() for _ in self.user_ids]
        self._tokens: Any = None
        self.issued_at = 0.0

    async def setup(self) -> None:
        await w1_seed.insert_sessions(self.stack, self.user_ids, self.session_ids)
        wiring = build(load_settings(environ=self.stack.settings_env()))
        try:
            await wiring.container.tokens.load_keys()  # creates the key the server will use
        finally:
            await wiring.cache.close()
            await wiring.database.dispose()
        self._tokens = wiring.container.tokens

    def write(self, path: Path) -> Path:
        """Fresh tokens to `path` when the last ones are getting old."""
        if time.monotonic() - self.issued_at > TOKEN_MAX_AGE or not path.exists():
            issue = self._tokens.issue
            lines = [
                f"{uid} {issue(uid, sid)}"
                for uid, sid in zip(self.user_ids, self.session_ids, strict=True)
            ]
            path.write_text("\n".join(lines) + "\n")
            self.issued_at = time.monotonic()
        return path


def _database_cpu_per_request(cpu: dict[str, Any], requests: int) -> float:
    """PostgreSQL's CPU (all its processes on this machine, bench/harness/cpu.py) per
    request of the phase, µs."""
    seconds = cpu.get("postgres_cores", float("nan")) * cpu["elapsed_s"]
    return seconds / requests * 1e6 if requests else float("nan")


def _cpu_warnings(report: Report) -> None:
    others: dict[str, list[float]] = {}
    for raw in report.runs:
        for phase, data in raw.items():
            if isinstance(data, dict) and "cpu" in data:
                others.setdefault(phase, []).append(data["cpu"]["other_cores"])
    summary = {phase: round(median(v), 2) for phase, v in others.items()}
    report.config["cpu_other_processes_median_cores"] = summary
    busy = {
        p: v
        for p, v in summary.items()
        if v > 0.25 and (report.stack == "embedded" or p == "healthz")
    }
    if busy:
        report.warnings.append(
            "other processes used CPU during the run (median cores per phase: "
            + ", ".join(f"{p} {v}" for p, v in busy.items())
            + "): the machine was shared, these figures are pessimistic"
        )


async def _main(o: Options) -> int:
    console = Console(stderr=True)
    started = datetime.now(UTC)
    workdir = RESULTS_DIR / "tmp" / f"w1-{o.stack}-{started:%Y%m%dT%H%M%SZ}"
    workdir.mkdir(parents=True, exist_ok=True)
    source = export_ref(ROOT, o.ref, workdir / "source") if o.ref else working_tree(ROOT)
    params = w1_seed.SeedParams.from_env()
    slots_per_run = max(60_000, int(o.duration * SLOTS_PER_SECOND))
    report = Report(
        workload="w1",
        stack=o.stack,
        started_at=started,
        machine=machine_info(ROOT),
        config={
            "duration_s": o.duration,
            "warmup_s": o.warmup,
            "short_phases_s": min(o.duration, SHORT_PHASE_MAX_S),
            "half_rate_s": min(o.duration, HALF_RATE_MAX_S),
            "rss_interval_s": RSS_INTERVAL_S,
            "runs": o.runs,
            "workers": o.workers,
            "server_settings": o.server_env(),
            "wrk_connections": o.connections,
            "wrk_threads": o.wrk_threads,
            "db_floor_tasks": o.db_tasks,
            "measured_source": source.description,
            "mix": w1_mix.MIX,
            "callers": {
                "sessions": w1_mix.SESSIONS,
                "caller_skew": f"Zipf({w1_mix.ZIPF_S}) over the sessions",
                "target_skew": f"Zipf({w1_mix.ZIPF_S}) over all users (random ranks)",
                "tokens": "sessions rows inserted directly; access tokens from "
                "AccessTokens.issue with the server's signing key (no login, no argon2)",
            },
            "slots_per_run": slots_per_run,
            "wait_quiet_s": o.wait_quiet,
        },
    )
    _define_metrics(report, o.stack)
    code = 1
    async with fresh_stack(
        o.stack, workdir, postgres_admin_url=o.postgres_url, redis_url=o.redis_url, tag="w1"
    ) as stack:
        report.machine["stack"] = {"kind": o.stack, **stack.info}
        seeded = await w1_seed.prepare(stack, params, console, admin_url=o.postgres_url)
        report.config["seeding"] = seeded.info
        console.log(
            f"seeded database ready: {'from cache' if seeded.info['from_cache'] else 'seeded'} "
            f"in {seeded.info['total_s']} s ({seeded.info['size_mib']} MiB)"
        )
        graph = seeded.graph
        callers = w1_mix.choose_callers(graph, seed=params.rng_seed + 1)
        tokens = _Tokens(stack, callers, graph)
        await tokens.setup()
        total_phases = 2 + 5 * o.runs + (1 + len(w1_mix.MIX) if o.profile else 0)
        with BenchProgress(console, total_phases) as progress:
            async with server_and_floor(
                o,
                stack.settings_env() | BENCH_ENV,
                workdir,
                source,
                progress,
                label="measurement server",
                expected_s=5,
            ) as (server, floor):
                runner = _Runner(
                    o, report, progress, server, stack, workdir, graph, callers, tokens
                )
                runner.floor = floor
                await runner.warm_up()
                for run_no in range(o.runs):
                    await runner.run(run_no)
                if o.profile:
                    try:
                        await runner.profile()
                    except Exception as exc:  # diagnostics: never lose the measured runs
                        console.print_exception()
                        report.warnings.append(f"profile / per-op diagnostics failed: {exc!r}")
        report.finished_at = datetime.now(UTC)
        _cpu_warnings(report)
        report.notes += [
            "2 cores shared: wrk, the server and the database all run on the same machine.",
            "W1 is a closed-loop wrk run: its latency percentiles are at full load. "
            "'W1 at R/2' offers half that run's closed-loop rate at a constant arrival rate "
            "(open loop, latency from each request's scheduled start).",
            "RSS: VmRSS summed over the Granian main process and its workers, sampled every "
            f"{RSS_INTERVAL_S:.0f} s of the W1 closed-loop phase (per process in runs[].w1.rss).",
            "Errors = non-2xx answers (counted in Lua) + wrk socket errors; every request "
            "in the mix is expected to succeed.",
            "server CPU per request = server processes' CPU time during the phase ÷ requests.",
        ]
        publish(report, source, width=132)
        code = 0 if report.total_errors == 0 else 1
    if not o.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return code


class _Runner:
    def __init__(
        self,
        o: Options,
        report: Report,
        progress: BenchProgress,
        server: ServerProcess,
        stack: Stack,
        workdir: Path,
        graph: w1_seed.Graph,
        callers: w1_mix.Callers,
        tokens: _Tokens,
    ) -> None:
        self.o = o
        self.report = report
        self.m = report.metrics
        self.progress = progress
        self.server = server
        self.stack = stack
        self.workdir = workdir
        self.graph = graph
        self.callers = callers
        self.tokens = tokens
        self.ids: list[int] = [int(x) for x in graph.ids.tolist()]
        self.seed = w1_seed.SeedParams.from_env().rng_seed + 100
        self._spy_seconds = float(PROFILE_SECONDS)
        self.floor: FloorServer | None = None

    def _slots(self, name: str, seed: int, seconds: float) -> tuple[Path, dict[str, int]]:
        path = self.workdir / f"slots-{name}.txt"
        count = max(60_000, int(seconds * SLOTS_PER_SECOND))
        ops = w1_mix.write_slots(self.graph, self.callers, path, count=count, seed=seed)
        return path, ops

    async def _w1(self, name: str, seed: int, seconds: float) -> tuple[Any, dict[str, Any]]:
        slots, ops = await asyncio.to_thread(self._slots, name, seed, seconds)
        res, stats = await self._wrk_mix(slots, f"ops-{name}.json", seconds)
        stats["slots"] = ops
        return res, stats

    async def _wrk_mix(self, slots: Path, stats_name: str, seconds: float) -> tuple[Any, Any]:
        """wrk + w1.lua over ``slots`` for ``seconds``: the result and w1.lua's per-op counts."""
        stats_file = self.workdir / stats_name
        stats_file.unlink(missing_ok=True)
        res = await run_wrk(
            self.server.base_url,
            "w1.lua",
            duration=seconds,
            connections=self.o.connections,
            threads=self.o.wrk_threads,
            env={
                "BENCH_TOKENS": str(self.tokens.write(self.workdir / "tokens.txt")),
                "BENCH_SLOTS": str(slots),
                "BENCH_ROUTES": str(w1_mix.write_routes(self.workdir / "routes.tsv")),
                "BENCH_W1_STATS": str(stats_file),
            },
        )
        return res, json.loads(stats_file.read_text()) if stats_file.exists() else {}

    async def warm_up(self) -> None:
        seconds = self.o.warmup
        info: dict[str, Any] = {"seconds": seconds}
        if seconds > 0:
            async with (
                RssSampler(self.server.pids, RSS_INTERVAL_S) as rss,
                self.progress.phase("warm-up: W1 mix (not measured)", seconds),
            ):
                res, stats = await self._w1("warmup", self.seed, seconds)
            info |= {
                "requests": res.requests,
                "rate": res.rate,
                "errors": res.errors,
                "ops": stats,
                "rss": rss.result,
            }
        self.report.config["warm_up"] = info
        await asyncio.sleep(PAUSE)

    async def _phase_start(self) -> float:
        return await self.progress.wait_for_quiet(self.o.wait_quiet)

    def _cpu_per_request(
        self, key: str, record: dict[str, Any], requests: int, errors: int
    ) -> None:
        per = record["cpu"]["server_cpu_s"] / requests * 1e6 if requests else float("nan")
        record["server_cpu_us_per_request"] = per
        self.m[f"cpu_{key}"].add(per, errors)
        if key == "w1" and self.report.stack == "postgres":
            pg = _database_cpu_per_request(record["cpu"], requests)
            record["postgres_cpu_us_per_request"] = pg
            self.m["pg_cpu_w1"].add(pg, errors)

    async def run(self, run_no: int) -> None:
        o, m = self.o, self.m
        self.progress.set_overall(f"run {run_no + 1}/{o.runs}")
        raw: dict[str, Any] = {"run": run_no + 1}

        assert self.floor is not None
        short = replace(o, duration=min(o.duration, SHORT_PHASE_MAX_S))
        floor_cpu = await floor_phase(short, self.report, self.progress, self.floor, raw)
        await asyncio.sleep(PAUSE)

        waited = await self._phase_start()
        async with self.progress.phase(
            "wrk GET /healthz", short.duration, server_pids=self.server.pids()
        ) as cpu:
            res = await run_wrk(
                self.server.base_url,
                "healthz.lua",
                duration=short.duration,
                connections=o.connections,
                threads=o.wrk_threads,
            )
        rec = {**res.to_json(), "cpu": cpu.result, "waited_for_quiet_s": waited}
        raw["healthz"] = rec
        m["healthz"].add(res.rate, res.errors)
        self._cpu_per_request("healthz", rec, res.requests, res.errors)
        await asyncio.sleep(PAUSE)

        waited = await self._phase_start()
        async with self.progress.phase(
            "database floor: PK reads", short.duration, server_pids=self.server.pids()
        ) as cpu:
            db = await pk_read_floor(
                self.ids,
                duration=short.duration,
                tasks=o.db_tasks,
                sqlite_path=self.stack.sqlite_path,
                database_url=self.stack.database_url,
            )
        raw["db_floor"] = {**db, "cpu": cpu.result, "waited_for_quiet_s": waited}
        m["db"].add(db["rate"], db["errors"])
        await asyncio.sleep(PAUSE)

        waited = await self._phase_start()
        # one kept-alive connection (pinged during the phase): one worker's counters
        async with httpx.AsyncClient(base_url=self.server.base_url, timeout=10) as scrape:
            before = await _cache_counts(scrape)
            sessions_before = await _pg_sessions(self.stack.database_url)
            keep_alive = asyncio.create_task(_ping(scrape))
            async with (
                RssSampler(self.server.pids, RSS_INTERVAL_S) as rss,
                self.progress.phase(
                    "W1 mix: wrk (closed loop)", o.duration, server_pids=self.server.pids()
                ) as cpu,
            ):
                res, stats = await self._w1(f"run{run_no + 1}", self.seed + run_no + 1, o.duration)
            keep_alive.cancel()
            after = await _cache_counts(scrape)
            await asyncio.sleep(1.5)  # PostgreSQL flushes its statistics about every second
            sessions_after = await _pg_sessions(self.stack.database_url)
        rec = {
            **res.to_json(),
            "ops": stats,
            "cache": _hit_ratios(before, after),
            "cpu": cpu.result,
            "rss": rss.result,
            "waited_for_quiet_s": waited,
        }
        raw["w1"] = rec
        m["w1"].add(res.rate, res.errors)
        for q in ("p50", "p90", "p99", "p999"):
            m[f"w1_{q}"].add(res.latency_ms[q], res.errors)
        self._cpu_per_request("w1", rec, res.requests, res.errors)
        for cache, counts in rec["cache"].items():
            if isinstance(counts, dict):
                if f"hit_{cache}" not in m:
                    self.report.metric(
                        f"hit_{cache}", f"{cache} cache hits", "%", CACHE, phase="w1"
                    )
                m[f"hit_{cache}"].add(100 * counts["hit_ratio"], res.errors)
        for key in ("start", "end", "max"):
            m[f"rss_{key}"].add(rss.result[f"{key}_mib"], res.errors)
        m["rss_slope"].add(rss.result["slope_mib_per_min"], res.errors)
        for key in ("start", "end"):
            m[f"rss_anon_{key}"].add(rss.result["anon"][f"{key}_mib"], res.errors)
        m["rss_anon_slope"].add(rss.result["anon"]["slope_mib_per_min"], res.errors)
        if sessions_before is not None and sessions_after is not None and "pg_connects" in m:
            opened = sessions_after - sessions_before - 1  # less our own "before" connection
            rec["pg_connections_opened"] = opened
            m["pg_connects"].add(opened / max(res.requests, 1) * 1000, res.errors)
        await asyncio.sleep(PAUSE)

        raw["w1_half"] = await self._half_rate(run_no, res.rate)
        await asyncio.sleep(PAUSE)

        last = {k: v.values[-1] for k, v in m.items() if v.values}
        self.report.ratios["cpu_w1_floor"].values.append(last["cpu_w1"] / floor_cpu)
        self.report.ratios["cpu_healthz_floor"].values.append(last["cpu_healthz"] / floor_cpu)
        self.report.ratios["w1_healthz"].values.append(last["w1"] / last["healthz"])
        self.report.ratios["w1_db"].values.append(last["w1"] / last["db"])
        self.report.runs.append(raw)

    async def _half_rate(self, run_no: int, closed_rate: float) -> dict[str, Any]:
        """The W1 mix offered at half the closed-loop rate, open loop."""
        o, m = self.o, self.m
        rate = max(closed_rate / 2, 1.0)
        seconds = min(o.duration, HALF_RATE_MAX_S)
        slots, ops = await asyncio.to_thread(
            self._slots, f"half{run_no + 1}", self.seed + 50 + run_no, seconds
        )
        token_file = self.tokens.write(self.workdir / "tokens.txt")
        waited = await self._phase_start()
        async with self.progress.phase(
            f"W1 mix: {rate:,.0f} req/s offered (open loop, R/2)",
            seconds,
            server_pids=self.server.pids(),
        ) as cpu:
            res, counts = await run_open_loop(
                self.server.base_url,
                token_file,
                slots,
                rate=rate,
                duration=seconds,
                connections=max(64, 2 * o.connections),
            )
        lat = res.to_json()["latency_ms"]
        m["w1_half"].add(res.achieved_rate, res.errors)
        for q in ("p50", "p99", "p999"):
            m[f"w1_half_{q}"].add(lat.get(q, float("nan")), res.errors)
        rec = res.to_json() | {
            "ops": {**counts, "slots": ops},
            "cpu": cpu.result,
            "waited_for_quiet_s": waited,
        }
        per = cpu.result["server_cpu_s"] / res.ok * 1e6 if res.ok else float("nan")
        rec["server_cpu_us_per_request"] = per
        return rec

    async def profile(self) -> None:
        """One more W1 phase (not in the medians) with py-spy on the first worker, then the
        cost of each operation on its own (diagnostics, not in the medians either)."""
        seconds = max(self.o.duration, PROFILE_SECONDS + 2)
        worker = self.server.worker_pids()[0]
        folded = RESULTS_DIR / "tmp" / "profiles" / f"{self.report.stem}-profile.folded"
        await self._phase_start()
        cpu_before: dict[str, tuple[str, float]] = {}
        cpu_after: dict[str, tuple[str, float]] = {}
        async with self.progress.phase(
            f"W1 mix, py-spy on worker {worker}", seconds, server_pids=self.server.pids()
        ) as cpu:
            profiler = Profiler(worker, folded, PROFILE_SECONDS)

            async def spy() -> None:
                nonlocal cpu_before, cpu_after
                await asyncio.sleep(1.0)  # past wrk's connection set-up
                cpu_before = thread_cpu(worker)
                t = time.monotonic()
                async with profiler:
                    pass
                cpu_after = thread_cpu(worker)
                self._spy_seconds = time.monotonic() - t

            (res, stats), _ = await asyncio.gather(
                self._w1("profile", self.seed + 99, seconds), spy()
            )
        per_op = await self._per_op()
        primary = 2 if self.report.stack == "postgres" else 1
        suffix = "" if self.o.workers == primary else f"-workers{self.o.workers}"
        summary_path = RESULTS_DIR / f"w1-profile-{self.report.stack}{suffix}.txt"
        header = (
            f"W1 profile · stack {self.report.stack} · workers {self.o.workers} · "
            f"{self.report.started_at:%Y-%m-%d %H:%M} UTC · results {self.report.stem}.json\n"
            f"py-spy record --pid {worker} (a Granian worker, child of `socius serve`) "
            f"--duration {PROFILE_SECONDS} --rate {profiler.rate} --format raw --threads "
            f"--nonblocking, during a W1 wrk phase of {seconds:.0f} s "
            f"({res.rate:,.0f} req/s, {res.errors} errors, p99 {res.latency_ms['p99']:.1f} ms, "
            f"{cpu.result.get('server_cores')} server cores busy, "
            f"{cpu.result.get('other_cores')} cores used by other processes)\n"
            f"folded stacks: {folded}\n"
        )
        lines = [
            f"== each operation alone: wrk {OP_SECONDS:.0f} s, {self.o.connections} connections,"
            " after the runs (warm caches) ==",
            f"  {'op':4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
            f"{'server CPU/req':>15} {'PG CPU/req':>11}  request",
        ]
        for op, r in per_op.items():
            pg = r.get("postgres_cpu_us_per_request")
            lines.append(
                f"  {op:4} {r['rate']:8,.0f} {r['p50']:8.1f} {r['p99']:8.1f} {r['errors']:6d} "
                f"{r['server_cpu_us_per_request']:12,.0f} µs "
                + (f"{pg:8,.0f} µs" if pg is not None else f"{'-':>11}")
                + f"  {OP_LABELS[op]}"
            )
        write_profile_summary(
            folded,
            summary_path,
            header,
            threads_cpu=thread_cpu_delta(cpu_before, cpu_after, self._spy_seconds),
            per_op=lines,
        )
        self.report.config["profile"] = {
            "summary": str(summary_path),
            "folded": str(folded),
            "worker_pid": worker,
            "wrk": res.to_json(),
            "ops": stats,
            "cpu": cpu.result,
            "harness_summary": profiler.summary(),
            "per_op": per_op,
        }

    async def _per_op(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for i, op in enumerate(w1_mix.MIX):
            path = self.workdir / f"slots-op-{op}.txt"
            await asyncio.to_thread(
                w1_mix.write_slots,
                self.graph,
                self.callers,
                path,
                count=max(20_000, int(OP_SECONDS * SLOTS_PER_SECOND)),
                seed=self.seed + 200 + i,
                mix={op: 1.0},
            )
            async with self.progress.phase(
                f"diagnostics: {op} alone", OP_SECONDS, server_pids=self.server.pids()
            ) as cpu:
                res, stats = await self._wrk_mix(path, f"ops-op-{op}.json", OP_SECONDS)
            out[op] = {
                "rate": res.rate,
                "p50": res.latency_ms["p50"],
                "p99": res.latency_ms["p99"],
                "errors": res.errors,
                "requests": res.requests,
                "server_cpu_us_per_request": cpu.result["server_cpu_s"]
                / max(res.requests, 1)
                * 1e6,
                "cpu": cpu.result,
                "ops": stats,
            }
            if self.report.stack == "postgres":
                out[op]["postgres_cpu_us_per_request"] = _database_cpu_per_request(
                    cpu.result, res.requests
                )
            await asyncio.sleep(PAUSE)
        return out
