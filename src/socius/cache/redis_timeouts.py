"""redis-py connections whose write timeout costs no task (decision 0010).

With ``socket_timeout`` set, redis-py sends every command inside ``asyncio.wait_for``,
which wraps the send in a new task: ~100 µs of CPU per command measured with py-spy on
the cached read paths. Reads are already bounded with ``asyncio.timeout`` (a timer, no
task). These connection classes bound the send the same way: same limit, same outcome
(the connection is dropped and the caller gets a ``TimeoutError``, an ``OSError``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)

__all__ = ["connection_class_for"]


class _TimerBoundSend:
    """Mixin: the send under ``asyncio.timeout`` instead of ``asyncio.wait_for``."""

    socket_timeout: float | None

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        timeout = self.socket_timeout
        if not timeout:
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
            return
        self.socket_timeout = None  # one command at a time uses a connection
        try:
            async with asyncio.timeout(timeout):
                await super().send_packed_command(command, check_health)  # type: ignore[misc]
        finally:
            self.socket_timeout = timeout


class TimedConnection(_TimerBoundSend, Connection):
    pass


class TimedSSLConnection(_TimerBoundSend, SSLConnection):
    pass


class TimedUnixConnection(_TimerBoundSend, UnixDomainSocketConnection):
    pass


def connection_class_for(url: str) -> dict[str, Any]:
    """``connection_class=`` for `Redis.from_url(url, ...)`, matching the URL's scheme."""
    scheme = url.partition("://")[0].lower()
    cls: type[AbstractConnection] = {
        "redis": TimedConnection,
        "rediss": TimedSSLConnection,
        "unix": TimedUnixConnection,
    }.get(scheme, Connection)
    return {"connection_class": cls}
