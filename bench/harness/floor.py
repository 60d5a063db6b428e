"""The framework floor: a bare Litestar + msgspec app on the same Granian settings as
`socius serve`, answering one `GET /` with a small JSON object.

Every `socius bench` run measures it (`measure_floor`), and every server CPU figure is
also given as a ratio to its CPU per request, measured in the same run: what socius costs
beyond what the framework and the server cost for the least useful request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, get

from bench.harness.bare_ws import BareServer
from bench.harness.cpu import CpuMeter
from bench.harness.options import Options
from bench.harness.progress import BenchProgress
from bench.harness.results import Report
from bench.harness.server import free_port
from bench.harness.wrk import run_wrk

__all__ = ["FloorServer", "app", "define_floor_metrics", "floor_phase", "measure_floor"]

THROUGHPUT = "throughput (requests/s)"
SERVER_CPU = "server CPU per request (µs, all server threads; robust to a shared machine)"


class Hello(msgspec.Struct):
    id: str
    name: str
    ok: bool


@get("/", sync_to_thread=False)
def hello() -> Hello:
    return Hello(id="1", name="floor", ok=True)


app = Litestar(route_handlers=[hello], logging_config=None)


class FloorServer(BareServer):
    """The floor app under Granian, as `socius serve` runs it."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        super().__init__(port or free_port(), log_path, target="bench.harness.floor:app")


async def measure_floor(
    server: FloorServer, *, duration: float, connections: int, threads: int = 1
) -> dict[str, Any]:
    """wrk `GET /` on the floor server: rate, latency, errors and server CPU per request."""
    await run_wrk(server.base_url, "floor.lua", duration=1, connections=connections)  # warm
    with CpuMeter(server.pids()) as meter:
        res = await run_wrk(
            server.base_url,
            "floor.lua",
            duration=duration,
            connections=connections,
            threads=threads,
        )
    record = res.to_json()
    record["cpu"] = meter.result
    cpu = meter.result["server_cpu_s"]
    record["server_cpu_us_per_request"] = cpu / res.requests * 1e6 if res.requests else float("nan")
    return record


def define_floor_metrics(report: Report) -> None:
    """The floor's rate and CPU per request, in every workload's report."""
    report.metric(
        "floor", "bare Litestar+msgspec GET (framework floor)", "req/s", THROUGHPUT, is_floor=True
    )
    report.metric(
        "cpu_floor",
        "server CPU, framework floor",
        "µs",
        SERVER_CPU,
        phase="floor",
        is_floor=True,
        higher_is_better=False,
    )


async def floor_phase(
    o: Options, report: Report, progress: BenchProgress, server: FloorServer, raw: dict[str, Any]
) -> float:
    """One floor measurement in a run: recorded in `raw` and the report; its server CPU
    µs per request (what the run's other CPU figures are divided by)."""
    await progress.wait_for_quiet(o.wait_quiet)
    async with progress.phase("framework floor: wrk GET / (bare Litestar)", o.duration + 1):
        rec = await measure_floor(
            server, duration=o.duration, connections=o.connections, threads=o.wrk_threads
        )
    raw["floor"] = rec
    report.metrics["floor"].add(rec["rate"], rec["errors"])
    report.metrics["cpu_floor"].add(rec["server_cpu_us_per_request"], rec["errors"])
    cpu: float = rec["server_cpu_us_per_request"]
    return cpu
