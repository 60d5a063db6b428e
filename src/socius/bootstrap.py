"""The one place that picks implementations and wires the app from Settings."""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import httpx
import structlog
from litestar import Litestar
from litestar.types import ASGIApp

from socius.api.app import build_litestar
from socius.api.front import Front, auth_table
from socius.api.rest.message_views import event_body
from socius.api.ws import WebSocketFront
from socius.blobs import FileBlobStore, PillowImages, S3BlobStore
from socius.bus.memory import MemoryBus
from socius.bus.nats import NatsBus
from socius.bus.redis import RedisBus, RedisCacheAndBus
from socius.bus.traced import TracedBus
from socius.cache.memory import MemoryCache
from socius.cache.redis import RedisCache
from socius.domain.errors import BusUnavailable, CacheUnavailable
from socius.domain.ids import IdGenerator
from socius.domain.reports import Decision
from socius.mail import LogOnlyMailer, OutboxMailer, SmtpMailer, Templates
from socius.observability.access_log import AccessLog
from socius.observability.logging import configure_logging
from socius.observability.metrics import Metrics
from socius.observability.tracing import TracingMiddleware, configure_tracing
from socius.push.sender import HttpPushSender
from socius.realtime import Realtime, revocation_notifier
from socius.realtime.gateway import Gateway
from socius.services.accounts import AccountService
from socius.services.admin import AdminService
from socius.services.attachments import AttachmentService
from socius.services.audit import AuditLog
from socius.services.auth import AuthService
from socius.services.bus_link import BusLink
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
from socius.services.messaging import MessagingService, SendGroups
from socius.services.mfa import MfaService
from socius.services.moderation import LinkSpam, Moderation, Rule, WordList, load_classifier
from socius.services.near_cache import NearCache, own_user_key
from socius.services.notifier import Notifier, PushOptions
from socius.services.oidc import OidcService
from socius.services.oidc_provider import OidcProviderClient, ProviderConfig
from socius.services.passkeys import PasskeyService
from socius.services.passkeys import available as passkeys_available
from socius.services.password_reset import PasswordResets
from socius.services.passwords import PasswordHasher
from socius.services.ports import BlobStore, Bus, Cache, CacheAndBus, EventStream
from socius.services.profiles import ProfileService
from socius.services.push import PushService
from socius.services.rate_limits import Buckets, RateLimit, UserLimits
from socius.services.relay import Relay
from socius.services.rendered import RenderedBodies
from socius.services.reports import ReportService
from socius.services.retention import LogRetention
from socius.services.revocation import Revocations
from socius.services.search import SearchService
from socius.services.secret_box import SecretBox
from socius.services.suggestions import SuggestionRefresher, SuggestionService
from socius.services.threads import ThreadService
from socius.services.throttle import Throttle
from socius.services.tokens import AccessTokens
from socius.services.webhooks import WebhookService
from socius.settings import Settings, SettingsError, decode_key, load_settings
from socius.storage.event_stream import SqlEventStream
from socius.storage.sessions import SqlRefreshRotation
from socius.storage.unit_of_work import Database
from socius.stream.http_sender import HttpWebhookSender
from socius.stream.jetstream import JetStreamEventStream

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

__all__ = ["Wiring", "build", "create_app", "serve_app", "tune_gc", "utc_now", "wrap"]

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
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """``tracer_provider``: set when tracing is on (SOCIUS_OTLP_ENDPOINT)."""
        self.container = container
        self.tracer_provider = tracer_provider
        self.metrics = metrics
        self.database = database
        self.cache = cache
        self.bus = bus
        self._claim_node_id = claim_node_id
        self.access_log: AccessLog | None = None  # set by `wrap` (the served app's front)

    async def start_outside_server(self) -> bool:
        """Start what a process other than the server needs (the worker, the CLI): a node
        id of its own (as the servers take theirs) and the bus; False when the bus is down."""
        await self._claim_node_id()
        return await _start_bus(self.bus)


