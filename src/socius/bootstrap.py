"""The one place that picks implementations and wires the app from Settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime

from litestar.types import ASGIApp

from socius.api.app import build_litestar
from socius.cache.memory import MemoryCache
from socius.cache.redis import RedisCache
from socius.domain.ids import IdGenerator
from socius.observability.logging import RequestContextMiddleware
from socius.observability.metrics import Metrics, MetricsMiddleware
from socius.services.accounts import AccountService
from socius.services.auth import AuthService
from socius.services.container import Container
from socius.services.passwords import PasswordHasher
from socius.services.ports import Cache
from socius.services.profiles import ProfileService
from socius.services.revocation import Revocations
from socius.services.throttle import Throttle
from socius.services.tokens import AccessTokens
from socius.settings import Settings, load_settings
from socius.storage.unit_of_work import Database

__all__ = ["Wiring", "build", "create_app", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Wiring:
    """Everything one app instance owns: the container, the metrics, the raw resources."""

    def __init__(self, container: Container, metrics: Metrics, database: Database,
                 cache: Cache) -> None:
        self.container = container
        self.metrics = metrics
        self.database = database
        self.cache = cache


def _node_id(settings: Settings) -> int:
    return settings.node_id if settings.node_id >= 0 else os.getpid() % 1024


def build(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Wiring:
    """Wire every service for ``settings``. Opens nothing until the app starts."""
    metrics = Metrics()
    database = Database(
        settings.effective_database_url,
        replica_urls=settings.database_replica_urls,
        pool_size=settings.database_pool_size,
        echo=settings.database_echo,
    )
    metrics.add_pool_gauge("primary", database.pool_stats)
    cache: Cache = (
        RedisCache(settings.redis_url, prefix=settings.redis_prefix)
        if settings.redis_url
        else MemoryCache()
    )

    def cache_error(op: str) -> None:
        metrics.cache_errors_total.labels(op=op).inc()

    ids = IdGenerator(_node_id(settings))
    hasher = PasswordHasher(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
    )
    tokens = AccessTokens(
        database, clock, issuer=settings.jwt_issuer, audience=settings.jwt_audience,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    revocations = Revocations(
        cache, database, clock, token_ttl_seconds=settings.access_token_ttl_seconds,
        on_cache_error=cache_error,
    )
    window = settings.login_failure_window_seconds
    auth = AuthService(
        database, clock, ids, hasher, tokens, revocations,
        account_throttle=Throttle(
            cache, name="login_account", limit=settings.login_max_failures_per_account,
            window_seconds=window, on_cache_error=cache_error,
            on_refused=metrics.login_throttled_total.labels(scope="account").inc,
        ),
        ip_throttle=Throttle(
            cache, name="login_ip", limit=settings.login_max_failures_per_ip,
            window_seconds=window, on_cache_error=cache_error,
            on_refused=metrics.login_throttled_total.labels(scope="ip").inc,
        ),
        session_max_age_seconds=settings.session_max_age_seconds,
    )
    accounts = AccountService(
        database, clock, ids, hasher, auth, revocations,
        register_throttle=Throttle(
            cache, name="register_ip", limit=settings.register_max_per_ip_per_hour,
            window_seconds=3600, on_cache_error=cache_error,
        ),
    )
    container = Container(
        settings=settings,
        auth=auth,
        accounts=accounts,
        profiles=ProfileService(database),
        tokens=tokens,
        revocations=revocations,
    )
    container.readiness["database"] = database.ping
    if settings.redis_url:
        container.readiness["redis"] = cache.ping

    async def start() -> None:
        await tokens.load_keys()
        if not settings.redis_url:
            await revocations.warm()

    async def stop() -> None:
        await cache.close()
        await database.dispose()

    container.on_start.append(start)
    container.on_stop.append(stop)
    return Wiring(container, metrics, database, cache)


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The ASGI app Granian serves: Litestar wrapped in request-id and metrics middleware."""
    wiring = build(settings or load_settings())
    app = build_litestar(wiring.container, wiring.metrics)
    return RequestContextMiddleware(MetricsMiddleware(app, wiring.metrics))
