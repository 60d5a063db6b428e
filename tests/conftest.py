"""Shared fixtures: every API test runs on two real stacks.

- ``sqlite``: an SQLite file (migrated once, copied per test) with the in-process cache.
- ``postgres``: a PostgreSQL database (migrated once per run, truncated per test) with a
  Redis cache under a key prefix unique to the test.

PostgreSQL and Redis come from ``SOCIUS_TEST_POSTGRES_URL`` / ``SOCIUS_TEST_REDIS_URL``.
Without them the ``postgres`` stack is skipped, except under CI (``CI=true``), where a
missing service is an error.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import redis
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import AsyncTestClient, TestClient
from litestar.testing.websocket_test_session import WebSocketTestSession
from litestar.types import ASGIApp
from sqlalchemy import event

from clock import Clock
from socius.api.app import build_litestar
from socius.bootstrap import Wiring, build, wrap
from socius.client import AsyncClient, AuthResult, Client
from socius.services.ports import Bus
from socius.settings import Settings, load_settings
from socius.storage.migrate import upgrade
from socius.storage.tables import metadata

IN_CI = os.environ.get("CI") == "true"
POSTGRES_URL = os.environ.get("SOCIUS_TEST_POSTGRES_URL", "")
REDIS_URL = os.environ.get("SOCIUS_TEST_REDIS_URL", "")
NATS_URL = os.environ.get("SOCIUS_TEST_NATS_URL", "")
S3_URL = os.environ.get("SOCIUS_TEST_S3_URL", "")  # http://key:secret@host:port/bucket
STACKS = ["sqlite", "postgres"]
_names = itertools.count()

# Cheap argon2 for tests: the parameters are exercised, not the cost.
FAST_HASHING = {"argon2_memory_kib": 1024, "argon2_time_cost": 1}


def require_service(url: str, name: str) -> None:
    if not url:
        if IN_CI:
            pytest.fail(f"{name} is required under CI but its SOCIUS_TEST_* URL is not set")
        pytest.skip(f"{name} not configured (SOCIUS_TEST_{name.upper()}_URL)")


# ---------------------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "socius.db"
    asyncio.run(upgrade(f"sqlite:///{path}"))
    return path


@dataclass
class PostgresDatabase:
    url: str

    def truncate(self) -> None:
        names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        asyncio.run(_execute(self.url, f"TRUNCATE {names}"))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[PostgresDatabase]:
    require_service(POSTGRES_URL, "postgres")
    name = f"socius_test_{os.getpid()}_{secrets.token_hex(3)}"
    base, _, _ = POSTGRES_URL.rpartition("/")
    url = f"{base}/{name}"
    asyncio.run(_execute(POSTGRES_URL, f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(upgrade(url))
        yield PostgresDatabase(url=url)
    finally:
        asyncio.run(_execute(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _execute(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"socius-test:{secrets.token_hex(6)}:"
    yield prefix
    if REDIS_URL:
        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(match=prefix + "*", count=1000))
        if keys:
            r.delete(*keys)
        r.close()


def s3_settings() -> dict[str, object]:
    """The postgres stack keeps attachments in the S3 store of ``SOCIUS_TEST_S3_URL``
    (SeaweedFS, from scripts/services), under a prefix of the test's own."""
    if not S3_URL:
        if IN_CI:
            pytest.fail("an S3 store is required under CI but SOCIUS_TEST_S3_URL is not set")
        return {}
    url = urlsplit(S3_URL)
    return {
        "blob_url": f"s3:/{url.path}/{secrets.token_hex(6)}",
        "blob_s3_endpoint": f"{url.scheme}://{url.hostname}:{url.port}",
        "blob_s3_access_key": unquote(url.username or ""),
        "blob_s3_secret_key": unquote(url.password or ""),
    }


