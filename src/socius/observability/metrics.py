"""Prometheus metrics: one registry per app, and an ASGI middleware for HTTP traffic.

Each `Metrics` owns its own `CollectorRegistry` (never the process-global one), so
tests can build many apps in one process. Nothing here is created at import time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = ["HTTP_DURATION_BUCKETS", "Metrics", "MetricsMiddleware"]

# Loose on purpose: servers pass plain dicts, Litestar types scopes and messages as
# TypedDicts; both sides must fit (e.g. Litestar(middleware=[DefineMiddleware(...)])).
_ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

_log = logging.getLogger(__name__)

#: 0.5 ms .. 5 s, roughly 1-2.5-5 per decade.
HTTP_DURATION_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

# Any other method a client invents is folded into "OTHER" (bounded label cardinality).
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
_UNMATCHED = "unmatched"


class _PoolCollector:
    """Reads connection pool statistics when Prometheus scrapes, never before."""

    def __init__(self) -> None:
        self.pools: dict[str, Callable[[], dict[str, int]]] = {}

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "db_pool_connections",
            "Database pool connections by state (in_use, idle).",
            labels=["pool", "state"],
        )

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for name, stats in self.pools.items():
            try:
                values = stats()
            except Exception:
                # A broken or disposed pool must not fail the whole scrape.
                _log.warning("pool stats failed for pool %r", name, exc_info=True)
                continue
            for state, value in values.items():
                family.add_metric([name, state], value)
        return [family]


class Metrics:
    """All socius metrics, on a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests_total = Counter(
            "http_requests_total",
            "HTTP requests handled, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_request_duration_seconds = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration in seconds, until the response body was sent.",
            ["method", "route"],
            buckets=HTTP_DURATION_BUCKETS,
            registry=r,
        )
        self.http_requests_in_flight = Gauge(
            "http_requests_in_flight",
            "HTTP requests currently being handled.",
            registry=r,
        )
        self.cache_errors_total = Counter(
            "cache_errors_total",
            "Cache operations that failed (the request fell back to the database).",
            ["op"],
            registry=r,
        )
        self.bus_errors_total = Counter(
            "bus_errors_total",
            "Event bus operations that failed (live delivery degraded; the log has the event).",
            ["op"],
            registry=r,
        )
        self.ws_connections = Gauge(
            "ws_connections",
            "WebSocket connections open on this process.",
            registry=r,
        )
        self.ws_events_sent_total = Counter(
            "ws_events_sent_total",
            "Event frames sent on WebSocket connections.",
            registry=r,
        )
        self.ws_closed_total = Counter(
            "ws_closed_total",
            "WebSocket connections closed, by close code.",
            ["code"],
            registry=r,
        )
        self.cache_requests_total = Counter(
            "cache_requests_total",
            "Cache look-ups by cache name and result (hit, miss).",
            ["cache", "result"],
            registry=r,
        )
        self.login_throttled_total = Counter(
            "login_throttled_total",
            "Login attempts refused by the throttle, by scope (ip, ip_account, account).",
            ["scope"],
            registry=r,
        )
        self.rate_limited_total = Counter(
            "rate_limited_total",
            "Actions refused by a per-user limit (429), by action; sockets over the cap (4429).",
            ["action"],
            registry=r,
        )
        self.auth_failures_total = Counter(
            "auth_failures_total",
            "Authentication failures by reason.",
            ["reason"],
            registry=r,
        )
        self.mails_total = Counter(
            "mails_total",
            "Outgoing mails by result (sent, retried, rejected, dropped).",
            ["result"],
            registry=r,
        )
        self.stream_events_relayed_total = Counter(
            "stream_events_relayed_total",
            "Domain events the relay published to the durable stream.",
            registry=r,
        )
        self.webhook_deliveries_total = Counter(
            "webhook_deliveries_total",
            "Webhook delivery attempts by status (delivered, failed).",
            ["status"],
            registry=r,
        )
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self._pools: _PoolCollector | None = None

    def add_pool_gauge(self, name: str, stats: Callable[[], dict[str, int]]) -> None:
        """Expose `db_pool_connections{pool=name, state=...}`, calling `stats()` at scrape time.

        `stats` returns counts keyed by state, normally ``{"in_use": n, "idle": m}``.
        """
        if self._pools is None:
            self._pools = _PoolCollector()
            self.registry.register(self._pools)
        if name in self._pools.pools:
            raise ValueError(f"pool gauge {name!r} is already registered")
        self._pools.pools[name] = stats

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type, for a `/metrics` endpoint."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware counting and timing HTTP requests.

    Non-HTTP scopes (websocket, lifespan) pass through untouched. The route label is
    the framework's route template (``scope["path_template"]``, set by Litestar while
    routing, so it is read after the inner app ran) or ``"unmatched"``; never the raw
    path, whose cardinality is unbounded.
    """

    __slots__ = ("_children", "_duration", "_in_flight", "_requests", "app")

    def __init__(self, app: _ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self._requests = metrics.http_requests_total
        self._duration = metrics.http_request_duration_seconds
        self._in_flight = metrics.http_requests_in_flight
        # (method, route, status) -> (counter child, histogram child)
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # An app that ends (or raises) without starting a response gets a 500 from the server.
        status = 500

        async def send_capturing_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_flight = self._in_flight
        in_flight.inc()
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_capturing_status)
        finally:
            elapsed = time.perf_counter() - start
            in_flight.dec()
            self._record(scope, status, elapsed)

    def _record(self, scope: Any, status: int, elapsed: float) -> None:
        method: str = scope.get("method", "GET")
        if method not in _KNOWN_METHODS:
            method = "OTHER"
        route: str = scope.get("path_template") or _UNMATCHED
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self._requests.labels(method, route, str(status)),
                self._duration.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)
