"""The one place that picks implementations and wires the app from Settings."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import structlog
from litestar.types import ASGIApp

from socius.api.app import build_litestar
from socius.api.rest.message_views import event_body
from socius.api.ws import WebSocketFront
from socius.bus.memory import MemoryBus
from socius.bus.nats import NatsBus
from socius.bus.redis import RedisBus
from socius.cache.memory import MemoryCache
from socius.cache.redis import RedisCache
from socius.domain.errors import BusUnavailable, CacheUnavailable
from socius.domain.ids import IdGenerator
from socius.mail import LogOnlyMailer, OutboxMailer, SmtpMailer, Templates
from socius.observability.logging import RequestContextMiddleware, configure_logging
from socius.observability.metrics import Metrics, MetricsMiddleware
from socius.observability.tracing import TracingMiddleware, configure_tracing
from socius.realtime import Realtime, revocation_notifier
from socius.realtime.gateway import Gateway
from socius.services.accounts import AccountService
from socius.services.admin import AdminService
from socius.services.audit import AuditLog
from socius.services.auth import AuthService
from socius.services.container import Container
from socius.services.delivery import Delivery
from socius.services.email_verification import EmailVerification
from socius.services.events import DomainEvents
from socius.services.graph import GraphService
from socius.services.graph_cache import GraphCache
from socius.services.inbox import InboxService
from socius.services.login_throttle import LoginThrottle
from socius.services.lookaside import LookAside
from socius.services.mail_queue import MailQueue
from socius.services.messaging import MessagingService
from socius.services.mfa import MfaService
from socius.services.password_reset import PasswordResets
from socius.services.passwords import PasswordHasher
from socius.services.ports import Bus, Cache, EventStream
from socius.services.profiles import ProfileService
from socius.services.rate_limits import Buckets, RateLimit, UserLimits
from socius.services.relay import Relay
from socius.services.retention import LogRetention
from socius.services.revocation import Revocations
from socius.services.secret_box import SecretBox
from socius.services.suggestions import SuggestionService
from socius.services.throttle import Throttle
from socius.services.tokens import AccessTokens
from socius.services.webhooks import WebhookService
from socius.settings import Settings, SettingsError, decode_key, load_settings
from socius.storage.event_stream import SqlEventStream
from socius.storage.unit_of_work import Database
from socius.stream.http_sender import HttpWebhookSender
from socius.stream.jetstream import JetStreamEventStream

__all__ = ["Wiring", "build", "create_app", "utc_now", "wrap"]

log = structlog.get_logger("socius.bootstrap")
_RESYNC_SECONDS = 5.0
_POLL_SECONDS = 1.0
_PRUNE_SECONDS = 60.0  # how often the event logs' retention runs (sooner while behind)
_TEN_YEARS = 10 * 365 * 24 * 3600.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class Wiring:
    """Everything one app instance owns: the container, the metrics, the raw resources."""

    def __init__(
        self,
        container: Container,
        metrics: Metrics,
        database: Database,
        cache: Cache,
        bus: Bus,
        claim_node_id: Callable[[], Awaitable[None]],
    ) -> None:
        self.container = container
        self.metrics = metrics
        self.database = database
        self.cache = cache
        self.bus = bus
        self._claim_node_id = claim_node_id

    async def start_outside_server(self) -> bool:
        """Start what a process other than the server needs (the worker, the CLI): a node
        id of its own (as the servers take theirs) and the bus; False when the bus is down."""
        await self._claim_node_id()
        return await _start_bus(self.bus)


def _make_bus(settings: Settings) -> Bus:
    """NATS when configured, else Redis pub/sub when Redis is, else in-process."""
    if settings.nats_url:
        return NatsBus(settings.nats_url, prefix=settings.redis_prefix.rstrip(":") + ".")
    if settings.redis_url:
        return RedisBus(settings.redis_url, prefix=settings.redis_prefix)
    return MemoryBus()


def make_event_stream(settings: Settings, database: Database) -> EventStream:
    """JetStream when configured (or NATS is, with ``event_stream=auto``), else the
    database's ``event_stream`` table."""
    if settings.uses_jetstream:
        return JetStreamEventStream(
            settings.nats_url,
            stream=settings.event_stream_name,
            subject_prefix=settings.event_subject_prefix,
            duplicate_window=float(settings.event_duplicate_window_seconds),
            max_age=float(settings.event_stream_max_age_seconds),
        )
    return SqlEventStream(database, max_age_seconds=settings.event_stream_max_age_seconds)


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

    counters: dict[tuple[str, str], Callable[[], None]] = {}

    def cache_result(name: str, result: str) -> None:
        # Called once per key read (50 times for a page of friends): keep it a dict lookup.
        inc = counters.get((name, result))
        if inc is None:
            inc = counters[name, result] = metrics.cache_requests_total.labels(
                cache=name, result=result
            ).inc
        inc()

    def lookaside(name: str) -> LookAside:
        return LookAside(cache, name=name, on_result=cache_result, on_error=cache_error)

    ids = IdGenerator(_node_id(settings))
    bus = _make_bus(settings)

    def bus_error(op: str) -> None:
        metrics.bus_errors_total.labels(op=op).inc()

    stream = make_event_stream(settings, database)
    events = DomainEvents(database, clock, ids, stream)
    delivery = Delivery(bus, clock, ids, on_bus_error=bus_error, events=events)
    relay = Relay(
        database,
        stream,
        clock,
        lease_seconds=settings.event_relay_lease_seconds,
        on_published=metrics.stream_events_relayed_total.inc,
    )
    audit = AuditLog(database, clock, ids, events=events)
    webhooks = WebhookService(
        database,
        clock,
        ids,
        stream,
        HttpWebhookSender(
            allow_private=settings.webhook_allow_private,
            timeout=settings.webhook_timeout_seconds,
            max_response_bytes=settings.webhook_max_response_bytes,
        ),
        audit,
        give_up_seconds=settings.webhook_give_up_seconds,
        lease_seconds=settings.event_relay_lease_seconds,
        on_attempt=lambda status: metrics.webhook_deliveries_total.labels(status=status).inc(),
    )
    profiles = ProfileService(database, lookaside("profile"))
    graph_cache = GraphCache(database, lookaside("graph"))
    hasher = PasswordHasher(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
    )
    tokens = AccessTokens(
        database,
        clock,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    revocations = Revocations(
        cache,
        database,
        clock,
        token_ttl_seconds=settings.access_token_ttl_seconds,
        on_cache_error=cache_error,
        on_revoked=revocation_notifier(delivery),
    )
    mail = MailQueue(
        _make_mailer(settings),
        retry_seconds=settings.mail_retry_seconds,
        on_result=lambda result: metrics.mails_total.labels(result=result).inc(),
    )

    def hourly(name: str, limit: int) -> Throttle:
        return Throttle(
            cache, name=name, limit=limit, window_seconds=3600, on_cache_error=cache_error
        )

    verification = EmailVerification(
        database,
        clock,
        mail,
        throttle=hourly("verify_email", settings.verify_email_max_per_hour),
        ttl_seconds=settings.email_verification_ttl_seconds,
        link_for=_link(settings, settings.verify_email_link),
    )
    mfa = MfaService(
        database,
        clock,
        hasher,
        SecretBox(lambda: _mfa_keys(settings)),
        mail,
        throttle=Throttle(
            cache,
            name="mfa_account",
            limit=settings.mfa_max_failures_per_account,
            window_seconds=settings.login_failure_window_seconds,
            on_cache_error=cache_error,
            on_refused=metrics.login_throttled_total.labels(scope="mfa").inc,
        ),
        issuer=settings.app_name,
        challenge_ttl_seconds=settings.mfa_login_ttl_seconds,
    )
    auth = AuthService(
        database,
        clock,
        ids,
        hasher,
        tokens,
        revocations,
        profiles,
        login_throttle=LoginThrottle(
            cache,
            per_ip_and_account=settings.login_max_failures_per_ip_and_account,
            per_ip=settings.login_max_failures_per_ip,
            per_account=settings.login_max_failures_per_account,
            window_seconds=settings.login_failure_window_seconds,
            backoff_seconds=settings.login_account_backoff_seconds,
            backoff_max_seconds=settings.login_account_backoff_max_seconds,
            on_refused=lambda scope: metrics.login_throttled_total.labels(scope=scope).inc(),
            on_cache_error=cache_error,
        ),
        mfa=mfa,
        verification=verification,
        session_max_age_seconds=settings.session_max_age_seconds,
        refresh_grace_seconds=settings.refresh_grace_seconds,
        require_verified_email=settings.require_verified_email,
    )
    limits = _user_limits(settings, cache, metrics, cache_error)
    messaging = MessagingService(database, clock, ids, delivery, limits=limits)
    accounts = AccountService(
        database,
        clock,
        ids,
        hasher,
        auth,
        revocations,
        profiles,
        graph_cache,
        messaging,
        verification,
        mail,
        register_throttle=hourly("register_ip", settings.register_max_per_ip_per_hour),
        require_verified_email=settings.require_verified_email,
        events=events,
    )
    container = Container(
        settings=settings,
        auth=auth,
        accounts=accounts,
        profiles=profiles,
        graph=GraphService(database, clock, ids, profiles, graph_cache, delivery, limits=limits),
        suggestions=SuggestionService(database, profiles, lookaside("suggestions")),
        messaging=messaging,
        inbox=InboxService(database),
        delivery=delivery,
        tokens=tokens,
        revocations=revocations,
        retention=LogRetention(database, clock, keep_seconds=settings.event_log_retention_seconds),
        mail=mail,
        verification=verification,
        password_resets=PasswordResets(
            database,
            clock,
            hasher,
            revocations,
            mail,
            per_address=hourly("reset_address", settings.password_reset_max_per_address_per_hour),
            per_ip=hourly("reset_ip", settings.password_reset_max_per_ip_per_hour),
            ttl_seconds=settings.password_reset_ttl_seconds,
            link_for=_link(settings, settings.password_reset_link),
        ),
        mfa=mfa,
        admin=AdminService(
            database,
            clock,
            accounts,
            revocations,
            profiles,
            tokens,
            audit,
        ),
        events=events,
        relay=relay,
        webhooks=webhooks,
    )
    realtime = Realtime(
        bus=bus,
        cache=cache,
        clock=clock,
        tokens=tokens,
        revocations=revocations,
        inbox=container.inbox,
        messaging=messaging,
        delivery=delivery,
        graph=graph_cache,
        render=event_body,
        metrics=metrics,
        sockets_per_user=settings.ws_max_connections_per_user,
        on_cache_error=cache_error,
    )
    container.realtime = realtime
    container.readiness["database"] = database.ping
    if settings.redis_url:
        container.readiness["redis"] = cache.ping
    if settings.nats_url:
        container.readiness["nats"] = bus.ping

    background: list[asyncio.Task[None]] = []

    async def claim_node_id() -> None:
        if settings.node_id < 0 and settings.redis_url:
            # Every process of the cluster (servers, workers, admin commands) gets its own
            # node id, so ids never collide.
            try:
                ids.set_node(await cache.incr("node_seq", ttl=_TEN_YEARS) % 1024)
            except CacheUnavailable:
                ids.set_node(secrets.randbelow(1024))
                log.warning("redis down at start: random node id", node_id=ids.node_id)

    async def start() -> None:
        await claim_node_id()
        await tokens.load_keys()
        await revocations.resync()
        bus_up = await _start_bus(bus)
        if settings.event_relay_in_server:
            events.on_commit = relay.wake
            background.append(asyncio.create_task(relay.run()))
            background.append(asyncio.create_task(webhooks.run()))
        background.append(
            asyncio.create_task(
                _housekeeping(
                    settings,
                    tokens,
                    revocations,
                    messaging,
                    container.retention,
                    bus,
                    bus_up,
                    realtime.gateway,
                )
            )
        )

    async def stop() -> None:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await stream.close()
        await webhooks.close()
        await bus.close()
        await cache.close()
        await database.dispose()

    container.on_start.append(start)
    container.on_start.append(realtime.start)  # after the bus has started
    container.on_start.append(mail.start)
    container.on_stop.append(stop)
    container.on_stop.append(mail.stop)  # before the database closes (stops run reversed)
    container.on_stop.append(realtime.stop)  # stops run in reverse: sockets before the bus
    return Wiring(container, metrics, database, cache, bus, claim_node_id)


def _make_mailer(settings: Settings) -> SmtpMailer | OutboxMailer | LogOnlyMailer:
    """SMTP when configured; else, embedded, files in data_dir/outbox; else only a log line."""
    templates = Templates(
        settings.mail_templates_dir,
        common={"app_name": settings.app_name, "public_url": settings.effective_public_url},
    )
    if settings.smtp_url:
        try:
            return SmtpMailer(
                settings.smtp_url,
                templates,
                sender=settings.mail_from,
                timeout=settings.smtp_timeout_seconds,
                ca_file=settings.smtp_ca_file,
            )
        except (OSError, ssl.SSLError) as exc:  # SSLError is an OSError; named for the reader
            raise SettingsError(
                f"SOCIUS_SMTP_CA_FILE: cannot load {settings.smtp_ca_file}: {exc}"
            ) from exc
    if settings.is_embedded:
        return OutboxMailer(
            Path(settings.data_dir) / "outbox", templates, sender=settings.mail_from
        )
    return LogOnlyMailer()


def _link(settings: Settings, template: str) -> Callable[[str], str]:
    base = settings.effective_public_url
    return lambda token: template.replace("{public_url}", base).replace("{token}", token)


def _mfa_keys(settings: Settings) -> list[bytes]:
    """The keys that seal TOTP secrets, the current one first. Embedded without one set,
    a key is made once and kept in data_dir/mfa.key (readable by the owner only)."""
    configured = [settings.mfa_encryption_key, *settings.mfa_encryption_old_keys]
    keys = [decode_key(k) for k in configured if k]
    if settings.mfa_encryption_key or not settings.is_embedded:
        if not keys:
            log.warning("no SOCIUS_MFA_ENCRYPTION_KEY: two-factor sign-in cannot be enrolled")
        return keys
    path = Path(settings.data_dir) / "mfa.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        log.info("made a key for two-factor secrets", path=str(path))
    return [decode_key(path.read_text().strip()), *keys]


def _user_limits(
    settings: Settings, cache: Cache, metrics: Metrics, cache_error: Callable[[str], None]
) -> UserLimits:
    buckets = Buckets(cache)

    def limit(name: str) -> RateLimit:
        return RateLimit(
            buckets,
            name=name,
            count=getattr(settings, f"limit_{name}"),
            seconds=getattr(settings, f"limit_{name}_seconds"),
            on_refused=metrics.rate_limited_total.labels(action=name).inc,
            on_cache_error=cache_error,
        )

    return UserLimits(
        messages=limit("messages"),
        typing=limit("typing"),
        friend_requests=limit("friend_requests"),
        groups=limit("groups"),
    )


async def _start_bus(bus: Bus) -> bool:
    """Start the bus; a broker that is down delays live delivery, never the server."""
    try:
        await bus.start()
    except BusUnavailable:
        log.warning("event bus unreachable at start; retrying in the background")
        return False
    return True


async def _housekeeping(
    settings: Settings,
    tokens: AccessTokens,
    revocations: Revocations,
    messaging: MessagingService,
    retention: LogRetention,
    bus: Bus,
    bus_up: bool,
    gateway: Gateway,
) -> None:
    """Pick up keys rotated by other nodes; keep the cache's revocation list complete:
    refill Redis if it lost them, or (embedded) poll revocations other processes made and
    close their sockets (another process's in-process bus does not reach this one).
    Embedded, also the worker's jobs: disappearing messages, the event logs' retention."""
    next_keys = time.monotonic() + settings.signing_key_refresh_seconds
    next_resync = time.monotonic() + _RESYNC_SECONDS
    next_prune = time.monotonic() + _PRUNE_SECONDS
    while True:
        await asyncio.sleep(_POLL_SECONDS)
        try:
            if not bus_up and time.monotonic() >= next_resync:
                bus_up = await _start_bus(bus)
            if not settings.redis_url:
                if await revocations.poll():
                    await gateway.close_revoked()
            elif time.monotonic() >= next_resync:
                await revocations.resync()
                next_resync = time.monotonic() + _RESYNC_SECONDS
            if settings.is_embedded:  # clustered: `socius worker` does these
                await messaging.expire_due()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + _PRUNE_SECONDS
                    _, more = await retention.prune()
                    if more:  # behind (or gave way to a lock): again next round
                        next_prune = time.monotonic()
            if time.monotonic() >= next_keys:
                await tokens.load_keys()
                next_keys = time.monotonic() + settings.signing_key_refresh_seconds
        except Exception:  # keep the loop alive; the next round tries again
            log.exception("housekeeping failed")


def wrap(app: ASGIApp, wiring: Wiring, settings: Settings) -> ASGIApp:
    """The middleware around the Litestar app, outermost first: the WebSocket gateway's
    own front (api/ws.py), request context, tracing, metrics. They sit outside routing so
    that unmatched requests are counted too."""
    inner: ASGIApp = MetricsMiddleware(app, wiring.metrics)
    provider = configure_tracing("socius", settings.otlp_endpoint)
    if provider is not None:
        inner = TracingMiddleware(inner, provider.get_tracer("socius"))
    return WebSocketFront(RequestContextMiddleware(inner), wiring.container.realtime)


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The ASGI app Granian serves."""
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.log_json)
    wiring = build(settings)
    return wrap(build_litestar(wiring.container, wiring.metrics), wiring, settings)
