"""Drive HTTP load with wrk and a Lua script from bench/lua/, and parse its JSON report."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LUA_DIR", "WrkResult", "run_wrk", "wrk_version"]

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"
_MARK = "BENCH_JSON "


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    rate: float  # completed requests per second (errors included; they must be 0)
    latency_ms: dict[str, float]  # p50, p90, p99, p999, mean, max
    socket_errors: dict[str, int]  # connect, read, write, timeout
    non2xx: int
    extra: dict[str, int] = field(default_factory=dict)  # script counters (starved, ...)
    connections: int = 0
    threads: int = 0

    @property
    def errors(self) -> int:
        return self.non2xx + sum(self.socket_errors.values()) + sum(self.extra.values())

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors}


def wrk_version() -> str:
    if shutil.which("wrk") is None:
        return "missing"
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "?"


async def run_wrk(
    base_url: str,
    script: str,
    *,
    duration: float,
    connections: int,
    threads: int = 1,
    env: dict[str, str] | None = None,
    timeout_s: int = 5,
) -> WrkResult:
    """Run `wrk` against `base_url` with bench/lua/`script` for `duration` seconds."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: run scripts/bench-deps")
    threads = max(1, min(threads, connections))
    full_env = dict(os.environ)
    full_env["LUA_PATH"] = f"{LUA_DIR}/?.lua;;"
    full_env["BENCH_WRK_THREADS"] = str(threads)
    full_env.update(env or {})
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(LUA_DIR / script),
        base_url,
    ]
    proc = await asyncio.create_subprocess_exec(
        *cmd, env=full_env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=duration + 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith(_MARK)), None)
    if proc.returncode != 0 or line is None:
        stderr = err.decode(errors="replace")[-2000:]
        raise RuntimeError(f"wrk failed ({proc.returncode}): {stderr}\n{text[-2000:]}")
    data = json.loads(line[len(_MARK) :])
    duration_s = data["duration_us"] / 1e6
    lat = {k: v / 1000.0 for k, v in data["latency_us"].items()}
    extra = {k: int(data[k]) for k in ("starved", "bad_body") if data.get(k)}
    socket_errors = {k: int(data["errors"][k]) for k in ("connect", "read", "write", "timeout")}
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=duration_s,
        rate=data["requests"] / duration_s if duration_s else 0.0,
        latency_ms=lat,
        socket_errors=socket_errors,
        # the Lua counter sees every non-2xx; wrk's own "status" counts only >= 400
        non2xx=max(int(data["non2xx"]), int(data["errors"]["status"])),
        extra=extra,
        connections=connections,
        threads=threads,
    )
