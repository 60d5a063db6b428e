"""W3 — connections, see docs/workloads.md and bench/README.md.

Targets: >= 20,000 authenticated idle WebSocket connections on one server process,
<= 20 KiB of server memory per idle connection, >= 2,000 connects/s; after a server
restart every client resumes with nothing missed.

How it runs:
1. A fresh stack (as W2; `--bus redis` for Redis pub/sub instead of NATS). `--conns`
   users with one session each, inserted directly, access tokens from the server's key
   (w23_seed.py). `--sample` of them (default 1,000) are put in groups of 50 through the
   API: the restart check sends them messages.
2. The open-file limit is raised as far as this process may (children inherit it); the
   server process cannot hold more sockets than its limit, so `--conns` is capped to the
   limit minus a margin (the JSON says what the limit was and why).
3. Each run, on a FRESH server process:
   - floor: the same fleets against a bare ASGI app under Granian (bench/harness/bare_ws.py),
     same ramp: connects/s and memory per idle connection of the framework alone;
   - ramp: `--ws-procs` client processes (the SDK's RealtimeClient, from several loopback
     source addresses) open the sockets in `--checkpoints` chunks; after each chunk the
     Granian worker's VmRSS is read (/proc/<pid>/status). Connects/s = sockets opened ÷
     time spent opening them (auth frame + `ready` included); memory per idle connection
     = (RSS at N - RSS at 0) / N;
   - hold: `--hold` seconds idle, heartbeats (a `ping` frame per socket every 30 s, spread
     evenly): server CPU while idle, and no socket may be closed;
   - restart: messages to every sample group (3 each), their 201s awaited, then at once
     SIGINT to the server and a new one on the same port. Every client reconnects with
     its cursor (backoff with jitter). Checked: all N back, and every sample socket got
     each of those messages exactly once, in order (live before the restart or replayed
     after it) against the server's history; then one more message per group must arrive
     live.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import random
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from bench.harness.bare_ws import BareServer
from bench.harness.machine import machine_info
from bench.harness.options import Options
from bench.harness.procs import Child, proc_fds, proc_nofile, proc_rss_kib, raise_nofile
from bench.harness.progress import BenchProgress
from bench.harness.publish import publish
from bench.harness.results import RESULTS_DIR, Report
from bench.harness.server import ServerProcess, free_port
from bench.harness.source import Source, export_ref, working_tree
from bench.harness.stack import Stack, fresh_stack
from bench.harness.stats import percentiles_ms
from bench.workloads.w23_common import (
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
from bench.workloads.w23_seed import TOKEN_TTL_S, Topology, create_conversations, seed_users
from socius.client import AsyncClient

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[2]
GROUP = 50
PRE_MESSAGES = 3  # per sample group, just before the restart
FD_MARGIN = 300  # server fds that are not client sockets (db, logs, bus, listener, ...)
PAUSE = 2.0

COUNT = "connections (held, one process)"
RATE = "connects/s (auth + ready included)"
MEMORY = "server memory per idle connection (KiB, VmRSS of the Granian worker)"
CPU = "server CPU (µs per connect; cores while idle)"
RESUME = "restart and resume"


def main(parser: argparse.ArgumentParser, args: list[str]) -> int:
    add_stack_args(parser)
    parser.add_argument("--conns", type=int, default=20_000, help="idle sockets to open")
    parser.add_argument("--ws-procs", type=int, default=2, help="client processes")
    parser.add_argument("--checkpoints", type=int, default=4, help="ramp chunks (RSS read)")
    parser.add_argument("--hold", type=float, default=65.0, help="idle seconds at N")
    parser.add_argument("--sample", type=int, default=1000, help="users in the restart check")
    parser.add_argument("--handshakes", type=int, default=128, help="per client process")
    parser.add_argument("--resume-timeout", type=float, default=180.0)
    parser.add_argument(
        "--resume-gate",
        type=int,
        default=0,
        help="experiment: at most N reconnect handshakes at once per client process "
        "(0: every client on its own, the realistic herd)",
    )
    parser.add_argument(
        "--backoff-cap", type=float, default=30.0, help="reconnect backoff cap, s (full jitter)"
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the bare-Granian floor")
    ns = parser.parse_args(args)
    if ns.runs < 1 or ns.conns < 100 or ns.ws_procs < 1 or ns.checkpoints < 1:
        print("--runs, --ws-procs, --checkpoints must be positive; --conns >= 100")
        return 2
    if ns.workers != 1:
        print("W3 measures one server process: --workers 1")
        return 2
    return run_main(_main(options_from(ns), ns))


def _define_metrics(r: Report, floor: bool) -> None:
    lower = {"higher_is_better": False}
    r.metric("held", "idle connections held", "conns", COUNT, target=20_000.0, phase="ramp")
    r.metric("resumed", "clients resumed after restart", "conns", COUNT, phase="restart")
    if floor:
        r.metric("floor_rate", "bare Granian ASGI: connects/s", "req/s", RATE, is_floor=True)
    r.metric("rate", "socius: connects/s (ramp)", "req/s", RATE, target=2_000.0, phase="ramp")
    r.metric("resume_rate", "socius: reconnects/s after restart", "req/s", RATE, phase="restart")
    if floor:
        r.metric(
            "floor_kib", "bare Granian ASGI: KiB / idle conn", "KiB", MEMORY, is_floor=True, **lower
        )
    r.metric("kib", "socius: KiB / idle conn", "KiB", MEMORY, target=20.0, phase="ramp", **lower)
    r.metric(
        "rss_resumed", "socius: worker MiB after resume", "MiB", MEMORY, phase="restart", **lower
    )
    if floor:
        r.metric(
            "floor_cpu_connect", "bare Granian: CPU per connect", "µs", CPU, is_floor=True, **lower
        )
    r.metric("cpu_connect", "socius: server CPU per connect", "µs", CPU, phase="ramp", **lower)
    r.metric("idle_cores", "server cores busy while idle at N", "cores", CPU, phase="hold", **lower)
    r.metric(
        "resume_s", "restart: ready -> last client back", "s", RESUME, phase="restart", **lower
    )
    r.metric("down_s", "restart: stop + start (server down)", "s", RESUME, phase="restart", **lower)
    r.metric(
        "missed", "restart: messages missed / duplicated", "msgs", RESUME, phase="restart", **lower
    )
    if floor:
        r.ratio("kib_floor", "KiB per conn ÷ bare Granian")
        r.ratio("rate_floor", "connects/s ÷ bare Granian")


async def _main(o: Options, ns: argparse.Namespace) -> int:
    soft, hard = raise_nofile(1 << 20)
    console = Console(stderr=True)
    started = datetime.now(UTC)
    label = stack_label(o.stack, ns.bus)
    workdir = RESULTS_DIR / "tmp" / f"w3-{label}-{started:%Y%m%dT%H%M%SZ}"
    workdir.mkdir(parents=True, exist_ok=True)
    source = export_ref(ROOT, o.ref, workdir / "source") if o.ref else working_tree(ROOT)
    cap = soft - FD_MARGIN
    conns = min(ns.conns, cap)
    per_proc = -(-conns // ns.ws_procs)
    if per_proc > soft - 100:
        console.print(f"[red]--ws-procs {ns.ws_procs}: {per_proc} sockets per process > limit")
        return 2
    sample = min(ns.sample, conns) // GROUP * GROUP
    report = Report(
        workload="w3",
        stack=label,
        started_at=started,
        machine=machine_info(ROOT),
        config={
            "runs": o.runs,
            "connections_asked": ns.conns,
            "connections": conns,
            "open_files_limit": [soft, hard],
            "connections_capped_by": (
                f"RLIMIT_NOFILE {soft} (hard {hard}; this container has no CAP_SYS_RESOURCE, "
                f"so no process may raise it): the server process needs one fd per socket "
                f"plus ~{FD_MARGIN} of its own"
            )
            if conns < ns.conns
            else None,
            "ws_processes": ns.ws_procs,
            "handshakes_in_flight_per_process": ns.handshakes,
            "checkpoints": ns.checkpoints,
            "hold_s": ns.hold,
            "heartbeat": "a ping frame per socket every 30 s, spread evenly over the "
            "period; websockets' own keepalive pings off (the gateway's heartbeat is the "
            "ping frame, docs/realtime.md)",
            "reconnect": f"after a close: exponential backoff with full jitter (0..1 s, "
            f"0..2 s, ... capped at {ns.backoff_cap:g} s), handshake timeouts 30 s (open) + "
            "30 s (auth -> ready); the resume after the restart is an uncoordinated herd",
            "resume_gate": ns.resume_gate or "none (every client reconnects on its own)",
            "restart_sample_users": sample,
            "restart_messages": f"{PRE_MESSAGES} per group of {GROUP} just before the "
            "restart (201s awaited, then SIGINT), 1 per group as soon as the new server is "
            "ready (the clients are still away: they get it through their cursor), 1 per "
            "group once they are back (live)",
            "bus": "in-process" if o.stack == "embedded" else ns.bus,
            "measured_source": source.description,
            "seeding": "users + sessions inserted directly (no argon2; login not measured); "
            f"tokens from the server's signing key, valid {TOKEN_TTL_S} s "
            f"(SOCIUS_ACCESS_TOKEN_TTL_SECONDS={TOKEN_TTL_S}); sample groups through the API",
            "wait_quiet_s": o.wait_quiet,
        },
    )
    _define_metrics(report, not ns.no_floor)
    runner: _Runner | None = None
    async with fresh_stack(
        o.stack, workdir, postgres_admin_url=o.postgres_url, redis_url=o.redis_url, tag="w3"
    ) as stack:
        report.machine["stack"] = {
            "kind": o.stack,
            "label": label,
            "what": describe_stack(stack, ns.bus),
            **stack.info,
        }
        phases = 2 + o.runs * (ns.checkpoints * (1 if ns.no_floor else 2) + 6)
        with BenchProgress(console, phases) as progress:
            async with progress.phase(f"seeding {conns} users (direct inserts)", conns / 4000):
                seeded = await seed_users(stack, conns, "w3u")
            runner = _Runner(o, ns, report, progress, stack, source, workdir, seeded, conns, sample)
            async with History(stack) as history:
                runner.history = history
                await runner.prepare()
                for run_no in range(o.runs):
                    await runner.run(run_no)
        report.finished_at = datetime.now(UTC)
        report.notes += [
            "2 cores shared by the server, its database/cache/bus and the client processes.",
            "Memory per idle connection = (VmRSS of the Granian worker with N sockets after "
            "the ramp - VmRSS before the first socket) / N; the floor is the same figure for "
            "a bare ASGI app under Granian (bench/harness/bare_ws.py).",
            "Connects/s = sockets opened ÷ seconds spent opening them (TCP + WebSocket "
            "upgrade + auth frame + token check + bus subscription + presence + `ready`), "
            f"{ns.handshakes} handshakes in flight per client process.",
            "Idle cores = server CPU while nothing but heartbeats happens (pings and pongs; "
            "the gateway's re-check of every socket's session and log head every 30 s, in "
            "batches of 500; presence refresh every 20 s).",
        ]
        publish(report, source, width=140)
    if not o.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if report.total_errors == 0 else 1


class _Runner:
    def __init__(
        self,
        o: Options,
        ns: argparse.Namespace,
        report: Report,
        progress: BenchProgress,
        stack: Stack,
        source: Source,
        workdir: Path,
        seeded: Any,
        conns: int,
        sample: int,
    ) -> None:
        self.o = o
        self.ns = ns
        self.report = report
        self.m = report.metrics
        self.progress = progress
        self.stack = stack
        self.source = source
        self.workdir = workdir
        self.tokens: list[str] = seeded.tokens
        self.uids: list[int] = seeded.user_ids
        self.conns = conns
        self.sample = sample
        self.port = o.port or free_port()
        self.topo = Topology()
        self.history: History

    def _server(self) -> ServerProcess:
        return ServerProcess(
            server_env(self.stack, self.ns.bus, self.ns.nats_url),
            port=self.port,
            workers=1,
            log_path=self.workdir / "server.log",
            extra_env=self.source.env(),
        )

    async def prepare(self) -> None:
        """The sample groups, through the API, on a first server."""
        server = self._server()
        async with self.progress.phase("server + sample groups through the API", 5):
            await server.start()
            try:
                groups = [list(range(k, k + GROUP)) for k in range(0, self.sample, GROUP)]
                self.topo = await create_conversations(
                    server.base_url, self.uids, self.tokens, [], groups
                )
            finally:
                await server.stop()

    def _fleets(self, url: str, run_no: int) -> list[Child]:
        n, k = self.conns, self.ns.ws_procs
        bounds = [n * i // k for i in range(k + 1)]
        # ~28,000 ephemeral ports per source address towards one server port: several
        ips_per_fleet = max(1, -(-(bounds[1] - bounds[0]) // 20_000))
        return [
            Child(
                f"w3-fleet-{run_no}-{i}",
                fleet_main,
                {
                    "url": url,
                    "tokens": self.tokens[bounds[i] : bounds[i + 1]],
                    "convs": [
                        self.topo.by_user.get(u, []) for u in range(bounds[i], bounds[i + 1])
                    ],
                    "local_ips": [f"127.0.{1 + i}.{1 + j}" for j in range(ips_per_fleet)],
                    "handshakes": self.ns.handshakes,
                    "ping_interval": 30.0,
                    "open_timeout": 30.0,
                    "ready_timeout": 30.0,
                    "backoff_cap": self.ns.backoff_cap,
                    "resume_gate": self.ns.resume_gate,
                },
            )
            for i in range(k)
        ]

    async def _ramp(
        self, name: str, url: str, worker: int, server_pids: list[int], run_no: int
    ) -> tuple[list[Child], dict[str, Any]]:
        """Open every socket in chunks; RSS of the worker after each chunk."""
        fleets = self._fleets(url, run_no)
        for f in fleets:
            f.start()
        await asyncio.sleep(1.0)
        rss0 = proc_rss_kib(worker)
        points = [{"sockets": 0, "rss_kib": rss0}]
        opened = failed = 0
        seconds = 0.0
        cpu_s = 0.0
        chunks = self.ns.checkpoints
        wall = 0.0
        sizes = [len(f_tokens) for f_tokens in self._fleet_sizes()]
        for c in range(1, chunks + 1):
            meter = PidCpu({"server": server_pids}).start()
            async with self.progress.phase(
                f"{name}: ramp to {self.conns * c // chunks:,} sockets",
                self.conns / chunks / 300,
                server_pids=server_pids,
            ):
                res = await asyncio.gather(
                    *(
                        f.call("connect", size * c // chunks, 200)
                        for f, size in zip(fleets, sizes, strict=True)
                    )
                )
            used = meter.stop()
            cpu_s += used["server_cpu_s"]
            wall += used["server_cpu_s"] / max(used["server_cores"], 1e-9)
            opened += sum(r["opened"] for r in res)
            failed += sum(r["failed"] for r in res)
            seconds += max(r["seconds"] for r in res)
            await asyncio.sleep(PAUSE)
            points.append(
                {
                    "sockets": sum(r["up"] for r in res),
                    "rss_kib": proc_rss_kib(worker),
                    "fds": proc_fds(worker),
                    "failed": failed,
                }
            )
            if any(r["aborted"] for r in res):
                break
        status = await asyncio.gather(*(f.call("status") for f in fleets))
        up = sum(s["up"] for s in status)
        rss_n = points[-1]["rss_kib"]
        result = {
            "opened": opened,
            "failed": failed,
            "up": up,
            "seconds_opening": round(seconds, 2),
            "connects_per_s": opened / seconds if seconds else 0.0,
            "rss0_kib": rss0,
            "rssN_kib": rss_n,
            "kib_per_conn": (rss_n - rss0) / up if up else float("nan"),
            "server_cpu_us_per_connect": 1e6 * cpu_s / opened if opened else float("nan"),
            "server_cpu_s": cpu_s,
            "wall_s": wall,
            "checkpoints": points,
            "fleets": status,
        }
        return fleets, result

    def _fleet_sizes(self) -> list[range]:
        n, k = self.conns, self.ns.ws_procs
        bounds = [n * i // k for i in range(k + 1)]
        return [range(bounds[i], bounds[i + 1]) for i in range(k)]

    async def _close(self, fleets: list[Child]) -> None:
        await asyncio.gather(
            *(f.call("close_all", timeout=120) for f in fleets), return_exceptions=True
        )
        await asyncio.gather(*(f.stop() for f in fleets), return_exceptions=True)

    async def floor(self, run_no: int, raw: dict[str, Any]) -> None:
        bare = BareServer(free_port(), self.workdir / "bare.log")
        await bare.start()
        fleets: list[Child] = []
        try:
            worker = bare.worker_pids()[0]
            url = bare.base_url.replace("http://", "ws://") + "/"
            fleets, res = await self._ramp("floor (bare Granian)", url, worker, bare.pids(), run_no)
        finally:
            await self._close(fleets)
            await bare.stop()
        raw["floor"] = res
        errors = res["failed"] + (self.conns - res["up"])
        self.m["floor_rate"].add(res["connects_per_s"], errors)
        self.m["floor_kib"].add(res["kib_per_conn"], errors)
        self.m["floor_cpu_connect"].add(res["server_cpu_us_per_connect"], errors)
        self.progress.log(
            f"floor: {res['up']:,} sockets on bare Granian, {res['connects_per_s']:,.0f} "
            f"connects/s, {res['kib_per_conn']:.1f} KiB each"
        )
        await asyncio.sleep(PAUSE)

    async def run(self, run_no: int) -> None:
        self.progress.set_overall(f"run {run_no + 1}/{self.o.runs}")
        raw: dict[str, Any] = {"run": run_no + 1}
        await self.progress.wait_for_quiet(self.o.wait_quiet)
        if not self.ns.no_floor:
            await self.floor(run_no, raw)
        server = self._server()
        fleets: list[Child] = []
        try:
            async with self.progress.phase("fresh socius server", 5):
                await server.start()
            worker = server.worker_pids()[0]
            raw["server_open_files_limit"] = proc_nofile(worker)
            url = server.base_url.replace("http://", "ws://") + "/v1/ws"
            fleets, ramp = await self._ramp("socius", url, worker, server.pids(), run_no)
            raw["ramp"] = ramp
            ramp_errors = ramp["failed"] + (self.conns - ramp["up"])
            self.m["held"].add(ramp["up"], ramp_errors)
            self.m["rate"].add(ramp["connects_per_s"], ramp_errors)
            self.m["kib"].add(ramp["kib_per_conn"], ramp_errors)
            self.m["cpu_connect"].add(ramp["server_cpu_us_per_connect"], ramp_errors)
            self.progress.log(
                f"socius: {ramp['up']:,} sockets, {ramp['connects_per_s']:,.0f} connects/s, "
                f"{ramp['kib_per_conn']:.1f} KiB each, "
                f"{ramp['server_cpu_us_per_connect']:,.0f} µs server CPU per connect"
                + (f", [red]{ramp['failed']} failed[/]" if ramp["failed"] else "")
            )
            if "floor" in raw:
                self.report.ratios["kib_floor"].values.append(
                    ramp["kib_per_conn"] / raw["floor"]["kib_per_conn"]
                )
                self.report.ratios["rate_floor"].values.append(
                    ramp["connects_per_s"] / raw["floor"]["connects_per_s"]
                )
            raw["hold"] = await self._hold(fleets, server, worker)
            # the ramp's CPU includes the idle cost of the sockets already open (growing
            # linearly to the hold's idle cores at N): take its mean off, per connect
            idle = raw["hold"]["cpu"]["server_cores"] * ramp["wall_s"] / 2
            ramp["server_cpu_us_per_connect_net_of_idle"] = (
                1e6 * max(ramp["server_cpu_s"] - idle, 0.0) / ramp["opened"]
                if ramp["opened"]
                else float("nan")
            )
            raw["restart"] = await self._restart(run_no, fleets, server, ramp["rss0_kib"])
        finally:
            await self._close(fleets)
            await server.stop()
        self.report.runs.append(raw)

    async def _hold(
        self, fleets: list[Child], server: ServerProcess, worker: int
    ) -> dict[str, Any]:
        before = await asyncio.gather(*(f.call("status") for f in fleets))
        meter = PidCpu({"server": server.pids(), "fleets": [f.pid for f in fleets]}).start()
        async with self.progress.phase(
            f"hold {self.conns:,} idle sockets, heartbeats", self.ns.hold, server_pids=server.pids()
        ) as cpu:
            await asyncio.sleep(self.ns.hold)
        used = meter.stop()
        after = await asyncio.gather(*(f.call("status") for f in fleets))
        closes = sum(sum(s["closes"].values()) for s in after) - sum(
            sum(s["closes"].values()) for s in before
        )
        pings = sum(s["pings"] for s in after) - sum(s["pings"] for s in before)
        pongs = sum(s["pongs"] for s in after) - sum(s["pongs"] for s in before)
        up = sum(s["up"] for s in after)
        self.m["idle_cores"].add(used["server_cores"], closes)
        rec = {
            "seconds": self.ns.hold,
            "closes": closes,
            "close_codes": [s["closes"] for s in after],
            "pings": pings,
            "pongs": pongs,
            "up_after": up,
            "server_rss_kib": proc_rss_kib(worker),
            "cpu": used,
            "machine": cpu.result,
        }
        self.progress.log(
            f"hold {self.ns.hold:.0f} s: {closes} closed {rec['close_codes']}, "
            f"{pings:,} pings / {pongs:,} pongs, "
            f"server {used['server_cores']:.2f} cores, fleets {used['fleets_cores']:.2f} cores"
        )
        return rec

    async def _post(
        self, http: httpx.AsyncClient, base_url: str, tag: str, per_group: int
    ) -> tuple[int, int]:
        """`per_group` messages to every sample group, from random members; (201s, errors)."""
        rng = random.Random(tag)
        ok = errors = 0

        async def one(conv: str, k: int) -> None:
            nonlocal ok, errors
            u = rng.choice(self.topo.members[conv])
            client = AsyncClient(base_url, http=http, access_token=self.tokens[u])
            body = f"B|{tag}|{time.monotonic():.6f}|{k}"
            try:
                resp = await client.raw(
                    "POST",
                    f"/v1/conversations/{conv}/messages",
                    json={"client_msg_id": f"w3-{tag}-{conv}-{k}", "body": body},
                )
            except httpx.HTTPError:
                errors += 1
                return
            if resp.status_code == 201:
                ok += 1
            else:
                errors += 1

        # in order within a group (seq order = send order), groups concurrently
        async def group(conv: str) -> None:
            for k in range(per_group):
                await one(conv, k)

        await asyncio.gather(*(group(c) for c in self.topo.members))
        return ok, errors

    async def _check(self, fleets: list[Child], tag: str) -> dict[str, Any]:
        expected = await self.history.seqs(f"w3-{tag}-")
        want = sum(len(v) * len(self.topo.members[c]) for c, v in expected.items())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            counts = await asyncio.gather(*(f.call("counts", [tag]) for f in fleets))
            if sum(c["counts"][tag] for c in counts) >= want:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        checks = await asyncio.gather(*(f.call("verify", tag, expected, False) for f in fleets))
        lat: array.array[float] = array.array("d")
        for c in checks:
            lat.frombytes(c.pop("latencies"))
        wrong = {
            k: sum(c[k] for c in checks)
            for k in ("lost", "duplicated", "out_of_order", "phantom", "foreign")
        }
        return {
            "messages": sum(len(v) for v in expected.values()),
            "deliveries_expected": want,
            "deliveries": sum(c["deliveries"] for c in checks),
            **wrong,
            "wrong": sum(wrong.values()),
            "examples": [e for c in checks for e in c["examples"]],
            "latency_ms": percentiles_ms(list(lat)),
        }

    async def _restart(
        self, run_no: int, fleets: list[Child], server: ServerProcess, rss0: int
    ) -> dict[str, Any]:
        """Messages, then stop + start; all back, nothing missed. Memory per connection
        after the resume is measured against the first server's RSS before any socket."""
        pre, mid, post = f"r{run_no + 1}pre", f"r{run_no + 1}mid", f"r{run_no + 1}post"
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            sent_ok, sent_err = await self._post(http, server.base_url, pre, PRE_MESSAGES)
        t_stop = time.monotonic()
        async with self.progress.phase("restart: stop (SIGINT)", 3):
            await server.stop()
        t_down = time.monotonic()
        async with self.progress.phase("restart: start", 5):
            await server.start(ready_within=180)
        t_ready = time.monotonic()
        worker = server.worker_pids()[0]

        async def post_mid() -> tuple[int, int]:
            # while the clients are still away: they must get these through their cursor
            async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
                return await self._post(http, server.base_url, mid, 1)

        mid_task = asyncio.create_task(post_mid())
        resumed = 0
        status: list[dict[str, Any]] = []
        async with self.progress.phase(
            f"resume: {self.conns:,} clients reconnect with their cursor",
            self.conns / 500,
            server_pids=server.pids(),
        ):
            deadline = t_ready + self.ns.resume_timeout
            while time.monotonic() < deadline:
                status = await asyncio.gather(*(f.call("resume_status", t_stop) for f in fleets))
                if sum(s["up"] for s in status) >= self.conns:
                    break
                await asyncio.sleep(1.0)
        up = sum(s["up"] for s in status)
        resumed = sum(s["resumed"] for s in status)
        last = max((s["last"] for s in status if s["last"]), default=t_ready)
        first = min((s["first"] for s in status if s["first"]), default=t_ready)
        times: array.array[float] = array.array("d")
        for s in status:
            times.frombytes(s.pop("times"))
        await asyncio.sleep(PAUSE)
        rss_after = proc_rss_kib(worker)
        mid_ok, mid_err = await mid_task
        check_pre = await self._check(fleets, pre)
        check_mid = await self._check(fleets, mid)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            post_ok, post_err = await self._post(http, server.base_url, post, 1)
        check_post = await self._check(fleets, post)
        resume_s = last - t_ready
        # reconnects/s: from the first resumed client to the last (the server was ready)
        span = max(last - max(first, t_ready), 1e-3)
        rate = resumed / span if resumed else 0.0
        missing = self.conns - up
        checks = (check_pre, check_mid, check_post)
        wrong = sum(c["wrong"] for c in checks)
        errors = missing + sent_err + mid_err + post_err + wrong
        errors += sum(max(0, c["deliveries_expected"] - c["deliveries"]) for c in checks)
        self.m["resumed"].add(up, errors)
        self.m["resume_rate"].add(rate, errors)
        self.m["resume_s"].add(resume_s, errors)
        self.m["down_s"].add(t_ready - t_stop, errors)
        self.m["rss_resumed"].add(rss_after / 1024, errors)
        self.m["missed"].add(wrong, errors)
        rec = {
            "pre_messages": {"accepted": sent_ok, "errors": sent_err},
            "stop_s": round(t_down - t_stop, 2),
            "start_s": round(t_ready - t_down, 2),
            "resume_s": round(resume_s, 2),
            "resumed": resumed,
            "up": up,
            "missing": missing,
            "reconnects_per_s": rate,
            "resume_time_after_ready_ms": percentiles_ms([t - t_ready for t in times]),
            "reconnect_errors": _merge_counts(s.get("reconnect_errors", {}) for s in status),
            "server_rss_after_resume_kib": rss_after,
            "kib_per_conn_after_resume": (rss_after - rss0) / up if up else None,
            "fleets": status,
            "check_pre_restart_messages": check_pre,
            "mid_messages": {"accepted": mid_ok, "errors": mid_err},
            "check_messages_sent_while_clients_away": check_mid,
            "post_messages": {"accepted": post_ok, "errors": post_err},
            "check_post_restart_messages": check_post,
            "errors": errors,
        }
        self.progress.log(
            f"restart: down {t_ready - t_stop:.1f} s, {up:,}/{self.conns:,} back "
            f"{resume_s:.1f} s after ready ({rate:,.0f}/s); pre-restart messages: "
            f"{check_pre['deliveries']}/{check_pre['deliveries_expected']} delivered, "
            f"{check_pre['wrong']} wrong; while away: {check_mid['deliveries']}/"
            f"{check_mid['deliveries_expected']}, {check_mid['wrong']} wrong; after: "
            f"{check_post['deliveries']}/"
            f"{check_post['deliveries_expected']}, {check_post['wrong']} wrong; failed "
            f"reconnect attempts: {rec['reconnect_errors']}"
        )
        return rec


def _merge_counts(parts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in parts:
        for k, v in p.items():
            out[k] = out.get(k, 0) + v
    return out
