"""Real ``socius serve`` processes for the end-to-end tests: start, wait for /readyz, kill.

Each node is one Granian server (a main process and its worker process) on its own port.
Every node of a cluster shares the PostgreSQL database, the Redis key prefix and the bus,
like the processes of a deployment. A node's stdout and stderr go to a log file (all its
incarnations, one after the other), which the conftest attaches to a failing test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["SOCIUS", "Cluster", "Node", "free_port", "process_tree"]

# `python -m socius.cli` does not run the app; the console script does.
SOCIUS = Path(sys.executable).parent / "socius"
START_TIMEOUT = 30.0  # seconds for a node to answer /readyz
STOP_TIMEOUT = 15.0  # seconds for a node to exit after SIGTERM


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # The command name may hold spaces and parentheses: the fields start after the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (parents first)."""
    tree = _children()
    found, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has released its sockets: not alive)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class Node:
    """One ``socius serve`` process tree on a fixed port (kept across restarts)."""

    def __init__(self, name: str, port: int, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.port = port
        # One worker process per node (SOCIUS_WORKERS=0 would start one per core on
        # PostgreSQL + Redis): a node's /metrics, its node id and its SIGKILL are one process.
        self.env = {"SOCIUS_WORKERS": "1", **env}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.incarnations = 0

    def __repr__(self) -> str:
        return f"Node({self.name!r}, port={self.port})"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no output)"

    async def start(self) -> None:
        """Spawn the server and wait until /readyz answers 200."""
        assert not self.running, f"{self} is already running"
        self.incarnations += 1
        self._spawn()
        await self._wait_ready()

    def _spawn(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"----- {self.name} start #{self.incarnations} -----\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(SOCIUS), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: teardown can sweep it
            )

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        async with httpx.AsyncClient(timeout=1.0) as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self} exited with {self.proc.returncode} while starting:\n"
                        + self.output()
                    )
                try:
                    response = await http.get(f"{self.http_url}/readyz")
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text}"
                except httpx.TransportError as exc:
                    last = repr(exc)
                await asyncio.sleep(0.05)  # polling for readiness, not an assertion
        self.kill()
        raise RuntimeError(f"{self} not ready in {START_TIMEOUT} s ({last}):\n{self.output()}")

    def kill(self) -> list[int]:
        """SIGKILL the Granian main process and its workers at once; the pids killed."""
        if self.proc is None:
            return []
        # Only while our child is unreaped is its pid surely still its own.
        pids = [] if self.proc.poll() is not None else process_tree(self.proc.pid)
        pids = [p for p in pids if _alive(p)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # Anything spawned meanwhile, or orphaned, is still in the node's own process group
        # (whose id is not handed out again while the group has a member).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return pids

    async def wait_dead(self, pids: list[int], seconds: float = 10.0) -> None:
        """Wait until every pid has exited (reaping our own child)."""
        async with asyncio.timeout(seconds):
            while True:
                if self.proc is not None:
                    self.proc.poll()
                if not any(_alive(p) for p in pids):
                    return
                await asyncio.sleep(0.02)

    async def terminate(self, seconds: float = STOP_TIMEOUT) -> int:
        """SIGTERM (graceful shutdown) and wait for the whole tree to exit; the exit code."""
        assert self.proc is not None, f"{self} was never started"
        assert self.running, f"{self} is not running"
        pids = process_tree(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        await self.wait_dead(pids, seconds)
        return self.proc.wait(timeout=1)

    def sweep(self) -> None:
        """Teardown: whatever state the node is in, leave no process behind."""
        if self.proc is None:
            return
        self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


class Cluster:
    """Nodes sharing one database, one Redis prefix and one bus."""

    def __init__(self, env: dict[str, str], log_dir: Path, bus: str) -> None:
        self.env = env
        self.log_dir = log_dir
        self.bus = bus
        self.nodes: dict[str, Node] = {}

    def node(self, name: str) -> Node:
        if name not in self.nodes:
            self.nodes[name] = Node(
                name, free_port(), dict(self.env), self.log_dir / f"node-{name}.log"
            )
        return self.nodes[name]

    async def start(self, *names: str) -> list[Node]:
        """Start (or restart) the named nodes, concurrently; returns them in order."""
        nodes = [self.node(n) for n in names]
        await asyncio.gather(*(n.start() for n in nodes))
        return nodes

    def sweep(self) -> None:
        for node in self.nodes.values():
            node.sweep()