# ---------------------------------------------------------------------------- the stack


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_settings(
    request: pytest.FixtureRequest,
    stack: str,
    tmp_path: Path,
    sqlite_template: Path,
    redis_prefix: str,
) -> Callable[..., Settings]:
    """Settings for this test's stack; keyword arguments override fields."""
    if stack == "postgres":
        database = request.getfixturevalue("postgres_database")
        require_service(REDIS_URL, "redis")
        database.truncate()
        base = {
            "database_url": database.url,
            "redis_url": REDIS_URL,
            "redis_prefix": redis_prefix,
            "database_pool_size": 5,
            "data_dir": str(tmp_path),
            **s3_settings(),
        }
    else:
        db = tmp_path / "socius.db"
        if not db.exists():
            shutil.copy(sqlite_template, db)
        base = {"data_dir": str(tmp_path), "database_pool_size": 5}

    def make(**overrides: object) -> Settings:
        return load_settings(
            {},
            # The event relay and webhook dispatcher run when a test says so (their SQL
            # would otherwise land in the statement counts of unrelated tests).
            **{
                **base,
                **FAST_HASHING,
                "log_json": False,
                "event_relay_in_server": False,
                # Without the refresher running, a first request computes its list
                # (tests/api/test_suggestions_precomputed.py covers the queued default).
                "suggestions_first_request": "compute",
                **overrides,
            },
        )

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@dataclass
class App:
    """One running socius app: the ASGI callable and what it was wired from."""

    asgi: ASGIApp
    wiring: Wiring


def make_app(
    settings: Settings, *, clock: Callable[[], datetime] | None = None, bus: Bus | None = None
) -> App:
    """An app from ``settings``; on ``clock`` (e.g. ``clock.Clock``) when given; on
    ``bus`` (e.g. a ``MemoryBus`` on a broker shared with another app) when given."""
    wiring = build(settings, bus=bus) if clock is None else build(settings, clock=clock, bus=bus)
    litestar = build_litestar(wiring.container, wiring.metrics)
    return App(wrap(litestar, wiring, settings), wiring)


@pytest.fixture
def clock() -> Clock:
    """A movable clock; a module's ``app`` fixture wires it with ``make_app(clock=)``."""
    return Clock()


@pytest.fixture
def app(settings: Settings) -> App:
    return make_app(settings)


@pytest.fixture
def http(app: App) -> Iterator[TestClient[ASGIApp]]:
    """A synchronous HTTP client on the app, its lifespan started."""
    with TestClient(app.asgi, raise_server_exceptions=True) as client:  # type: ignore[arg-type]
        yield client


@pytest.fixture
async def ahttp(app: App) -> AsyncIterator[AsyncTestClient[ASGIApp]]:
    """An asynchronous HTTP client on the app, its lifespan started."""
    async with AsyncTestClient(app.asgi) as client:  # type: ignore[arg-type]
        yield client


def unique_name(prefix: str = "user") -> str:
    return f"{prefix}_{next(_names)}_{secrets.token_hex(3)}"[:32]


PASSWORD = "correct horse battery staple"


def close_code(ws: WebSocketTestSession, timeout: float = 10.0) -> int:
    """Read a test client's socket until the server closes it (waiting at most
    ``timeout`` seconds for each frame, none of them an error); the close code."""
    while True:
        try:
            frame = ws.receive_json(timeout=timeout)
        except WebSocketDisconnect as closed:
            return closed.code
        assert frame.get("type") != "error", frame


@pytest.fixture
def sdk(http: TestClient[ASGIApp]) -> Callable[[], Client]:
    """Make SDK clients on the app, each with its own tokens."""
    return lambda: Client(http=http)


@dataclass
class Account:
    client: Client
    auth: AuthResult
    password: str

    @property
    def id(self) -> str:
        return self.auth.user.id

    @property
    def username(self) -> str:
        return self.auth.user.username


@pytest.fixture
def register(sdk: Callable[[], Client]) -> Callable[..., Account]:
    """Register a fresh account and return a client signed in as it."""

    def make(username: str | None = None, password: str = PASSWORD, **extra: str) -> Account:
        client = sdk()
        auth = client.register(username or unique_name(), password, **extra)
        return Account(client, auth, password)

    return make


@pytest.fixture
def count_queries(app: App) -> Callable[[], Iterator[list[str]]]:
    """Record the SQL statements the app runs: ``with count_queries() as q: ...``."""
    from contextlib import contextmanager

    @contextmanager
    def counting() -> Iterator[list[str]]:
        seen: list[str] = []
        engine = app.wiring.database.primary.sync_engine

        def record(_c: object, _cur: object, statement: str, *_a: object) -> None:
            if not statement.startswith(("BEGIN", "COMMIT", "ROLLBACK")):
                seen.append(statement)

        event.listen(engine, "before_cursor_execute", record)
        try:
            yield seen
        finally:
            event.remove(engine, "before_cursor_execute", record)

    return counting


@pytest.fixture
def async_sdk(ahttp: AsyncTestClient[ASGIApp]) -> Callable[[], AsyncClient]:
    return lambda: AsyncClient(http=ahttp)
