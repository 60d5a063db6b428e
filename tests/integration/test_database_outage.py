"""PostgreSQL stops under load and comes back: every answer meanwhile is a 2xx or a 503
``unavailable`` with ``Retry-After`` (never a 500), sockets that cannot be served are
closed with 1013 (try later), and the server recovers once the database is back, its
pool's connections (killed by the restart) replaced rather than handed out.

A private PostgreSQL (tests/private_servers.py) on a free port, served by a real
``socius serve``; the shared database is never touched. PostgreSQL-only by nature.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REDIS_URL
from e2e.cluster import SOCIUS, Node, free_port
from private_servers import PrivatePostgres, private_postgres
from socius.client import AsyncClient, RealtimeClient, RealtimeClosed

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PASSWORD = "correct horse battery staple"
WAIT = 30.0  # seconds any single expectation may take before the test fails
WORKERS = 12  # concurrent request loops


@dataclass
class Answer:
    phase: str  # when the request was sent; "down" when it was in flight as that began
    method: str
    path: str
    status: int
    retry_after: str | None
    body: Any


def _env(database_url: str, redis_prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIUS_")}
    env |= {
        "SOCIUS_DATABASE_URL": database_url,
        "SOCIUS_ARGON2_MEMORY_KIB": "1024",
        "SOCIUS_ARGON2_TIME_COST": "1",
        "SOCIUS_LOG_LEVEL": "warning",
        "SOCIUS_AUTO_MIGRATE": "false",
        "SOCIUS_REGISTER_MAX_PER_IP_PER_HOUR": "100000",
        "SOCIUS_DATABASE_POOL_SIZE": "8",
        # the loops send as fast as the node answers; the per-user send limit is not
        # what this test is about (a 429 would be counted as a failure)
        "SOCIUS_LIMIT_MESSAGES": "1000000",
    }
    if REDIS_URL:  # the clustered stack: Redis cache and bus (a prefix of this test's own)
        env |= {"SOCIUS_REDIS_URL": REDIS_URL, "SOCIUS_REDIS_PREFIX": redis_prefix}
    return env


@pytest.fixture
async def served(tmp_path: Path, redis_prefix: str) -> AsyncIterator[tuple[PrivatePostgres, Node]]:
    with private_postgres() as pg:
        env = _env(pg.url, redis_prefix)
        done = await asyncio.to_thread(
            subprocess.run,
            [str(SOCIUS), "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        node = Node("outage", free_port(), env, tmp_path / "node.log")
        try:
            await node.start()
            yield pg, node
        finally:
            node.sweep()


def five_hundreds(metrics: str) -> dict[str, float]:
    """``http_requests_total`` by status, for the 5xx statuses."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            status = sample.labels.get("status", "")
            if sample.name == "http_requests_total" and status.startswith("5"):
                found[status] = found.get(status, 0.0) + sample.value
    return found


class Load:
    """``WORKERS`` loops of mixed reads and writes; every answer is kept with its phase.
    ``pause()`` lets the requests in flight finish and holds the loops until ``resume()``."""

    def __init__(self, node: Node, users: list[tuple[str, str]], conversation: str) -> None:
        self.node = node
        self.users = users  # (user id, access token)
        self.conversation = conversation
        self.phase = "before"
        self.answers: list[Answer] = []
        self.transport_errors: list[str] = []
        self._stop = False
        self._running = asyncio.Event()
        self._running.set()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._ids = itertools.count()

    def requests(self, k: int) -> list[tuple[str, str, dict[str, Any] | None]]:
        other, _ = self.users[(k + 1) % len(self.users)]
        c = self.conversation
        message = {"client_msg_id": f"m{next(self._ids)}", "body": "hello"}
        return [
            ("GET", "/v1/me", None),
            ("GET", f"/v1/users/{other}", None),
            ("GET", "/v1/friends", None),
            ("GET", "/v1/conversations", None),
            ("POST", f"/v1/conversations/{c}/messages", message),
            ("GET", f"/v1/conversations/{c}/messages?limit=5", None),
            ("GET", "/v1/sync?limit=5", None),
            ("GET", "/v1/me/sessions", None),
            ("GET", f"/v1/relationships?ids={other}", None),
        ]

    async def _loop(self, http: httpx.AsyncClient, k: int) -> None:
        _, token = self.users[k % len(self.users)]
        headers = {"Authorization": f"Bearer {token}"}
        while not self._stop:
            for method, path, body in self.requests(k):
                await self._running.wait()
                if self._stop:
                    return
                phase = self.phase
                self._in_flight += 1
                try:
                    response = await http.request(method, path, json=body, headers=headers)
                except httpx.TransportError as exc:
                    self.transport_errors.append(f"{method} {path}: {exc!r}")
                    continue
                finally:
                    self._in_flight -= 1
                    if not self._in_flight:
                        self._idle.set()
                try:
                    parsed = response.json()
                except ValueError:
                    parsed = response.text
                retry_after = response.headers.get("retry-after")
                if self.phase == "down":
                    phase = "down"
                self.answers.append(
                    Answer(phase, method, path, response.status_code, retry_after, parsed)
                )

    async def pause(self) -> None:
        self._running.clear()
        while self._in_flight:
            self._idle.clear()
            await self._idle.wait()

    def resume(self, phase: str) -> None:
        self.phase = phase
        self._running.set()

    async def run_while(self, work: Callable[[], Awaitable[None]]) -> None:
        limits = httpx.Limits(max_connections=WORKERS)
        async with httpx.AsyncClient(
            base_url=self.node.http_url, timeout=WAIT, limits=limits
        ) as http:
            loops = [asyncio.create_task(self._loop(http, k)) for k in range(WORKERS)]
            try:
                await work()
            finally:
                self._stop = True
                self._running.set()
                await asyncio.gather(*loops)

    def count(self, phase: str, ok: bool) -> int:
        return sum(1 for a in self.answers if a.phase == phase and (a.status < 300) == ok)


