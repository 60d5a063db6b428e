"""W2 — chat delivery, see docs/workloads.md and bench/README.md.

Targets: >= 2,000 messages/s accepted on PostgreSQL + Redis + NATS, >= 2,500 embedded
(persisted, sequenced, idempotent), >= 20,000 deliveries/s, <= 600 µs of server CPU and
<= 300 µs of PostgreSQL CPU per message, delivery p99 <= 50 ms at 1,000 messages/s
offered; 0 lost, 0 duplicated, 0 out of order per conversation.

How it runs:
1. A fresh stack: SQLite, or PostgreSQL + Redis (cache) + NATS (bus; `--bus redis`: Redis
   pub/sub). `--users` users (default 2,000) with one session each are inserted directly
   and get access tokens from the server's signing key (w23_seed.py; no argon2, no login).
2. The measurement server (`socius serve`, default settings except the bench tokens'
   lifetime). Through the API: every user in `--dm-per-user` (10) direct conversations
   (a random regular graph) and `--groups-per-user` (2) groups of 5..50 members.
3. Load generators, each its own process: `--ws-procs` (2) WebSocket fleets holding one
   socket per user (the SDK's RealtimeClient, heartbeat ping every 30 s), and `--senders`
   (1) HTTP senders. Every socket is read.
4. Warm-up (unmeasured, verified), then each run: the floors (wrk GET /healthz; PK reads
   through the driver), then steps at a constant offered rate (open loop), each followed
   by a drain (until the server's history and the sockets stop moving) and a check of
   every socket, for every conversation of its user, against the server's history (the
   `messages` table): same seqs, once each, in order. Run 1 searches: `--rates` ascending
   until a step does not hold, then `--refine` bisection steps; later runs repeat run 1's
   steps, so every step has one value per run.
5. `--profile`: one more step, py-spy on the Granian worker; a summary goes to
   bench/results/w2-profile-<stack>.txt.

A step *holds* when every send got its 201 (and the idempotency re-posts their 200 with
the same message), nothing was lost, duplicated, reordered or unexpected, no socket was
closed, and the accepted rate is >= 95% of the offered one. The max accepted rate of a
run is the accepted rate of its highest step that held.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import random
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from bench.harness.dbfloor import pk_read_floor, user_ids
from bench.harness.machine import machine_info
from bench.harness.options import Options
from bench.harness.procs import Child, proc_nofile, raise_nofile
from bench.harness.profiler import Profiler
from bench.harness.progress import BenchProgress
from bench.harness.publish import publish
from bench.harness.pyspy_text import thread_cpu, thread_cpu_delta, write_summary
from bench.harness.results import RESULTS_DIR, Report
from bench.harness.server import ServerProcess, free_port
from bench.harness.source import export_ref, working_tree
from bench.harness.stack import Stack, fresh_stack
from bench.harness.stats import median, percentiles_ms
from bench.harness.wrk import run_wrk
from bench.workloads.w2_sender import sender_main
from bench.workloads.w23_common import (
    BackendCpu,
    History,
    PidCpu,
    add_stack_args,
    describe_stack,
    options_from,
    run_main,
    server_env,
    stack_label,
)
from bench.workloads.w23_fleet import fleet_main
from bench.workloads.w23_seed import (
    TOKEN_TTL_S,
    Topology,
    create_conversations,
    direct_pairs,
    group_members,
    seed_users,
)

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[2]
PAUSE = 1.0
HELD_SHARE = 0.95  # accepted >= this share of offered
IDEMPOTENCY_SAMPLE = 10  # re-posts per step and sender
PROFILE_SECONDS = 10
TARGET_ACCEPTED = 2_000.0  # PostgreSQL + Redis + NATS; 2,500 embedded (docs/workloads.md)
TARGET_ACCEPTED_EMBEDDED = 2_500.0
TARGET_DELIVERIES = 20_000.0
TARGET_SERVER_CPU_US = 600.0
TARGET_DATABASE_CPU_US = 300.0
TARGET_P99_AT = 1000.0
TARGET_P99_MS = 50.0

THROUGHPUT = "throughput (messages/s accepted, deliveries/s; floors in requests/s)"
LATENCY = "delivery latency (ms, send start -> recipient's message.created)"
SEND = "send latency (ms, POST .../messages, from its scheduled start)"
SERVER_CPU = "server CPU per accepted message (µs, all server threads, load + drain)"
DATABASE_CPU = "PostgreSQL CPU per accepted message (µs, the bench database's backends)"


_GROUP_LINE = re.compile(r"^(send_group_(?:size|seconds)_(?:sum|count)) ([0-9.e+-]+)$")


async def _send_groups(base_url: str) -> dict[str, float]:
    """The send groups' counters on the server's /metrics (one worker): how many groups,
    their sizes' and wall times' sums (``send_group_seconds``: decision 0055)."""
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            text = (await http.get("/metrics")).text
    except httpx.HTTPError:
        return {}
    return {m[1]: float(m[2]) for line in text.splitlines() if (m := _GROUP_LINE.match(line))}


def _group_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """A step's send groups (load and drain): count, mean size, mean wall time."""
    d = {k: after[k] - before.get(k, 0.0) for k in after}
    n = d.get("send_group_size_count", 0.0)
    out: dict[str, Any] = {"groups": int(n)}
    if n:
        out["mean_size"] = round(d.get("send_group_size_sum", 0.0) / n, 1)
        if "send_group_seconds_sum" in d:
            out["mean_ms"] = round(1e3 * d["send_group_seconds_sum"] / n, 1)
    return out


