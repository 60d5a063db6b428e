"""The webhook sender's other limits, against a real local HTTP server (loopback allowed
by the setting): a deadline on the whole exchange, a cap on the answer it reads, and no
redirect followed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from socius.services.ports import WebhookRefused
from socius.stream.http_sender import HttpWebhookSender

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """A one-purpose HTTP server on a free loopback port; its URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hooks"
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)


async def test_a_receiver_that_does_not_answer_is_timed_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(30)  # never answers (the server is closed after the test)
        writer.close()

    async with serving(silent) as url:
        sender = HttpWebhookSender(allow_private=True, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(WebhookRefused, match="timed out"):
            await sender.post(url, {}, b"{}")
        assert time.monotonic() - started < 10  # the deadline, not the receiver, ended it
        await sender.close()


async def test_an_endless_answer_is_read_up_to_the_cap() -> None:
    sent = 0

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n")  # no length
        chunk = b"x" * 65536
        with contextlib.suppress(ConnectionError):
            while sent < 512 * 1024 * 1024:  # far more than anyone should read
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        writer.close()

    async with serving(endless) as url:
        sender = HttpWebhookSender(allow_private=True, timeout=20, max_response_bytes=64 * 1024)
        response = await sender.post(url, {}, b"{}")
        assert response.status_code == 200
        await sender.close()
    assert sent < 64 * 1024 * 1024  # it stopped reading long before the server stopped


async def test_a_redirect_is_not_followed() -> None:
    hits = 0

    async def redirecting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal hits
        hits += 1
        await _read_request(reader)
        writer.write(
            b"HTTP/1.1 307 Temporary Redirect\r\nlocation: http://169.254.169.254/latest\r\n"
            b"content-length: 0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    async with serving(redirecting) as url:
        sender = HttpWebhookSender(allow_private=True, timeout=5)
        response = await sender.post(url, {}, b"{}")
        assert response.status_code == 307  # a failure for the dispatcher (not a 2xx), not followed
        assert hits == 1
        await sender.close()
