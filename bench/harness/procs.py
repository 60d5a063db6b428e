"""Load-generator processes (WebSocket fleets, HTTP senders) beside the bench process, and
what /proc says about any process: CPU time, resident memory, open files.

A child is a `multiprocessing` "spawn" process running an asyncio (uvloop) main; the parent
talks to it with request/reply messages over a Pipe (`await child.call(...)`). The child
side is `serve_commands(conn, handler)`: each command is handled on the child's event loop
and answered in order. Children inherit the parent's RLIMIT_NOFILE (`raise_nofile`).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import resource
import threading
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = [
    "Child",
    "proc_cpu_s",
    "proc_fds",
    "proc_rss_kib",
    "raise_nofile",
    "run_child",
    "serve_commands",
]

_HZ = os.sysconf("SC_CLK_TCK")


def raise_nofile(want: int) -> tuple[int, int]:
    """Raise this process's open-file limit (soft and, when allowed, hard) to ``want``;
    the limit now in force. Children and servers started afterwards inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft, hard
    try:
        nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        nr_open = want
    target = min(want, nr_open)
    for new_hard in (max(hard, target), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(target, new_hard), new_hard))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds; 0 when it is gone."""
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(parts[11]) + int(parts[12])) / _HZ


def proc_rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory in KiB from /proc/<pid>/status (0 when it is gone):
    ``VmRSS`` all of it, ``RssAnon`` its anonymous memory only (heap and stacks: not the
    pages of files it maps, such as SQLite's memory map, which come and go)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def proc_nofile(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return " ".join(line.split()[3:5])
    except OSError:
        pass
    return "?"


# -- parent side --------------------------------------------------------------------------


class Child:
    """One load-generator process. ``call`` sends a command and awaits its reply."""

    def __init__(self, name: str, target: Callable[[Connection, Any], None], spec: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.name = name
        self._conn, child_end = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(target=target, args=(child_end, spec), name=name, daemon=True)
        self._child_end = child_end
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._proc.start()
        self._child_end.close()

    @property
    def pid(self) -> int:
        assert self._proc.pid is not None
        return self._proc.pid

    async def call(self, *command: Any, timeout: float = 600.0) -> Any:  # noqa: ASYNC109
        async with self._lock:
            self._conn.send(command)
            ready = await asyncio.wait_for(asyncio.to_thread(self._conn.poll, timeout), timeout + 5)
            if not ready:
                raise TimeoutError(f"{self.name}: no answer to {command[0]!r} in {timeout}s")
            kind, value = self._conn.recv()
        if kind == "error":
            raise RuntimeError(f"{self.name} failed on {command[0]!r}:\n{value}")
        return value

    async def stop(self, grace: float = 15.0) -> None:
        if not self._proc.is_alive():
            return
        with contextlib.suppress(Exception):
            await self.call("exit", timeout=grace)
        await asyncio.to_thread(self._proc.join, grace)
        if self._proc.is_alive():
            self._proc.kill()
            await asyncio.to_thread(self._proc.join, 5)


# -- child side ---------------------------------------------------------------------------


def run_child(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a child's async main on uvloop when available."""
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


async def serve_commands(
    conn: Connection, handle: Callable[[str, tuple[Any, ...]], Awaitable[Any]]
) -> None:
    """Answer the parent's commands until "exit" (or the parent goes away)."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[Any, ...] | None] = asyncio.Queue()

    def reader() -> None:
        while True:
            try:
                command = conn.recv()
            except (EOFError, OSError):
                loop.call_soon_threadsafe(inbox.put_nowait, None)
                return
            loop.call_soon_threadsafe(inbox.put_nowait, command)
            if command and command[0] == "exit":
                return

    threading.Thread(target=reader, name="commands", daemon=True).start()
    while True:
        command = await inbox.get()
        if command is None:
            return
        name, args = command[0], command[1:]
        try:
            value = await handle(name, args)
            reply: tuple[str, Any] = ("ok", value)
        except Exception:
            reply = ("error", traceback.format_exc())
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return
        if name == "exit":
            return
