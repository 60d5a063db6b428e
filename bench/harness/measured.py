"""The measured `socius serve` and the framework floor beside it, started and always stopped
together (w0, w1 and w4 measure both in every run)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bench.harness.floor import FloorServer
from bench.harness.options import Options
from bench.harness.progress import BenchProgress
from bench.harness.server import ServerProcess, free_port
from bench.harness.source import Source

__all__ = ["server_and_floor"]


@asynccontextmanager
async def server_and_floor(
    o: Options,
    env: dict[str, str],
    workdir: Path,
    source: Source,
    progress: BenchProgress,
    *,
    label: str,
    expected_s: float,
) -> AsyncIterator[tuple[ServerProcess, FloorServer]]:
    """`socius serve` with ``env`` (``o.workers`` workers, ``o.port`` or a free one, the
    measured source) and the floor, both started under the progress phase ``label``;
    logs in ``workdir``. Both are stopped on the way out, whatever happened."""
    server = ServerProcess(
        env,
        port=o.port or free_port(),
        workers=o.workers,
        log_path=workdir / "server.log",
        extra_env={**source.env(), **o.server_env()},
    )
    floor = FloorServer(workdir / "floor.log")
    try:
        async with progress.phase(label, expected_s):
            await server.start()
            await floor.start()
        yield server, floor
    finally:
        await server.stop()
        await floor.stop()
