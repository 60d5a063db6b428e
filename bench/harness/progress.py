"""A Rich progress display: one bar for the whole bench, one for the current phase."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bench.harness.cpu import CpuMeter, machine_busy_cores

__all__ = ["BenchProgress"]


class BenchProgress:
    """`async with progress.phase("refresh", seconds=10):` advances a timed bar."""

    def __init__(self, console: Console, total_phases: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._overall: TaskID = self._progress.add_task("bench", total=total_phases)
        self._phase: TaskID = self._progress.add_task("", total=1, visible=False)

    def __enter__(self) -> BenchProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def log(self, message: str) -> None:
        self._progress.console.log(message)

    def set_overall(self, description: str) -> None:
        self._progress.update(self._overall, description=description)

    async def wait_for_quiet(self, max_wait: float, *, threshold: float = 0.3) -> float:
        """Before a phase: wait (up to `max_wait` s) until other processes leave the CPU
        nearly idle (< `threshold` cores busy); returns the seconds waited."""
        waited = 0.0
        while max_wait > 0:
            busy = await machine_busy_cores(2.0)
            if busy < threshold or waited >= max_wait:
                break
            self._progress.update(
                self._phase, description=f"waiting for a quiet machine ({busy:.1f} cores busy)"
            )
            waited += 2.0
        return waited

    @asynccontextmanager
    async def phase(
        self, name: str, seconds: float = 0.0, *, server_pids: list[int] | None = None
    ) -> AsyncIterator[CpuMeter]:
        """A timed bar; the CpuMeter it yields holds where the CPU went once it ends."""
        meter = CpuMeter(server_pids or [])
        total = max(seconds, 1.0)
        self._progress.reset(self._phase, total=total, description=name, visible=True)
        start = time.monotonic()

        async def tick() -> None:
            while True:
                self._progress.update(self._phase, completed=min(time.monotonic() - start, total))
                await asyncio.sleep(0.2)

        ticker = asyncio.create_task(tick())
        try:
            with meter:
                yield meter
        finally:
            ticker.cancel()
            self._progress.update(self._phase, completed=total)
            self._progress.advance(self._overall)