def _make_bus(settings: Settings, tracer: Tracer | None, cache: Cache | None = None) -> Bus:
    """NATS when configured, else Redis pub/sub when Redis is, else in-process; wrapped in
    spans when tracing is on. A Redis bus publishes on ``cache``'s connection when it is
    the Redis cache without tracing (decision 0040: see ``RedisCacheAndBus``)."""
    bus: Bus
    if settings.nats_url:
        bus = NatsBus(settings.nats_url, prefix=settings.redis_prefix.rstrip(":") + ".")
        system = "nats"
    elif settings.redis_url:
        shared = cache.client if isinstance(cache, RedisCache) and tracer is None else None
        bus = RedisBus(settings.redis_url, prefix=settings.redis_prefix, client=shared)
        system = "redis"
    else:
        bus = MemoryBus()
        system = "memory"
    return bus if tracer is None else TracedBus(bus, tracer, system=system)


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


def build(
    settings: Settings, *, clock: Callable[[], datetime] = utc_now, bus: Bus | None = None
) -> Wiring:
    """Wire every service for ``settings``. Opens nothing until the app starts. ``bus``:
    one to use instead of the one ``settings`` name (tests: in-process nodes of a cluster
    on one ``MemoryBroker``)."""
    metrics = Metrics()
    provider = configure_tracing("socius", settings.otlp_endpoint)
    tracer = provider.get_tracer("socius") if provider is not None else None
    database = Database(
        settings.effective_database_url,
        replica_urls=settings.database_replica_urls,
        pool_size=settings.database_pool_size,
        echo=settings.database_echo,
    )
    metrics.add_pool_gauge("primary", database.pool_stats)
    if tracer is not None:
        database.trace(tracer)
    cache: Cache = (
        RedisCache(settings.redis_url, prefix=settings.redis_prefix, tracer=tracer)
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

    ids = IdGenerator(_node_id(settings))
    bus = bus or _make_bus(settings, tracer, cache)
    # The cache's invalidations and the bus's messages in one round trip (decision 0040).
    shared: CacheAndBus | None = None
    if isinstance(cache, RedisCache) and isinstance(bus, RedisBus) and bus.client is cache.client:
        shared = RedisCacheAndBus(cache, bus)
    link = BusLink(
        bus,
        heartbeat=settings.bus_heartbeat_seconds,
        on_change=lambda current: metrics.bus_link_current.set(1 if current else 0),
    )
    near = NearCache(
        max_entries=settings.l1_cache_entries,
        ttl=settings.l1_cache_ttl_seconds,
        link=link,
        origin=secrets.token_hex(8),
        local_l2=None if settings.redis_url else cache,
    )
    l1_seen = [0, 0]  # hits, misses already counted into the registry

    def sync_l1() -> None:
        hits, misses = near.hits, near.misses
        if hits > l1_seen[0]:
            metrics.cache_requests_total.labels(cache="l1", result="hit").inc(hits - l1_seen[0])
        if misses > l1_seen[1]:
            metrics.cache_requests_total.labels(cache="l1", result="miss").inc(misses - l1_seen[1])
        l1_seen[:] = [hits, misses]

    metrics.before_render(sync_l1)

    async def users_changed(user_ids: set[int]) -> None:
        await near.broadcast([own_user_key(u) for u in user_ids])

    database.on_users_changed = users_changed

    def lookaside(name: str) -> LookAside:
        return LookAside(
            cache,
            name=name,
            on_result=cache_result,
            on_error=cache_error,
            near=near,
            publish=bus.publish_many,
            shared=shared,
        )

    def bus_error(op: str) -> None:
        metrics.bus_errors_total.labels(op=op).inc()

    stream = make_event_stream(settings, database)
    events = DomainEvents(database, clock, ids, stream)
    delivery = Delivery(bus, clock, ids, on_bus_error=bus_error, events=events)
    push = PushService(
        database,
        clock,
        ids,
        _make_push_sender(settings, lambda: push.load_vapid()),
        allow_http=settings.push_allow_private,
    )
    notifier = Notifier(
        database,
        clock,
        stream,
        delivery,
        push.sender,
        options=PushOptions(
            attempts=settings.push_attempts,
            retry_base_seconds=settings.push_retry_base_seconds,
            ttl_seconds=settings.push_ttl_seconds,
        ),
        lease_seconds=settings.event_relay_lease_seconds,
        on_push=lambda outcome: metrics.pushes_total.labels(outcome=outcome).inc(),
    )

    def relayed(count: int) -> None:
        metrics.stream_events_relayed_total.inc(count)
        notifier.wake()
        refresher.wake()

    relay = Relay(
        database,
        stream,
        clock,
        lease_seconds=settings.event_relay_lease_seconds,
        on_published=relayed,
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
    profiles = ProfileService(database, lookaside("profile"), reads=database.reads)
    graph_cache = GraphCache(database, lookaside("graph"), reads=database.reads)
    suggestions = SuggestionService(
        database,
        clock,
        profiles,
        graph_cache,
        lookaside("suggestions"),
        max_age_seconds=settings.suggestions_max_age_seconds,
        first_request=settings.suggestions_first_request,
        reads=database.reads,
    )
    refresher = SuggestionRefresher(
        database,
        clock,
        stream,
        suggestions,
        lease_seconds=settings.event_relay_lease_seconds,
        per_second=settings.suggestions_refresh_per_second,
        # On SQLite the recomputations run on the loop (decision 0048); on PostgreSQL their
        # statements run in the database, and the loop serves requests while it waits.
        cpu_share=(
            settings.suggestions_refresh_cpu_share or None if database.dialect == "sqlite" else None
        ),
    )
    suggestions.on_queued = refresher.wake

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
    checks: dict[str, Callable[[], None]] = {}

    def revocation_check(source: str) -> None:
        # Once per authenticated request: the labelled child is looked up once per source.
        inc = checks.get(source)
        if inc is None:
            inc = checks[source] = metrics.revocation_checks_total.labels(source=source).inc
        inc()

    revocations = Revocations(
        cache,
        database,
        clock,
        token_ttl_seconds=settings.access_token_ttl_seconds,
        link=link,
        on_cache_error=cache_error,
        on_revoked=revocation_notifier(delivery),
        on_check=revocation_check,
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
        rotation=SqlRefreshRotation(database.reads) if database.reads.postgres else None,
        on_rotation_group=metrics.refresh_group_size.observe,
    )
    limits = _user_limits(settings, cache, metrics, cache_error)
    messaging = MessagingService(
        database,
        clock,
        ids,
        delivery,
        limits=limits,
        groups=SendGroups(
            max_group=settings.send_group_max,
            window=settings.send_group_window_ms / 1000,
            in_flight=settings.send_groups_in_flight if database.dialect != "sqlite" else 1,
            on_group=metrics.send_group_size.observe,
            on_done=metrics.send_group_seconds.observe,
            on_driver=database.dialect == "postgresql",
        ),
        moderation=_make_moderation(settings, metrics),
    )
    attachments = AttachmentService(
        database,
        clock,
        ids,
        _make_blob_store(settings),
        PillowImages(),
        spool_dir=Path(settings.data_dir) / "spool",
        max_bytes=settings.upload_max_bytes,
        allowed_types=settings.upload_allowed_types,
        unsent_ttl_seconds=settings.upload_unsent_ttl_seconds,
        presign_seconds=settings.blob_presign_seconds,
        limit=RateLimit(
            Buckets(cache),
            name="uploads",
            count=settings.limit_uploads,
            seconds=settings.limit_uploads_seconds,
            on_refused=metrics.rate_limited_total.labels(action="uploads").inc,
            on_cache_error=cache_error,
        ),
    )
    messaging.on_attachments_doomed = attachments.purge_soon
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
        reads=database.reads,
        require_verified_email=settings.require_verified_email,
        near=near,
        events=events,
    )
    oidc_http: list[httpx.AsyncClient] = []

    def http_client() -> httpx.AsyncClient:
        if not oidc_http:
            oidc_http.append(
                httpx.AsyncClient(
                    timeout=settings.oidc_http_timeout_seconds, follow_redirects=False
                )
            )
        return oidc_http[0]

    starts = Throttle(
        cache,
        name="sign_in_starts",
        limit=settings.sign_in_starts_max_per_ip_per_minute,
        window_seconds=60,
        on_cache_error=cache_error,
    )
    graph = GraphService(
        database,
        clock,
        ids,
        profiles,
        graph_cache,
        delivery,
        limits=limits,
        bodies=RenderedBodies(near),
    )
    admin = AdminService(database, clock, accounts, revocations, profiles, tokens, audit)
    reports = ReportService(
        database,
        clock,
        ids,
        graph=graph,
        messaging=messaging,
        admin=admin,
        audit=audit,
        events=events,
        limit=limits.reports,
    )
    messaging.on_flagged = reports.flag
    container = Container(
        settings=settings,
        auth=auth,
        accounts=accounts,
        profiles=profiles,
        graph=graph,
        suggestions=suggestions,
        refresher=refresher,
        messaging=messaging,
        attachments=attachments,
        search=SearchService(database, clock),
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
        admin=admin,
        oidc=OidcService(
            database,
            clock,
            ids,
            auth,
            _oidc_providers(settings, http_client),
            starts=starts,
            public_url=settings.effective_public_url,
            return_urls=settings.oidc_return_urls,
            state_ttl_seconds=settings.oidc_state_ttl_seconds,
            exchange_ttl_seconds=settings.oidc_exchange_ttl_seconds,
            events=events,
        ),
        passkeys=PasskeyService(
            database,
            clock,
            ids,
            auth,
            starts=starts,
            rp_id=settings.effective_webauthn_rp_id,
            rp_name=settings.webauthn_rp_name or settings.app_name,
            origins=settings.effective_webauthn_origins,
            challenge_ttl_seconds=settings.passkey_challenge_ttl_seconds,
        ),
        events=events,
        relay=relay,
        webhooks=webhooks,
        reports=reports,
        threads=ThreadService(database, clock, delivery),
        push=push,
        notifier=notifier,
    )
    if not passkeys_available():
        log.warning("the webauthn package is missing: passkeys are off (socius[federation])")
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
    realtime.gateway.tracer = tracer
    container.realtime = realtime
    notifier.online = realtime.presence.online_among
    container.readiness["database"] = database.ping
    if settings.redis_url:
        container.readiness["redis"] = cache.ping
    if settings.nats_url:
        container.readiness["nats"] = bus.ping
    if not settings.effective_blob_url.startswith("file:"):
        container.readiness["blobs"] = attachments.store.ping

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
        # Subscribes the revocation list and the L1 to the bus and catches them up; until
        # then (or while the bus is away) checks ask Redis and the database.
        await link.start()
        try:
            async with asyncio.timeout(2.0):  # never hold the start up for long
                await notifier.begin()
                await refresher.begin()
        except Exception:  # an outage: its first round tries again
            log.warning("notifier_begin_failed", exc_info=True)
        if settings.event_relay_in_server:
            events.on_commit = relay.wake
            background.append(asyncio.create_task(relay.run()))
            background.append(asyncio.create_task(webhooks.run()))
            background.append(asyncio.create_task(notifier.run()))
            background.append(asyncio.create_task(refresher.run()))
        background.append(
            asyncio.create_task(
                _housekeeping(
                    settings,
                    tokens,
                    revocations,
                    messaging,
                    container.retention,
                    attachments,
                    bus,
                    bus_up,
                    realtime.gateway,
                )
            )
        )

    async def stop() -> None:
        await stop_tasks(background)
        await link.stop()
        for client in oidc_http:
            await client.aclose()
        oidc_http.clear()
        await stream.close()
        await webhooks.close()
        await notifier.close()
        await bus.close()
        await cache.close()
        await attachments.store.close()
        await database.dispose()
        hasher.close()

    if provider is not None:
        # The first stop added runs last: the spans of everything else are ended by then.
        container.on_stop.append(_span_flusher(provider))
    container.on_start.append(start)
    container.on_start.append(attachments.start)
    container.on_start.append(realtime.start)  # after the bus has started
    container.on_start.append(mail.start)
    container.on_stop.append(stop)
    container.on_stop.append(attachments.stop)  # before the database closes
    container.on_stop.append(mail.stop)  # before the database closes (stops run reversed)
    container.on_stop.append(realtime.stop)  # stops run in reverse: sockets before the bus
    return Wiring(container, metrics, database, cache, bus, claim_node_id, provider)


def _span_flusher(provider: TracerProvider) -> Callable[[], Awaitable[None]]:
    async def flush() -> None:
        # Exports the last batch over HTTP: off the event loop.
        await asyncio.to_thread(provider.shutdown)

    return flush


def _make_moderation(settings: Settings, metrics: Metrics) -> Moderation | None:
    """The moderation hook from the settings (docs/moderation.md); None when nothing is
    configured (sends pay nothing). A classifier that cannot be loaded fails the start."""
    rules: list[Rule] = []
    words = WordList(
        settings.moderation_blocked_words,
        settings.moderation_blocked_patterns,
        Decision(settings.moderation_words_action),
    )
    if not words.empty:
        rules.append(words)
    links = LinkSpam(
        max_links=settings.moderation_max_links,
        new_account_seconds=settings.moderation_new_account_seconds,
        decision=Decision(settings.moderation_links_action),
    )
    if not links.empty:
        rules.append(links)
    classifier = None
    if settings.moderation_classifier:
        try:
            classifier = load_classifier(settings.moderation_classifier)
        except ValueError as exc:
            raise SettingsError(f"SOCIUS_MODERATION_CLASSIFIER: {exc}") from exc
    if not rules and classifier is None:
        return None
    return Moderation(
        rules,
        classifier,
        budget_seconds=settings.moderation_classifier_budget_ms / 1000,
        on_failure=lambda reason: metrics.moderation_classifier_failures_total.labels(
            reason=reason
        ).inc(),
        on_decision=lambda decision: metrics.moderation_decisions_total.labels(
            decision=decision
        ).inc(),
    )


def _make_blob_store(settings: Settings) -> BlobStore:
    """Files under a directory (``file://``, the default: data_dir/blobs), or a bucket of
    an S3-compatible object store (``s3://bucket/prefix``)."""
    url = urlsplit(settings.effective_blob_url)
    if url.scheme == "file":
        return FileBlobStore(Path(unquote(url.path)))
    if not url.netloc:
        raise SettingsError("SOCIUS_BLOB_URL: s3:// needs a bucket name (s3://bucket)")
    return S3BlobStore(
        bucket=url.netloc,
        prefix=url.path,
        endpoint=settings.blob_s3_endpoint,
        region=settings.blob_s3_region,
        access_key=settings.blob_s3_access_key,
        secret_key=settings.blob_s3_secret_key,
        virtual_host=settings.blob_s3_virtual_host,
        public_endpoint=settings.blob_s3_public_endpoint,
    )


def _make_push_sender(
    settings: Settings, vapid_pem: Callable[[], Awaitable[str]]
) -> HttpPushSender:
    return HttpPushSender(
        endpoints=HttpWebhookSender(
            allow_private=settings.push_allow_private,
            timeout=settings.push_timeout_seconds,
        ),
        # The gateway is the operator's own: it may sit on a private address.
        gateway=HttpWebhookSender(allow_private=True, timeout=settings.push_timeout_seconds),
        gateway_url=settings.push_gateway_url or None,
        gateway_secret=settings.push_gateway_secret or None,
        vapid_pem=vapid_pem,
        vapid_subject=settings.push_vapid_subject,
    )


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


def _oidc_providers(
    settings: Settings, http: Callable[[], httpx.AsyncClient]
) -> dict[str, OidcProviderClient]:
    base = settings.effective_public_url
    return {
        name: OidcProviderClient(
            ProviderConfig(
                name=name,
                issuer=p.issuer,
                client_id=p.client_id,
                client_secret=p.client_secret,
                scopes=list(p.scopes),
                display_name=p.display_name,
            ),
            http,
            redirect_uri=f"{base}/v1/auth/oidc/{name}/callback",
        )
        for name, p in settings.oidc_providers.items()
    }


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
        reports=limit("reports"),
    )


