"""Sample a server worker with py-spy during a phase, and sum up where its time went.

The raw (folded) stacks go to bench/results/tmp/profiles/ (not committed); the summary
(own time by package, top functions by cumulative time, on the event-loop thread) goes
into the JSON.
py-spy is not a socius dependency: `pip install py-spy` into the venv to use --profile.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["Profiler", "py_spy"]


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def _package(frame: str) -> str:
    """'func (sqlalchemy/engine/base.py:12)' -> 'sqlalchemy'; socius gets its subpackage."""
    if " (" not in frame:
        return "native / idle"
    path = frame.rsplit(" (", 1)[1].rstrip(")").split(":", 1)[0]
    parts = path.split("/")
    if parts[0] == "socius" and len(parts) > 2:
        return f"socius.{parts[1]}"
    if parts[0] == "granian":
        return "granian (event loop, native)"
    return parts[0] if len(parts) > 1 else "python stdlib"


_SCAFFOLDING = ("granian/", "typer/", "click/", "multiprocessing/", "socius/cli.py", "(socius:")


def _is_scaffolding(frame: str) -> bool:
    """Frames every sample of the worker has (process start-up, the server's run loop)."""
    return frame.startswith("<module>") or any(s in frame for s in _SCAFFOLDING)


def _short(frame: str) -> str:
    """'func (sqlalchemy/engine/base.py:12)' -> 'func (sqlalchemy/engine/base.py)'."""
    if " (" not in frame:
        return frame
    name, _, where = frame.rpartition(" (")
    return f"{name} ({where.rstrip(')').split(':', 1)[0]})"


class Profiler:
    def __init__(self, pid: int, out: Path, seconds: float, rate: int = 200) -> None:
        self.pid = pid
        self.out = out
        self.seconds = seconds
        self.rate = rate
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Profiler:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._proc = await asyncio.create_subprocess_exec(
            exe,
            "record",
            "--pid",
            str(self.pid),
            "--duration",
            str(max(1, int(self.seconds))),
            "--rate",
            str(self.rate),
            "--format",
            "raw",
            "--threads",
            "--nonblocking",
            "--output",
            str(self.out),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None:
            await self._proc.wait()

    def summary(self, top: int = 25) -> dict[str, Any]:
        threads: Counter[str] = Counter()
        own: Counter[str] = Counter()
        packages: Counter[str] = Counter()
        cumulative: Counter[str] = Counter()
        main = 0
        if not self.out.exists():
            return {"error": "py-spy wrote nothing"}
        for line in self.out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            thread = frames[0]
            threads[thread.split(": ", 1)[-1]] += n
            if "MainThread" not in thread:
                continue
            main += n
            leaf = frames[-1] if len(frames) > 1 else "native / idle"
            own[leaf] += n
            packages[_package(leaf)] += n
            for name in {_short(f) for f in frames[1:] if not _is_scaffolding(f)}:
                cumulative[name] += n

        def pct(counter: Counter[str]) -> list[tuple[float, str]]:
            return (
                [(round(100 * c / main, 1), k) for k, c in counter.most_common(top)] if main else []
            )

        return {
            "folded": str(self.out),
            "rate_hz": self.rate,
            "samples_by_thread": dict(threads.most_common()),
            "main_thread_samples": main,
            "main_thread_own_by_package_pct": pct(packages),
            "main_thread_own_pct": pct(own),
            "main_thread_cumulative_pct": pct(cumulative),
        }