def main(parser: argparse.ArgumentParser, args: list[str]) -> int:
    add_stack_args(parser)
    parser.add_argument("--users", type=int, default=2000, help="users, one socket each")
    parser.add_argument("--rates", default="100,200,500,1000", help="offered msg/s steps")
    parser.add_argument("--refine", type=int, default=2, help="bisection steps after a miss")
    parser.add_argument("--ws-procs", type=int, default=2, help="WebSocket client processes")
    parser.add_argument("--senders", type=int, default=1, help="HTTP sender processes")
    parser.add_argument(
        "--send-connections",
        type=int,
        default=512,
        help="keep-alive connections per sender process (a send waits for a free one)",
    )
    parser.add_argument("--dm-per-user", type=int, default=10)
    parser.add_argument("--groups-per-user", type=int, default=2)
    parser.add_argument("--group-min", type=int, default=5)
    parser.add_argument("--group-max", type=int, default=50)
    parser.add_argument("--seed", type=int, default=20261121, help="RNG seed (topology, picks)")
    parser.add_argument(
        "--profile-rate", type=float, default=None, help="offered rate of the --profile step"
    )
    ns = parser.parse_args(args)
    rates = sorted({float(r) for r in ns.rates.split(",") if r.strip()})
    if (
        ns.runs < 1
        or ns.duration <= 0
        or ns.users < 20
        or not rates
        or min(rates) <= 0
        or ns.ws_procs < 1
        or ns.senders < 1
        or ns.send_connections < 1
    ):
        print(
            "--runs, --duration, --rates, --ws-procs, --senders, --send-connections must be "
            "positive; --users >= 20"
        )
        return 2
    if ns.workers > 1 and ns.stack == "embedded":
        print("--workers > 1 needs Redis: use --stack postgres")
        return 2
    return run_main(_main(options_from(ns), ns, rates))


def _pcts(lat: list[float]) -> dict[str, float]:
    return percentiles_ms(lat)


class _Load:
    """The load-generator processes."""

    def __init__(self, fleets: list[Child], senders: list[Child]) -> None:
        self.fleets = fleets
        self.senders = senders

    def pids(self) -> dict[str, list[int]]:
        return {"fleets": [f.pid for f in self.fleets], "senders": [s.pid for s in self.senders]}

    async def fleet_counts(self, tags: list[str]) -> tuple[int, int, float]:
        res = await asyncio.gather(*(f.call("counts", tags) for f in self.fleets))
        count = sum(sum(r["counts"].values()) for r in res)
        closes = sum(r["closes"] for r in res)
        last = max((t for r in res for t in r["last_at"].values() if t), default=0.0)
        return count, closes, last

    async def stop(self) -> None:
        await asyncio.gather(
            *(f.stop() for f in self.fleets + self.senders), return_exceptions=True
        )


