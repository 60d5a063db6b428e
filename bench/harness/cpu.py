"""Where the machine's CPU went during a phase: the server, the load generator (this
process and its children: wrk, helpers), and everything else (the database servers,
and whatever else shares the machine). Read from /proc; cores busy on average.

The database servers' own share of "other" is told apart too (``postgres_cores``,
``redis_cores``): every process of that name on the machine, with what its reaped
children used (a PostgreSQL backend that ends during the phase still counts)."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CpuMeter", "machine_busy_cores"]

_HZ = os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """Seconds of CPU busy on all cores since boot (everything but idle and iowait)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _HZ


def _process_cpu(pid: int) -> float:
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(parts[11]) + int(parts[12])) / _HZ  # utime + stime


_DATABASES = {"postgres": "postgres_cores", "redis-server": "redis_cores"}


def _database_cpu() -> dict[str, float]:
    """CPU seconds so far of the database servers, by ``_DATABASES`` key: each process of
    that name, its own time and its reaped children's (the postmaster's exited backends)."""
    out = dict.fromkeys(_DATABASES.values(), 0.0)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            head, _, rest = Path(entry.path, "stat").read_text().rpartition(")")
        except OSError:
            continue
        key = _DATABASES.get(head.partition("(")[2])
        if key is not None:
            parts = rest.split()  # utime, stime, cutime, cstime
            out[key] += sum(int(v) for v in parts[11:15]) / _HZ
    return out


def _self_and_children() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class CpuMeter:
    server_pids: list[int]
    _t: float = 0.0
    _machine: float = 0.0
    _server: float = 0.0
    _loadgen: float = 0.0
    _databases: dict[str, float] = field(default_factory=dict)
    result: dict[str, float] = field(default_factory=dict)

    def _server_cpu(self) -> float:
        return sum(_process_cpu(p) for p in self.server_pids)

    def __enter__(self) -> CpuMeter:
        self._t = time.monotonic()
        self._machine = _machine_busy()
        self._server = self._server_cpu()
        self._loadgen = _self_and_children()
        self._databases = _database_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = max(time.monotonic() - self._t, 1e-9)
        machine = (_machine_busy() - self._machine) / elapsed
        server = (self._server_cpu() - self._server) / elapsed
        loadgen = (_self_and_children() - self._loadgen) / elapsed
        databases = {
            k: round(max(v - self._databases.get(k, 0.0), 0.0) / elapsed, 3)
            for k, v in _database_cpu().items()
        }
        self.result = {
            "elapsed_s": round(elapsed, 3),
            "server_cpu_s": round(server * elapsed, 3),
            "cores": float(os.cpu_count() or 0),
            "machine_busy_cores": round(machine, 2),
            "server_cores": round(server, 2),
            "loadgen_cores": round(loadgen, 2),
            "other_cores": round(max(machine - server - loadgen, 0.0), 2),
            **databases,  # part of other_cores
        }


async def machine_busy_cores(seconds: float = 2.0) -> float:
    """Cores busy on average over the next `seconds`, whatever is running."""
    import asyncio

    t, busy = time.monotonic(), _machine_busy()
    await asyncio.sleep(seconds)
    return (_machine_busy() - busy) / (time.monotonic() - t)
