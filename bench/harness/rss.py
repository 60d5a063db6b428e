"""Resident memory of the server processes over a phase: is it flat?

`async with RssSampler(server.pids, interval=5.0) as rss:` reads VmRSS of every server
process (the Granian main process and each worker) when the phase starts, every
`interval` seconds during it and when it ends; `rss.result` then holds, summed over the
processes and per process: start, end, max (MiB), growth (end - start) and the slope of a
least-squares line through the samples (MiB per minute), over the whole phase and over its
second half (past the caches' fill-up, which is where a leak shows); under ``anon`` the
same of RssAnon (anonymous memory only: a memory-mapped SQLite file's pages count in VmRSS
and come and go with the map).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bench.harness.procs import proc_rss_kib

__all__ = ["RssSampler", "slope_per_minute"]


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute (0 with < 2 points)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mt) * (v - mv) for t, v in points) / var * 60.0


def _summary(points: list[tuple[float, float]]) -> dict[str, float]:
    values = [v for _, v in points]
    half = [p for p in points if p[0] >= points[-1][0] / 2]
    return {
        "start_mib": round(values[0], 1),
        "end_mib": round(values[-1], 1),
        "max_mib": round(max(values), 1),
        "growth_mib": round(values[-1] - values[0], 1),
        "slope_mib_per_min": round(slope_per_minute(points), 2),
        "slope_second_half_mib_per_min": round(slope_per_minute(half), 2),
    }


class RssSampler:
    """Samples the RSS of `pids()` (called at each sample: workers may be restarted)."""

    def __init__(self, pids: Callable[[], list[int]], interval: float = 5.0) -> None:
        self._pids = pids
        self.interval = interval
        self._t0 = 0.0
        self._samples: list[tuple[float, dict[int, int]]] = []
        self._anon: list[tuple[float, float]] = []  # (seconds, MiB summed)
        self._task: asyncio.Task[None] | None = None
        self.result: dict[str, Any] = {}

    def _sample(self) -> None:
        t, pids = time.monotonic() - self._t0, self._pids()
        self._samples.append((t, {pid: proc_rss_kib(pid) for pid in pids}))
        self._anon.append((t, sum(proc_rss_kib(pid, "RssAnon") for pid in pids) / 1024))

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._sample()

    async def __aenter__(self) -> RssSampler:
        self._t0 = time.monotonic()
        self._sample()
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self._sample()
        total = [(t, sum(per.values()) / 1024) for t, per in self._samples]
        pids = sorted({pid for _, per in self._samples for pid in per})
        self.result = {
            **_summary(total),
            "interval_s": self.interval,
            "anon": _summary(self._anon),  # RssAnon: without mapped files' pages
            "per_process": {
                str(pid): _summary([(t, per[pid] / 1024) for t, per in self._samples if pid in per])
                for pid in pids
            },
            "samples": [[round(t, 1), round(v, 1)] for t, v in total],
        }