async def _main(o: Options, ns: argparse.Namespace, rates: list[float]) -> int:
    nofile = raise_nofile(1 << 20)
    console = Console(stderr=True)
    started = datetime.now(UTC)
    label = stack_label(o.stack, ns.bus)
    workdir = RESULTS_DIR / "tmp" / f"w2-{label}-{started:%Y%m%dT%H%M%SZ}"
    workdir.mkdir(parents=True, exist_ok=True)
    source = export_ref(ROOT, o.ref, workdir / "source") if o.ref else working_tree(ROOT)
    report = Report(
        workload="w2",
        stack=label,
        started_at=started,
        machine=machine_info(ROOT),
        config={
            "duration_s": o.duration,
            "runs": o.runs,
            "workers": o.workers,
            "users": ns.users,
            "rates_offered": rates,
            "refine_steps": ns.refine,
            "ws_processes": ns.ws_procs,
            "sender_processes": ns.senders,
            "send_connections_per_sender": ns.send_connections,
            "server_settings": o.server_env(),
            "dm_per_user": ns.dm_per_user,
            "groups_per_user": ns.groups_per_user,
            "group_members": [ns.group_min, ns.group_max],
            "bus": "in-process" if o.stack == "embedded" else ns.bus,
            "measured_source": source.description,
            "wrk_connections": o.connections,
            "db_floor_tasks": o.db_tasks,
            "wait_quiet_s": o.wait_quiet,
            "open_files_limit": list(nofile),
            "seeding": "users + sessions inserted directly (one shared argon2id hash of a "
            "thrown-away password: nobody logs in, login is not measured); access tokens "
            f"issued with the server's signing key, valid {TOKEN_TTL_S} s "
            f"(SOCIUS_ACCESS_TOKEN_TTL_SECONDS={TOKEN_TTL_S}, on the server too: not on a "
            "measured path); conversations created through the API",
            "held_means": "every send 201, idempotent re-posts 200 with the same message, "
            "0 lost / duplicated / out of order / unexpected per conversation and socket, "
            f"0 sockets closed, accepted >= {HELD_SHARE:.0%} of offered",
        },
    )
    _define_static_metrics(report)
    code = 1
    async with fresh_stack(
        o.stack, workdir, postgres_admin_url=o.postgres_url, redis_url=o.redis_url, tag="w2"
    ) as stack:
        report.machine["stack"] = {
            "kind": o.stack,
            "label": label,
            "what": describe_stack(stack, ns.bus),
            **stack.info,
        }
        server = ServerProcess(
            server_env(stack, ns.bus, ns.nats_url),
            port=o.port or free_port(),
            workers=o.workers,
            log_path=workdir / "server.log",
            extra_env={**source.env(), **o.server_env()},
        )
        load: _Load | None = None
        with BenchProgress(console, 4 + o.runs * (2 + len(rates) + ns.refine)) as progress:
            async with progress.phase(f"seeding {ns.users} users (direct inserts)", 3):
                seeded = await seed_users(stack, ns.users, "w2u")
            async with progress.phase("measurement server", 5):
                await server.start()
            try:
                worker = server.worker_pids()[0]
                report.config["server_open_files_limit"] = proc_nofile(worker)
                topo = await _conversations(ns, server, seeded.user_ids, seeded.tokens, progress)
                report.config["topology"] = _describe(topo, ns.users)
                load = await _start_load(ns, server, seeded.tokens, topo, progress, report)
                runner = _Runner(o, ns, report, progress, server, stack, load, topo, workdir)
                async with History(stack) as history:
                    runner.history = history
                    await runner.warm_up(rates[0])
                    for run_no in range(o.runs):
                        await runner.run(run_no, rates)
                    if o.profile:
                        await runner.profile()
                report.config["fleets_at_end"] = await asyncio.gather(
                    *(f.call("status") for f in load.fleets)
                )
            finally:
                if load is not None:
                    await load.stop()
                await server.stop()
        report.finished_at = datetime.now(UTC)
        _summarise(report, runner)
        publish(report, source, width=140, more=lambda out: _print_steps(out, report))
        code = 0 if runner.correctness_errors == 0 and runner.any_held else 1
    if not o.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return code


def _define_static_metrics(r: Report) -> None:
    lower = {"higher_is_better": False}
    r.metric("healthz", "GET /healthz (framework floor)", "req/s", THROUGHPUT, is_floor=True)
    r.metric("db", "PK read via driver (database floor)", "req/s", THROUGHPUT, is_floor=True)
    r.metric(
        "max_accepted",
        "max accepted msg/s with 0 errors",
        "req/s",
        THROUGHPUT,
        target=TARGET_ACCEPTED_EMBEDDED if r.stack == "embedded" else TARGET_ACCEPTED,
        phase="max",
    )
    r.metric(
        "max_deliveries",
        "deliveries/s at that rate",
        "req/s",
        THROUGHPUT,
        target=TARGET_DELIVERIES,
        phase="max",
    )
    r.metric("max_p99", "delivery p99 at that rate", "ms", LATENCY, phase="max", **lower)
    r.ratio("max_healthz", "max accepted msg/s ÷ /healthz")
    r.ratio("max_db", "max accepted msg/s ÷ DB floor")


