"""A lean Redis client for the cache's commands (decision 0037).

One connection per client (per worker process), pipelined: each command is encoded with
``hiredis.pack_command``, queued, and the commands queued during one turn of the event
loop leave in one write; replies are parsed by a ``hiredis.Reader`` and resolve the
waiting futures in order. No pool, no per-command task or timer: redis-py spent 60-100 µs
of CPU per command on those layers (profile in the decision).

Kept from redis-py's behaviour:

- Timeouts: a command without its reply after ``timeout`` seconds fails with
  ``TimeoutError`` (an ``OSError``), and the connection is dropped, failing the commands
  queued behind it too; one timer per connection watches the oldest command.
- Outages: a lost connection fails its pending commands with ``ConnectionError``; the
  next command connects again (one attempt at a time, shared by the waiting callers).
- ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS; ``ssl_cert_reqs``,
  ``ssl_ca_certs``, ``ssl_check_hostname``) and ``unix:///path?db=N&password=..``; any
  other URL option is refused at construction (``ValueError``).
- Error replies raise ``ReplyError``; a Lua script runs as ``EVALSHA`` and, on
  ``NOSCRIPT``, once as ``EVAL`` (which loads it).
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

__all__ = ["ReplyError", "RespClient", "Script"]

Arg = bytes | str | int | float


class ReplyError(Exception):
    """An error reply from Redis (``-ERR ...``, ``-WRONGTYPE ...``, ...)."""


class Script:
    """A Lua script, run by its SHA1 (``EVALSHA``)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest().encode()  # noqa: S324 (Redis's id)


