"""The cache's lean Redis client (cache/resp.py) against a fake server: what it sends
(AUTH and SELECT from the URL, pipelined commands), and that a silent server or a
dropped connection is a CacheUnavailable, after which it connects again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import hiredis
import pytest

from socius.cache.redis import RedisCache
from socius.cache.resp import RespClient, Script
from socius.domain.errors import CacheUnavailable

Answer = Callable[[list[bytes]], bytes | None]  # None: no answer


class FakeRedis:
    """Parses commands, records them, answers each as ``answer`` says."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.commands: list[list[bytes]] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        parser = hiredis.Reader()
        while data := await reader.read(65536):
            parser.feed(data)
            while (command := parser.gets()) is not False:
                self.commands.append(command)
                reply = self.answer(command)
                if reply is not None:
                    writer.write(reply)
        writer.close()

    def drop(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()


def ok(command: list[bytes]) -> bytes:
    name = command[0].upper()
    if name == b"GET":
        return b"$1\r\nv\r\n"
    if name == b"EVALSHA":
        return b"-NOSCRIPT No matching script.\r\n"
    if name == b"EVAL":
        return b":7\r\n"
    return b"+OK\r\n"


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeRedis, int]]:
    server = FakeRedis(ok)
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    yield server, port
    server.drop()
    listener.close()


async def test_auth_and_db_from_the_url_then_pipelined_commands(
    fake: tuple[FakeRedis, int],
) -> None:
    server, port = fake
    client = RespClient(f"redis://me:s%40cret@127.0.0.1:{port}/3", timeout=1)
    try:
        replies = await asyncio.gather(*(client.execute("GET", f"k{i}") for i in range(5)))
        assert replies == [b"v"] * 5
        assert await client.pipeline([("SET", "a", b"1"), ("SET", "b", 2)]) == [b"OK", b"OK"]
        assert await client.evalsha(Script("return 7"), ["k"], [1]) == 7
    finally:
        await client.close()
    assert server.connections == 1
    assert server.commands[:2] == [[b"AUTH", b"me", b"s@cret"], [b"SELECT", b"3"]]
    assert [c[0] for c in server.commands[2:]] == [b"GET"] * 5 + [
        b"SET",
        b"SET",
        b"EVALSHA",
        b"EVAL",
    ]
    assert server.commands[-1][1:] == [b"return 7", b"1", b"k", b"1"]


async def test_a_silent_server_times_out_and_a_dropped_one_is_reconnected(
    fake: tuple[FakeRedis, int],
) -> None:
    server, port = fake
    cache = RedisCache(f"redis://127.0.0.1:{port}/0", timeout=0.2)
    try:
        assert await cache.get("k") == b"v"
        server.answer = lambda _command: None  # stalls: no reply at all
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await asyncio.gather(
            cache.get("k"), cache.get_many(["k"]), return_exceptions=True
        )
        assert all(isinstance(r, CacheUnavailable) for r in results), results
        assert 0.15 < loop.time() - started < 1.0
        server.answer = ok
        assert await cache.get("k") == b"v"  # a new connection
        assert server.connections == 2
        server.drop()
        await asyncio.sleep(0.05)
        assert await cache.get("k") == b"v"
        assert server.connections == 3
    finally:
        await cache.close()


async def test_nothing_listening_is_cache_unavailable() -> None:
    cache = RedisCache("redis://127.0.0.1:1/0", timeout=0.2)
    try:
        with pytest.raises(CacheUnavailable):
            await cache.get("k")
        with pytest.raises(CacheUnavailable):
            await cache.incr("k", ttl=1)
    finally:
        await cache.close()


def test_url_options_the_client_does_not_know_are_refused() -> None:
    with pytest.raises(ValueError, match="socket_keepalive"):
        RespClient("redis://127.0.0.1/0?socket_keepalive=true", timeout=1)
    with pytest.raises(ValueError, match="redis://"):
        RespClient("http://127.0.0.1/0", timeout=1)
    RespClient("rediss://127.0.0.1/0?ssl_cert_reqs=none", timeout=1)
    RespClient("unix:///tmp/redis.sock?db=2&password=x", timeout=1)