async def _start_bus(bus: Bus) -> bool:
    """Start the bus; a broker that is down delays live delivery, never the server."""
    try:
        await bus.start()
    except BusUnavailable:
        log.warning("event bus unreachable at start; retrying in the background")
        return False
    return True


async def stop_tasks(tasks: list[asyncio.Task[None]], *, wait: float = 1.0, tries: int = 5) -> None:
    """Cancel ``tasks`` and wait for them to end. A task still running ``wait`` seconds
    after its cancel is cancelled again (up to ``tries`` times, then left and logged): a
    loop can lose a cancel that arrives as a library call it awaits completes (Python
    3.11's ``asyncio.wait_for`` returns the result and drops the cancel, gh-86296), and
    a shutdown must not wait on it for ever."""
    pending = [t for t in tasks if not t.done()]
    for _ in range(tries):
        if not pending:
            return
        for task in pending:
            task.cancel()
        done, still = await asyncio.wait(pending, timeout=wait)
        for task in done:  # retrieved, so that asyncio does not log it as never retrieved
            if not task.cancelled():
                task.exception()
        pending = list(still)
    if pending:
        log.error("tasks_ignored_cancel", tasks=[t.get_name() for t in pending])


async def _housekeeping(
    settings: Settings,
    tokens: AccessTokens,
    revocations: Revocations,
    messaging: MessagingService,
    retention: LogRetention,
    attachments: AttachmentService,
    bus: Bus,
    bus_up: bool,
    gateway: Gateway,
) -> None:
    """Pick up keys rotated by other nodes; keep the cache's revocation list complete:
    refill Redis if it lost them, or (embedded) poll revocations other processes made and
    close their sockets (another process's in-process bus does not reach this one).
    Embedded, also the worker's jobs: disappearing messages, the event logs' retention,
    the attachments' purge."""
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
                # A net under the bus: a revocation whose notice was lost still reaches
                # memory (and a CLI's, when the bus was down for it).
                await revocations.poll()
                next_resync = time.monotonic() + _RESYNC_SECONDS
            if settings.is_embedded:  # clustered: `socius worker` does these
                await messaging.expire_due()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + _PRUNE_SECONDS
                    await attachments.purge()
                    _, more = await retention.prune()
                    if more:  # behind (or gave way to a lock): again next round
                        next_prune = time.monotonic()
            if time.monotonic() >= next_keys:
                await tokens.load_keys()
                next_keys = time.monotonic() + settings.signing_key_refresh_seconds
        except Exception:  # keep the loop alive; the next round tries again
            log.exception("housekeeping failed")


