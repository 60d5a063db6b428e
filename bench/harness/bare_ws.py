"""The WebSocket floor: a bare ASGI app under the same Granian server socius uses.

It accepts a socket, answers its first frame (the client's auth frame) with
`{"type": "ready"}` and every later one with `{"type": "pong"}`, and otherwise waits: the
least any ASGI app can do per idle connection. `BareServer` runs it as `socius serve` is
run (one worker, backlog 4096, no access log) so connects/s and memory per idle connection
can be divided by it. `GET /` answers 200 (readiness).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["BareServer", "app"]

_ROOT = Path(__file__).resolve().parents[2]
_READY = '{"type":"ready","cursor":null}'
_PONG = '{"type":"pong"}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        first = True
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": _READY if first else _PONG})
            first = False
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class BareServer:
    """A bare ASGI app (`target`, "module:attribute") under Granian with socius serve's
    settings: one worker, backlog 4096, no access log, Granian's default event loop."""

    def __init__(
        self, port: int, log_path: Path, target: str = "bench.harness.bare_ws:app"
    ) -> None:
        self.port = port
        self.log_path = log_path
        self.target = target
        self.base_url = f"http://127.0.0.1:{port}"
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, ready_within: float = 30.0) -> None:
        granian = Path(sys.executable).with_name("granian")
        root = _ROOT
        await asyncio.to_thread(self.log_path.parent.mkdir, parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                str(granian),
                "--interface",
                "asgi",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--backlog",
                "4096",
                self.target,
                cwd=root,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + ready_within
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while True:
                if self._proc.returncode is not None:
                    raise RuntimeError(f"granian exited; see {self.log_path}")
                try:
                    if (await client.get("/")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    await self.stop()
                    raise RuntimeError(f"bare granian not ready; see {self.log_path}")
                await asyncio.sleep(0.1)

    def worker_pids(self) -> list[int]:
        if self._proc is None:
            return []
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self._proc.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [int(p) for p in out.split()]

    def pids(self) -> list[int]:
        return ([self._proc.pid] if self._proc else []) + self.worker_pids()

    async def stop(self, grace: float = 20.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        os.killpg(proc.pid, signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