async def _seed(node: Node) -> tuple[list[tuple[str, str]], str, AsyncClient]:
    """Three friends and a group of them; their ids and tokens, the group's id."""
    clients = [AsyncClient(node.http_url, timeout=WAIT) for _ in range(3)]
    auths = [await c.register(f"out_{secrets.token_hex(5)}", PASSWORD) for c in clients]
    a, b, c = clients
    for other in (auths[1], auths[2]):
        await a.send_friend_request(other.user.id)
    await b.accept_friend_request(auths[0].user.id)
    await c.accept_friend_request(auths[0].user.id)
    group = await a.create_group("outage", [auths[1].user.id, auths[2].user.id])
    await a.send_message(group.id, "before the outage", client_msg_id="seed")
    users = [
        (auth.user.id, str(client.access_token))
        for auth, client in zip(auths, clients, strict=True)
    ]
    for client in clients[1:]:
        await client.aclose()
    return users, group.id, a


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(WAIT):
        while not await condition():  # noqa: ASYNC110 (the answers come from other tasks)
            await asyncio.sleep(0.05)  # polling, not an assertion


async def _ws_close_code(node: Node, token: str, cursor: str | None) -> int | None:
    """Connect and authenticate; the close code, or None when the socket got ready."""
    rt = RealtimeClient(node.ws_url, token, cursor=cursor)
    try:
        async with asyncio.timeout(WAIT):
            await rt.connect()
    except RealtimeClosed as closed:
        return closed.code
    finally:
        await rt.close()
    return None


async def test_postgres_restarts_give_503_never_500(served):
    """Two restarts: one between requests (the pool is full of connections the restart
    closed: none may reach a request), one under load (503s meanwhile, then recovery)."""
    pg, node = served
    users, group, owner = await _seed(node)
    cursor = (await owner.sync(limit=1)).next_cursor  # a replay follows it
    load = Load(node, users, group)
    probe = httpx.AsyncClient(base_url=node.http_url, timeout=WAIT)
    ws_codes: dict[str, int | None] = {}

    async def progress(phase: str, need_ok: bool, least: int) -> None:
        async def enough() -> bool:
            return load.count(phase, need_ok) >= least

        await _until(enough)

    async def restarts() -> None:
        await progress("before", True, 100)  # the pool has its connections now
        await load.pause()
        await asyncio.to_thread(pg.stop, "fast")  # a restart ends every session
        await asyncio.to_thread(pg.start)  # returns once PostgreSQL accepts connections
        load.resume("restarted")
        await progress("restarted", True, 100)

        load.phase = "down"
        await asyncio.to_thread(pg.stop, "fast")
        await progress("down", False, 100)
        ws_codes["down"] = await _ws_close_code(node, users[0][1], cursor)
        ready = await probe.get("/readyz")
        assert ready.status_code == 503, ready.text
        await asyncio.to_thread(pg.start)
        load.phase = "up"
        ready = await probe.get("/readyz")
        assert ready.status_code == 200, ready.text
        await progress("up", True, 100)
        ws_codes["up"] = await _ws_close_code(node, users[0][1], cursor)

    try:
        await load.run_while(restarts)
        metrics = (await probe.get("/metrics")).text
    finally:
        await probe.aclose()
        await owner.aclose()

    assert not load.transport_errors, load.transport_errors[:5]
    bad = [a for a in load.answers if a.status >= 300 and a.status != 503]
    assert not bad, bad[:5]
    unavailable = [a for a in load.answers if a.status == 503]
    assert unavailable, "the outage was not seen"
    for a in unavailable:
        assert a.retry_after is not None, a
        assert int(a.retry_after) >= 1, a
        assert isinstance(a.body, dict), a
        assert a.body["error"]["code"] == "unavailable", a
        assert set(a.body["error"]) == {"code", "message", "details"}, a
    # While PostgreSQL answers, nothing fails: the pooled connections a restart closed
    # are replaced, never handed to a request.
    for phase in ("before", "restarted", "up"):
        answers = [a for a in load.answers if a.phase == phase]
        failed = [a for a in answers if a.status >= 300]
        assert answers, phase
        assert not failed, (phase, failed[:5])

    assert ws_codes == {"down": 1013, "up": None}, ws_codes
    counted = five_hundreds(metrics)
    assert set(counted) == {"503"}, counted  # 503s, and no other 5xx at all
    assert counted["503"] >= len(unavailable)