def _describe(topo: Topology, users: int) -> dict[str, Any]:
    sizes = topo.group_sizes()
    per_user = [len(topo.by_user.get(u, [])) for u in range(users)]
    return {
        "direct_conversations": sum(1 for k in topo.kind.values() if k == "direct"),
        "groups": len(sizes),
        "group_size_min_median_max": [sizes[0], sizes[len(sizes) // 2], sizes[-1]] if sizes else [],
        "conversations_per_user_min_max": [min(per_user), max(per_user)],
        "mean_recipients_per_message": round(
            sum(len(topo.members[c]) for u in range(users) for c in topo.by_user.get(u, []))
            / max(1, sum(per_user)),
            2,
        ),
        "note": "a message goes from a uniformly random user to a uniformly random one of "
        "that user's conversations; every member's socket gets it, the sender's included",
    }


async def _conversations(
    ns: argparse.Namespace,
    server: ServerProcess,
    uids: list[int],
    tokens: list[str],
    progress: BenchProgress,
) -> Topology:
    rng = random.Random(ns.seed)
    pairs = direct_pairs(ns.users, ns.dm_per_user, rng)
    groups = group_members(ns.users, ns.groups_per_user, ns.group_min, ns.group_max, rng)
    total = len(pairs) + len(groups)
    t = time.monotonic()
    async with progress.phase(f"{total} conversations through the API", total / 300):
        topo = await create_conversations(server.base_url, uids, tokens, pairs, groups)
    progress.log(f"{total} conversations created in {time.monotonic() - t:.1f} s")
    return topo


async def _start_load(
    ns: argparse.Namespace,
    server: ServerProcess,
    tokens: list[str],
    topo: Topology,
    progress: BenchProgress,
    report: Report,
) -> _Load:
    url = server.base_url.replace("http://", "ws://") + "/v1/ws"
    n = len(tokens)
    bounds = [n * k // ns.ws_procs for k in range(ns.ws_procs + 1)]
    fleets = [
        Child(
            f"ws-fleet-{k}",
            fleet_main,
            {
                "url": url,
                "tokens": tokens[bounds[k] : bounds[k + 1]],
                "convs": [topo.by_user.get(u, []) for u in range(bounds[k], bounds[k + 1])],
                "local_ips": [f"127.0.0.{2 + k}"],
                "handshakes": 64,
                "ping_interval": 30.0,
            },
        )
        for k in range(ns.ws_procs)
    ]
    sizes = {c: len(m) for c, m in topo.members.items()}
    senders = [
        Child(
            f"sender-{k}",
            sender_main,
            {
                "base_url": server.base_url,
                "tokens": tokens,
                "convs": [topo.by_user.get(u, []) for u in range(n)],
                "sizes": sizes,
                "seed": ns.seed,
                "max_connections": ns.send_connections,
            },
        )
        for k in range(ns.senders)
    ]
    for c in fleets + senders:
        c.start()
    load = _Load(fleets, senders)
    async with progress.phase(f"{n} WebSockets: connect + auth + ready", n / 300):
        t = time.monotonic()
        res = await asyncio.gather(*(f.call("connect", n, 50) for f in fleets))
    opened = sum(r["opened"] for r in res)
    seconds = time.monotonic() - t
    report.config["connect"] = {"opened": opened, "seconds": round(seconds, 2), "fleets": res}
    if opened != n:
        raise RuntimeError(f"only {opened} of {n} sockets connected: {res}")
    progress.log(f"{n} sockets up in {seconds:.1f} s ({n / seconds:,.0f}/s)")
    return load


class _Runner:
    def __init__(
        self,
        o: Options,
        ns: argparse.Namespace,
        report: Report,
        progress: BenchProgress,
        server: ServerProcess,
        stack: Stack,
        load: _Load,
        topo: Topology,
        workdir: Path,
    ) -> None:
        self.o = o
        self.ns = ns
        self.report = report
        self.m = report.metrics
        self.progress = progress
        self.server = server
        self.stack = stack
        self.load = load
        self.topo = topo
        self.workdir = workdir
        self.history: History
        self.plan: list[float] = []
        self.correctness_errors = 0
        self.any_held = False
        self.held_by_run: list[float | None] = []
        self.first_run_max: float | None = None

    # -- one step ------------------------------------------------------------------------

    async def step(self, tag: str, rate: float, seconds: float) -> dict[str, Any]:
        o = self.o
        waited = await self.progress.wait_for_quiet(o.wait_quiet)
        _, closes_before, _ = await self.load.fleet_counts([])
        pids = {"server": self.server.pids(), **self.load.pids()}
        groups_before = await _send_groups(self.server.base_url)
        meter = PidCpu(pids).start()
        database = await BackendCpu(self.history).start()
        window = PidCpu(pids).start()
        senders = self.load.senders
        name = f"{tag}: {rate:,.0f} msg/s offered, open loop"
        async with self.progress.phase(name, seconds, server_pids=self.server.pids()) as cpu:
            sends = await asyncio.gather(
                *(
                    s.call("step", tag, rate, seconds, k, len(senders))
                    for k, s in enumerate(senders)
                )
            )
            load_cpu = window.stop()
        idem = await asyncio.gather(
            *(s.call("idempotency", tag, IDEMPOTENCY_SAMPLE) for s in senders)
        )
        drain = await self._drain(tag, sum(s["expected_deliveries"] for s in sends))
        total_cpu = meter.stop()
        groups = _group_delta(groups_before, await _send_groups(self.server.base_url))
        database_cpu_s = await database.stop()
        expected = await self.history.seqs(f"w2-{tag}-")
        checks = await asyncio.gather(
            *(f.call("verify", tag, expected, False) for f in self.load.fleets)
        )
        _, closes_after, _ = await self.load.fleet_counts([])

        lat: array.array[float] = array.array("d")
        for c in checks:
            lat.frombytes(c.pop("latencies"))
        send_lat = [x for s in sends for x in s.pop("latencies")]
        ok = sum(s["ok"] for s in sends)
        sent = sum(s["sent"] for s in sends)
        http_errors = sum(s["errors"] for s in sends)
        idem_errors = sum(i["errors"] for i in idem)
        t0 = min(s["t0"] for s in sends)
        last_done = max(s["last_done"] for s in sends)
        deliveries = sum(c["deliveries"] for c in checks)
        last_delivery = max((c["last_at"] or 0.0 for c in checks), default=0.0)
        wrong = {
            k: sum(c[k] for c in checks)
            for k in ("lost", "duplicated", "out_of_order", "phantom", "foreign")
        }
        persisted = sum(len(v) for v in expected.values())
        want_deliveries = sum(
            len(v) * len(self.topo.members.get(c, [])) for c, v in expected.items()
        )
        closes = closes_after - closes_before
        accepted_rate = ok / max(seconds, last_done - t0) if ok else 0.0
        delivery_rate = deliveries / max(seconds, last_delivery - t0) if deliveries else 0.0
        # every frame is accounted for: |received| = |history| - lost + phantom + duplicated
        unaccounted = deliveries - (
            want_deliveries
            - wrong["lost"]
            + wrong["phantom"]
            + wrong["duplicated"]
            + wrong["foreign"]
        )
        wrong["unaccounted"] = abs(unaccounted)
        correctness = sum(wrong.values())
        errors = http_errors + idem_errors + correctness + closes
        held = errors == 0 and ok == sent and accepted_rate >= HELD_SHARE * rate
        self.correctness_errors += sum(wrong.values())
        server_cpu_s = total_cpu["server_cpu_s"]
        lags = [s["lag_p99_ms"] for s in sends if s["lag_p99_ms"] is not None]
        record = {
            "tag": tag,
            "offered_rate": rate,
            "duration_s": seconds,
            "held": held,
            "sent": sent,
            "accepted": ok,
            "accepted_rate": accepted_rate,
            "persisted": persisted,
            "deliveries": deliveries,
            "deliveries_expected_from_history": want_deliveries,
            "delivery_rate": delivery_rate,
            "delivery_latency_ms": _pcts(list(lat)),
            "send_latency_ms": _pcts(send_lat),
            "errors": errors,
            "http_errors": http_errors,
            "http_error_kinds": _merge(s["error_kinds"] for s in sends),
            "idempotency": {
                "checked": sum(i["checked"] for i in idem),
                "errors": idem_errors,
                "kinds": _merge(i["kinds"] for i in idem),
            },
            "delivery_check": {**wrong, "examples": [e for c in checks for e in c["examples"]]},
            "sockets_closed": closes,
            "drain": drain,
            "generator_lag_p99_ms": max(lags) if lags else None,
            "cpu_load_window": cpu.result,
            "cpu_by_process_load_window": load_cpu,
            "cpu_by_process_load_and_drain": total_cpu,
            "server_cpu_us_per_message": 1e6 * server_cpu_s / ok if ok else float("nan"),
            "server_cpu_us_per_delivery": 1e6 * server_cpu_s / deliveries
            if deliveries
            else float("nan"),
            "database_cpu_s": database_cpu_s,
            "database_cpu_us_per_message": 1e6 * database_cpu_s / ok if ok else float("nan"),
            "waited_for_quiet_s": waited,
            "send_groups": groups,
        }
        verdict = "[green]held[/]" if held else "[red]did not hold[/]"
        lat_ms = record["delivery_latency_ms"]
        self.progress.log(
            f"{tag} {rate:,.0f}/s offered: accepted {accepted_rate:,.0f}/s, "
            f"{delivery_rate:,.0f} deliveries/s, p50 {lat_ms.get('p50', float('nan')):.1f} ms, "
            f"p99 {lat_ms.get('p99', float('nan')):.1f} ms, errors {errors} "
            f"(http {http_errors}, idem {idem_errors}, check {correctness}, closes {closes}), "
            f"server {total_cpu['server_cores']:.2f} cores — {verdict}"
        )
        await asyncio.sleep(PAUSE)
        return record

    async def _drain(self, tag: str, expected: int) -> dict[str, Any]:
        """Wait until the deliveries of `tag` (and its history) stop moving."""
        t = time.monotonic()
        prefix = f"w2-{tag}-"
        last: tuple[int, int] | None = None
        still = 0
        while True:
            count, _, _ = await self.load.fleet_counts([tag])
            stored = await self.history.count(prefix)
            now = (count, stored)
            still = still + 1 if now == last else 0
            last = now
            waited = time.monotonic() - t
            if (count >= expected and still >= 4) or still >= 10 or waited > 180:
                return {
                    "seconds": round(waited, 2),
                    "deliveries_seen": count,
                    "expected_from_accepted": expected,
                    "timed_out": waited > 180,
                }
            await asyncio.sleep(0.5)

    # -- the parts of the bench ---------------------------------------------------------------

    async def warm_up(self, rate: float) -> None:
        seconds = min(5.0, self.o.duration)
        rec = await self.step("warm", max(10.0, rate / 2), seconds)
        self.report.config["warm_up"] = {
            k: rec[k]
            for k in ("offered_rate", "accepted", "errors", "deliveries", "delivery_latency_ms")
        }
        self.correctness_errors = 0  # the warm-up is not a figure (but it is in the JSON)
        self.report.config["warm_up"]["delivery_check"] = rec["delivery_check"]

    async def floors(self, raw: dict[str, Any]) -> None:
        o, m = self.o, self.m
        waited = await self.progress.wait_for_quiet(o.wait_quiet)
        async with self.progress.phase(
            "framework floor: wrk GET /healthz", o.duration, server_pids=self.server.pids()
        ) as cpu:
            res = await run_wrk(
                self.server.base_url,
                "healthz.lua",
                duration=o.duration,
                connections=o.connections,
                threads=o.wrk_threads,
            )
        raw["healthz"] = {**res.to_json(), "cpu": cpu.result, "waited_for_quiet_s": waited}
        m["healthz"].add(res.rate, res.errors)
        await asyncio.sleep(PAUSE)
        waited = await self.progress.wait_for_quiet(o.wait_quiet)
        ids = await user_ids(
            sqlite_path=self.stack.sqlite_path, database_url=self.stack.database_url
        )
        async with self.progress.phase(
            "database floor: PK reads", o.duration, server_pids=self.server.pids()
        ) as cpu:
            db = await pk_read_floor(
                ids,
                duration=o.duration,
                tasks=o.db_tasks,
                sqlite_path=self.stack.sqlite_path,
                database_url=self.stack.database_url,
            )
        raw["db_floor"] = {**db, "cpu": cpu.result, "waited_for_quiet_s": waited}
        m["db"].add(db["rate"], db["errors"])
        await asyncio.sleep(PAUSE)

    def _metrics_for(self, rate: float) -> None:
        key = f"{rate:g}"
        if f"acc@{key}" in self.m:
            return
        r, lower = self.report, {"higher_is_better": False}
        phase = f"step@{key}"
        r.metric(
            f"acc@{key}", f"accepted msg/s @ {rate:,.0f} offered", "req/s", THROUGHPUT, phase=phase
        )
        r.metric(
            f"del@{key}", f"deliveries/s @ {rate:,.0f} offered", "req/s", THROUGHPUT, phase=phase
        )
        r.metric(f"p50@{key}", f"delivery p50 @ {rate:,.0f}/s", "ms", LATENCY, phase=phase, **lower)
        target = TARGET_P99_MS if rate == TARGET_P99_AT else None
        r.metric(
            f"p99@{key}",
            f"delivery p99 @ {rate:,.0f}/s",
            "ms",
            LATENCY,
            phase=phase,
            target=target,
            **lower,
        )
        r.metric(f"send99@{key}", f"send p99 @ {rate:,.0f}/s", "ms", SEND, phase=phase, **lower)
        r.metric(
            f"cpu@{key}",
            f"server CPU / message @ {rate:,.0f}/s",
            "µs",
            SERVER_CPU,
            phase=phase,
            target=TARGET_SERVER_CPU_US,
            **lower,
        )
        if self.stack.database_url:
            r.metric(
                f"pgcpu@{key}",
                f"PostgreSQL CPU / message @ {rate:,.0f}/s",
                "µs",
                DATABASE_CPU,
                phase=phase,
                target=TARGET_DATABASE_CPU_US,
                **lower,
            )

    def _record_metrics(self, rec: dict[str, Any]) -> None:
        rate, err = rec["offered_rate"], rec["errors"]
        key = f"{rate:g}"
        self._metrics_for(rate)
        nan = float("nan")
        self.m[f"acc@{key}"].add(rec["accepted_rate"], err)
        self.m[f"del@{key}"].add(rec["delivery_rate"], err)
        self.m[f"p50@{key}"].add(rec["delivery_latency_ms"].get("p50", nan), err)
        self.m[f"p99@{key}"].add(rec["delivery_latency_ms"].get("p99", nan), err)
        self.m[f"send99@{key}"].add(rec["send_latency_ms"].get("p99", nan), err)
        self.m[f"cpu@{key}"].add(rec["server_cpu_us_per_message"], err)
        if self.stack.database_url:
            self.m[f"pgcpu@{key}"].add(rec["database_cpu_us_per_message"], err)

    async def run(self, run_no: int, rates: list[float]) -> None:
        o = self.o
        self.progress.set_overall(f"run {run_no + 1}/{o.runs}")
        raw: dict[str, Any] = {"run": run_no + 1, "steps": []}
        await self.floors(raw)
        records: list[dict[str, Any]] = []
        k = 0

        async def go(rate: float) -> dict[str, Any]:
            nonlocal k
            rec = await self.step(f"r{run_no + 1}s{k}", rate, o.duration)
            k += 1
            records.append(rec)
            return rec

        if run_no == 0:
            lo, hi = 0.0, None
            for rate in rates:
                if (await go(rate))["held"]:
                    lo = rate
                else:
                    hi = rate
                    break
            for _ in range(self.ns.refine if hi is not None else 0):
                assert hi is not None
                mid = _nice((lo + hi) / 2)
                if mid <= lo or mid >= hi:
                    break
                if (await go(mid))["held"]:
                    lo = mid
                else:
                    hi = mid
            self.plan = sorted({r["offered_rate"] for r in records})
        else:
            for rate in self.plan:
                await go(rate)
        records.sort(key=lambda r: r["offered_rate"])
        for rec in records:
            self._record_metrics(rec)
        held = [r for r in records if r["held"]]
        best = max(held, key=lambda r: r["offered_rate"]) if held else None
        self.held_by_run.append(best["offered_rate"] if best else None)
        if best is not None:
            self.any_held = True
            self.m["max_accepted"].add(best["accepted_rate"], 0)
            self.m["max_deliveries"].add(best["delivery_rate"], 0)
            self.m["max_p99"].add(best["delivery_latency_ms"].get("p99", float("nan")), 0)
            self.report.ratios["max_healthz"].values.append(
                best["accepted_rate"] / raw["healthz"]["rate"]
            )
            self.report.ratios["max_db"].values.append(
                best["accepted_rate"] / raw["db_floor"]["rate"]
            )
        else:
            self.m["max_accepted"].add(0.0, 0)
            self.m["max_deliveries"].add(0.0, 0)
            self.m["max_p99"].add(float("nan"), 0)
        raw["steps"] = records
        raw["max_held_offered_rate"] = best["offered_rate"] if best else None
        self.report.runs.append(raw)

    async def profile(self) -> None:
        held = [r for r in self.held_by_run if r]
        rate = self.ns.profile_rate or (
            median(held) if held else self.plan[0] if self.plan else 100.0
        )
        seconds = max(self.o.duration, PROFILE_SECONDS + 3)
        worker = self.server.worker_pids()[0]
        label = self.report.stack
        folded = RESULTS_DIR / "tmp" / "profiles" / f"{self.report.stem}-w2.folded"
        profiler = Profiler(worker, folded, PROFILE_SECONDS)
        box: dict[str, Any] = {}

        async def spy() -> None:
            await asyncio.sleep(1.5)
            before = thread_cpu(worker)
            t = time.monotonic()
            async with profiler:
                pass
            box["threads"] = thread_cpu_delta(before, thread_cpu(worker), time.monotonic() - t)

        rec, _ = await asyncio.gather(self.step("prof", rate, seconds), spy())
        lat, send = rec["delivery_latency_ms"], rec["send_latency_ms"]
        cpu = rec["cpu_by_process_load_window"]
        header = (
            f"W2 profile · stack {label} ({self.report.machine['stack']['what']}) · "
            f"{self.report.started_at:%Y-%m-%d %H:%M} UTC · results {self.report.stem}.json\n"
            f"py-spy record --pid {worker} (the Granian worker) --duration {PROFILE_SECONDS} "
            f"--rate {profiler.rate} --format raw --threads --nonblocking, during a W2 step of "
            f"{seconds:.0f} s at {rate:,.0f} msg/s offered, {self.ns.users} sockets open:\n"
            f"  accepted {rec['accepted_rate']:,.0f} msg/s, {rec['delivery_rate']:,.0f} "
            f"deliveries/s, delivery p50/p99 {lat.get('p50', 0):.1f}/{lat.get('p99', 0):.1f} ms,"
            f" send p50/p99 {send.get('p50', 0):.1f}/{send.get('p99', 0):.1f} ms, errors "
            f"{rec['errors']} ({'held' if rec['held'] else 'did not hold'})\n"
            f"  cores busy (load window, /proc): server {cpu.get('server_cores')}, ws fleets "
            f"{cpu.get('fleets_cores')}, senders {cpu.get('senders_cores')}; server CPU per "
            f"message {rec['server_cpu_us_per_message']:,.0f} µs, per delivery "
            f"{rec['server_cpu_us_per_delivery']:,.0f} µs (load + drain)\n"
            f"folded stacks: {folded}\n"
        )
        out = RESULTS_DIR / f"w2-profile-{label}.txt"
        write_summary(folded, out, header, threads_cpu=box.get("threads"))
        self.report.config["profile"] = {
            "summary": str(out),
            "folded": str(folded),
            "worker_pid": worker,
            "step": rec,
            "harness_summary": profiler.summary(),
        }


def _nice(x: float) -> float:
    """Round a bisection point to 2 significant digits."""
    if x <= 0:
        return x
    from math import floor, log10

    scale = 10 ** (floor(log10(x)) - 1)
    return float(round(x / scale) * scale)


def _merge(parts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in parts:
        for k, v in p.items():
            out[k] = out.get(k, 0) + v
    return out


def _summarise(report: Report, runner: _Runner | None) -> None:
    report.config["plan"] = runner.plan if runner else []
    report.config["max_held_offered_rate_by_run"] = runner.held_by_run if runner else []
    report.notes += [
        "2 cores shared by the server, the database (PostgreSQL/Redis/NATS on the postgres "
        "stack), the WebSocket fleets and the HTTP sender(s).",
        "Accepted msg/s = 201 answers ÷ max(step duration, time from the first scheduled "
        "send to the last answer). Deliveries/s = message.created frames received for the "
        "step's messages (the sender's own socket included) ÷ the same, to the last frame.",
        "Delivery latency: from each message's scheduled send start (open loop) to a "
        "recipient's frame, so queueing anywhere (generator, server, client) counts.",
        "Steps above the max rate are listed with their errors (red): that is where the "
        "search stopped, not a failure of the bench. The exit status is 1 only for a "
        "delivery error (lost / duplicated / out of order / unexpected) or when no step held.",
    ]


def _print_steps(out: Console, report: Report) -> None:
    from rich.table import Table

    table = Table(title="W2 steps, every run")
    for col in (
        "run",
        "offered",
        "accepted/s",
        "deliveries/s",
        "p50 ms",
        "p99 ms",
        "send p99",
        "errors",
        "srv cores",
        "held",
    ):
        table.add_column(col, justify="right")
    for raw in report.runs:
        for s in raw["steps"]:
            lat = s["delivery_latency_ms"]
            table.add_row(
                str(raw["run"]),
                f"{s['offered_rate']:,.0f}",
                f"{s['accepted_rate']:,.0f}",
                f"{s['delivery_rate']:,.0f}",
                f"{lat.get('p50', float('nan')):.1f}",
                f"{lat.get('p99', float('nan')):.1f}",
                f"{s['send_latency_ms'].get('p99', float('nan')):.0f}",
                str(s["errors"]),
                f"{s['cpu_by_process_load_window'].get('server_cores', 0):.2f}",
                "yes" if s["held"] else "[red]no[/]",
            )
    out.print(table)