class _Pending:
    __slots__ = ("count", "deadline", "future", "replies")

    def __init__(self, future: asyncio.Future[Any], count: int, deadline: float) -> None:
        self.future = future
        self.count = count  # replies still expected
        self.deadline = deadline
        self.replies: list[Any] | None = [] if count > 1 else None


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = self._loop = loop
        self._timeout = timeout
        self._reader = hiredis.Reader(replyError=ReplyError)
        self._pending: deque[_Pending] = deque()
        self._out: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.usable = False

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not subclasses of asyncio.Transport: no isinstance)
        self._transport = cast("asyncio.Transport", transport)
        self.usable = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"Redis connection lost: {exc or 'closed'}"))

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        pending = self._pending
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self.abort(ConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not pending:  # a reply nobody waits for: the stream is out of step
                self.abort(ConnectionError("Redis sent an unexpected reply"))
                return
            head = pending[0]
            if head.replies is not None:
                head.replies.append(reply)
                head.count -= 1
                if head.count:
                    continue
                reply = head.replies
            pending.popleft()
            if not head.future.done():  # (a caller that gave up cancelled it)
                head.future.set_result(reply)

    # ------------------------------------------------------------------ sending

    def send(self, packed: bytes, count: int) -> asyncio.Future[Any]:
        """Queue ``packed`` (``count`` commands); the future gets the reply (a list of
        ``count`` replies when ``count`` > 1)."""
        loop = self._loop
        future: asyncio.Future[Any] = loop.create_future()
        if not self.usable:
            future.set_exception(ConnectionError("Redis connection lost"))
            return future
        self._pending.append(_Pending(future, count, loop.time() + self._timeout))
        if not self._out:
            loop.call_soon(self._flush)
        self._out.append(packed)
        if self._timer is None:
            self._timer = loop.call_at(self._pending[0].deadline, self._check_deadline)
        return future

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self._transport is not None and self.usable:
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _check_deadline(self) -> None:
        self._timer = None
        if not self._pending:
            return
        deadline = self._pending[0].deadline
        if deadline <= self._loop.time():
            self.abort(TimeoutError(f"Redis gave no answer in {self._timeout} s"))
        else:
            self._timer = self._loop.call_at(deadline, self._check_deadline)

    # ------------------------------------------------------------------ closing

    def abort(self, error: Exception) -> None:
        self._fail(error)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        self._fail(ConnectionError("Redis client closed"))
        if self._transport is not None:
            self._transport.close()

    def _fail(self, error: Exception) -> None:
        self.usable = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._out.clear()
        pending, self._pending = self._pending, deque()
        for item in pending:
            if not item.future.done():
                item.future.set_exception(error)
                # A caller that already gave up must not log "exception never retrieved".
                item.future.exception()


def pack(*args: Arg) -> bytes:
    return hiredis.pack_command(args)  # type: ignore[arg-type,no-any-return]


class _Target:
    """Where and how to connect, from the URL."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        known = {"db", "password", "username"}
        if scheme == "rediss":
            known |= {"ssl_cert_reqs", "ssl_ca_certs", "ssl_check_hostname"}
        unknown = set(query) - known
        if unknown:
            raise ValueError(
                f"Redis URL option(s) not supported by the cache: {', '.join(sorted(unknown))}"
            )
        self.scheme = scheme
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.path = unquote(parts.path)
        username = unquote(parts.username) if parts.username else query.get("username")
        password = unquote(parts.password) if parts.password else query.get("password")
        self.username = username or None
        self.password = password or None
        db = query.get("db")
        if db is None and scheme != "unix":
            db = self.path.lstrip("/") or None
        try:
            self.db = int(db) if db else 0
        except ValueError:
            raise ValueError(f"Redis URL: db {db!r} is not a number") from None
        self.ssl: ssl.SSLContext | None = None
        if scheme == "rediss":
            self.ssl = _ssl_context(query)

    def setup(self) -> list[tuple[Arg, ...]]:
        """The commands a new connection sends first."""
        commands: list[tuple[Arg, ...]] = []
        if self.password is not None:
            if self.username is not None:
                commands.append(("AUTH", self.username, self.password))
            else:
                commands.append(("AUTH", self.password))
        if self.db:
            commands.append(("SELECT", self.db))
        return commands


def _ssl_context(query: dict[str, str]) -> ssl.SSLContext:
    """As redis-py's defaults: certificates required, host names checked."""
    context = ssl.create_default_context(cafile=query.get("ssl_ca_certs"))
    check = query.get("ssl_check_hostname", "true").lower() in {"1", "true", "yes"}
    reqs = query.get("ssl_cert_reqs", "required").lower()
    modes = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
    if reqs not in modes:
        raise ValueError("Redis URL: ssl_cert_reqs is none, optional or required")
    context.check_hostname = check and reqs != "none"
    context.verify_mode = modes[reqs]
    return context


class RespClient:
    """Commands over one pipelined connection, made (again) on demand."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self._target = _Target(url)
        self._timeout = timeout
        self._conn: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None
        self._closed = False

    async def _connection(self) -> _Connection:
        if self._closed:
            raise ConnectionError("Redis client closed")
        attempt = self._connecting
        if attempt is None:
            attempt = self._connecting = asyncio.ensure_future(self._connect())
            attempt.add_done_callback(self._connected)
        return await asyncio.shield(attempt)

    def _connected(self, attempt: asyncio.Future[_Connection]) -> None:
        self._connecting = None
        if not attempt.cancelled() and attempt.exception() is None:
            self._conn = attempt.result()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        target = self._target
        conn = _Connection(loop, self._timeout)
        try:
            async with asyncio.timeout(self._timeout):
                if target.scheme == "unix":
                    await loop.create_unix_connection(lambda: conn, target.path)
                else:
                    await loop.create_connection(
                        lambda: conn,
                        target.host,
                        target.port,
                        ssl=target.ssl,
                        server_hostname=target.host if target.ssl else None,
                    )
        except TimeoutError:
            raise TimeoutError(f"Redis: no connection in {self._timeout} s") from None
        setup = target.setup()
        if setup:
            try:
                await conn.send(b"".join(pack(*c) for c in setup), len(setup))
            except BaseException:
                conn.close()
                raise
        return conn

    def _ready(self) -> _Connection | None:
        conn = self._conn
        if conn is None or not conn.usable:
            return None
        if conn.loop is not asyncio.get_running_loop():  # (a test's or a CLI's new loop)
            self._conn = None
            return None
        return conn

    async def execute(self, *args: Arg) -> Any:
        """One command's reply; an error reply raises ``ReplyError``."""
        conn = self._ready() or await self._connection()
        reply = await conn.send(pack(*args), 1)
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    async def pipeline(self, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
        """The commands in one round trip (not atomic); any error reply raises."""
        replies = await self.replies(commands)
        for reply in replies:
            if isinstance(reply, ReplyError):
                raise reply
        return replies

    async def replies(self, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
        """The commands in one round trip (not atomic), in order on this connection; their
        replies, an error reply as a ``ReplyError`` in its place (not raised): for callers
        whose commands fail apart (a cache ``DEL`` and the bus's ``PUBLISH``es, decision
        0040). A lost connection or a timeout still raises (``OSError``)."""
        conn = self._ready() or await self._connection()
        packed = b"".join([pack(*c) for c in commands])
        if len(commands) == 1:
            return [await conn.send(packed, 1)]
        return list(await conn.send(packed, len(commands)))

    async def transaction(self, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
        """The commands in MULTI/EXEC, one round trip; their replies (errors raise)."""
        conn = self._ready() or await self._connection()
        packed = b"".join([pack("MULTI"), *(pack(*c) for c in commands), pack("EXEC")])
        replies = await conn.send(packed, len(commands) + 2)
        for reply in replies:
            if isinstance(reply, ReplyError):
                raise reply
        result = replies[-1]
        if result is None:
            raise ReplyError("EXECABORT transaction aborted")
        for reply in result:
            if isinstance(reply, ReplyError):
                raise reply
        return list(result)

    async def evalsha(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        conn = self._ready() or await self._connection()
        reply = await conn.send(pack("EVALSHA", script.sha, len(keys), *keys, *args), 1)
        if isinstance(reply, ReplyError) and str(reply).startswith("NOSCRIPT"):
            conn = self._ready() or await self._connection()
            reply = await conn.send(pack("EVAL", script.source, len(keys), *keys, *args), 1)
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    async def close(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
