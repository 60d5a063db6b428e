"""Run `socius serve` as a subprocess on a free port and wait until /readyz answers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["ServerProcess", "free_port"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _socius_bin() -> str:
    candidate = Path(sys.executable).with_name("socius")
    return str(candidate) if candidate.exists() else "socius"


class ServerProcess:
    """One `socius serve` process group. Only SOCIUS_* variables given here reach it."""

    def __init__(
        self,
        settings_env: dict[str, str],
        *,
        port: int,
        workers: int,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.port = port
        self.workers = workers
        self.log_path = log_path
        self.base_url = f"http://127.0.0.1:{port}"
        # socius refuses unknown SOCIUS_* variables, and the caller's own must not leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIUS_")}
        env.update(settings_env)
        env.update(extra_env or {})
        env["SOCIUS_WORKERS"] = str(workers)
        self._env = env
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self, ready_within: float = 90.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                _socius_bin(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: Granian's workers stop with it
            )
        proc = self._proc
        deadline = time.monotonic() + ready_within
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(
                        f"socius serve exited with {proc.returncode}; see {self.log_path}"
                    )
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    await self.stop()
                    raise RuntimeError(
                        f"socius serve not ready after {ready_within}s; see {self.log_path}"
                    )
                await asyncio.sleep(0.1)

    async def stop(self, grace: float = 20.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        os.killpg(proc.pid, signal.SIGINT)  # Granian shuts down gracefully on SIGINT
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    def pids(self) -> list[int]:
        """The Granian main process and its workers."""
        return ([self._proc.pid] if self._proc else []) + self.worker_pids()

    def worker_pids(self) -> list[int]:
        """The Granian worker processes (children of the main one), for profilers."""
        if self._proc is None:
            return []
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self._proc.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [int(p) for p in out.split()]