def wrap(app: Litestar, wiring: Wiring, settings: Settings) -> ASGIApp:
    """What is around the Litestar app, outermost first: the WebSocket gateway's own front
    (api/ws.py), the server span when tracing is configured, the front (api/front.py:
    request id, authentication, metrics, access log). They sit outside routing so that
    unmatched requests are counted too."""
    access_log = AccessLog(
        json=settings.log_json,
        sample_rate=settings.access_log_sample_rate,
        slow_seconds=settings.access_log_slow_ms / 1000.0,
        trace_ids=wiring.tracer_provider is not None,
    )
    wiring.access_log = access_log
    wiring.container.on_stop.append(_flusher(access_log))
    inner: ASGIApp = Front(
        app,
        table=auth_table(app),
        authenticate=wiring.container.auth.authenticate,
        stats=wiring.metrics.http,
        access_log=access_log,
    )
    provider = wiring.tracer_provider
    if provider is not None:
        inner = TracingMiddleware(inner, provider.get_tracer("socius"))
    return WebSocketFront(inner, wiring.container.realtime)


def _flusher(access_log: AccessLog) -> Callable[[], Awaitable[None]]:
    async def flush() -> None:
        access_log.flush()

    return flush


def tune_gc(settings: Settings) -> None:
    """Once the app is built: what exists now lives as long as the process, so it is moved
    out of the collector's sight (`gc.freeze`), and young collections run every
    `gc_gen0_threshold` allocations instead of 700 (a request allocates hundreds of
    objects, nearly all freed by reference counting; see decision 0010)."""
    if settings.gc_gen0_threshold:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(settings.gc_gen0_threshold, gen1, gen2)
    if settings.gc_freeze:
        gc.collect()
        gc.freeze()


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The ASGI app Granian serves."""
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.log_json, trace_ids=bool(settings.otlp_endpoint))
    wiring = build(settings)
    return wrap(build_litestar(wiring.container, wiring.metrics), wiring, settings)


def serve_app() -> ASGIApp:
    """The app of a `socius serve` worker process: `create_app`, then `tune_gc`."""
    settings = load_settings()
    app = create_app(settings)
    tune_gc(settings)
    return app
