"""What the ``socius`` commands check before they start, each failure one line that names
the setting to fix: the port is free, the data path is sound, and every configured
dependency (the database, Redis, NATS) answers.

At start a dependency that does not answer is refused at once (it is most often a
mistyped URL or a service not started yet); once running, an outage degrades or answers
503 instead (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from socius.bus.nats import NatsBus
from socius.cache.redis import RedisCache
from socius.observability.tracing import tracing_installed
from socius.settings import Settings
from socius.storage.unit_of_work import Database

__all__ = [
    "PreflightError",
    "check_dependencies",
    "check_port",
    "prepare_data_path",
    "redact",
]

#: Seconds each dependency has to answer at start.
DEPENDENCY_TIMEOUT = 10.0


class PreflightError(Exception):
    """A command cannot start; ``str()`` is the one line to print, ``exit_code`` its
    status (2: a setting is wrong, 1: something is not there or not free)."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def redact(url: str) -> str:
    """``url`` without its password (``postgresql://user:***@host/db``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unparsable URL)"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def check_port(host: str, port: int) -> None:
    """Refuse when something already listens on ``host:port``. (The server itself binds
    with SO_REUSEPORT, so a second one would start and silently share the traffic.)"""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise PreflightError(
            f"cannot listen on {host}:{port} (SOCIUS_HOST): {exc.strerror}", exit_code=2
        ) from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # SO_REUSEADDR: a port left in TIME_WAIT by a server that just stopped is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PreflightError(
                    f"{host}:{port} is already in use (another socius serve?); "
                    "stop it or choose another port (--port / SOCIUS_PORT)"
                ) from exc
            raise PreflightError(
                f"cannot listen on {host}:{port} (SOCIUS_HOST, SOCIUS_PORT): {exc.strerror}"
            ) from exc


def _sqlite_file(url: str) -> Path | None:
    """The file of an ``sqlite://`` URL (None for a memory database)."""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    return None if path in {"", ":memory:"} else Path(path)


def prepare_data_path(settings: Settings) -> None:
    """The embedded data directory is made when missing, but only inside a directory
    that exists: a mistyped path is refused, not created. An SQLite URL's directory must
    exist already."""
    if settings.database_url:
        file = _sqlite_file(settings.database_url) if settings.is_embedded else None
        if file is not None and not file.parent.is_dir():
            raise PreflightError(
                f"SOCIUS_DATABASE_URL: the directory {file.parent} of the SQLite file "
                "does not exist; create it or fix the URL",
                exit_code=2,
            )
        return
    data = Path(settings.data_dir)
    if data.is_dir():
        return
    if data.exists():
        raise PreflightError(f"SOCIUS_DATA_DIR: {data} exists and is not a directory", exit_code=2)
    if not data.absolute().parent.is_dir():
        raise PreflightError(
            f"SOCIUS_DATA_DIR: {data} is under {data.absolute().parent}, which does not "
            "exist; create it or fix the path",
            exit_code=2,
        )
    try:
        data.mkdir()
    except OSError as exc:
        raise PreflightError(
            f"SOCIUS_DATA_DIR: cannot create {data}: {exc.strerror}", exit_code=2
        ) from exc


def _reason(error: BaseException) -> str:
    """The innermost cause of ``error``, on one line."""
    seen: set[int] = set()
    inner = error
    while id(inner) not in seen:
        seen.add(id(inner))
        nxt = inner.__cause__ or getattr(inner, "orig", None)
        if not isinstance(nxt, BaseException):
            break
        inner = nxt
    text = " ".join(str(inner).split())
    if isinstance(inner, TimeoutError) and not text:
        text = f"no answer in {DEPENDENCY_TIMEOUT:g} s"
    return f"{type(inner).__name__}: {text}"[:300] if text else type(inner).__name__


async def _database(settings: Settings) -> None:
    database = Database(settings.effective_database_url, pool_size=1)
    try:
        await database.ping()
    finally:
        await database.dispose()


async def _redis(url: str) -> None:
    cache = RedisCache(url, timeout=DEPENDENCY_TIMEOUT / 2)
    try:
        await cache.ping()
    finally:
        await cache.close()


async def _nats(url: str) -> None:
    bus = NatsBus(url, timeout=DEPENDENCY_TIMEOUT / 2)
    try:
        await bus.start()
    finally:
        await bus.close()


async def check_dependencies(settings: Settings, *, database_only: bool = False) -> None:
    """Each configured dependency answers, or a ``PreflightError`` names the first that
    does not, with its setting and its address (without password). Tracing configured
    without the `otel` extra installed is refused too (exit status 2)."""
    if settings.otlp_endpoint and not database_only and not tracing_installed():
        raise PreflightError(
            "SOCIUS_OTLP_ENDPOINT is set but the tracing extra is not installed: "
            "pip install 'socius[otel]' (or unset SOCIUS_OTLP_ENDPOINT)",
            exit_code=2,
        )
    checks: list[tuple[str, str, str, Callable[[], Awaitable[None]]]] = []
    if settings.database_url:
        address = redact(settings.database_url)
        checks.append(("the database", "SOCIUS_DATABASE_URL", address, lambda: _database(settings)))
    else:
        address = settings.effective_database_url
        checks.append(
            ("the SQLite database", "SOCIUS_DATA_DIR", address, lambda: _database(settings))
        )
    redis_url, nats_url = settings.redis_url, settings.nats_url
    if redis_url and not database_only:
        checks.append(("Redis", "SOCIUS_REDIS_URL", redact(redis_url), lambda: _redis(redis_url)))
    if nats_url and not database_only:
        checks.append(("NATS", "SOCIUS_NATS_URL", redact(nats_url), lambda: _nats(nats_url)))
    for what, setting, address, check in checks:
        try:
            async with asyncio.timeout(DEPENDENCY_TIMEOUT):
                await check()
        except Exception as exc:
            raise PreflightError(
                f"cannot reach {what} at {address} ({setting}): {_reason(exc)}"
            ) from exc
