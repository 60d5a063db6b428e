"""Prometheus metrics: one registry per app, and an ASGI middleware for HTTP traffic.

Each `Metrics` owns its own `CollectorRegistry` (never the process-global one), so
tests can build many apps in one process. Nothing here is created at import time.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
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
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString

__all__ = ["HTTP_DURATION_BUCKETS", "UNMATCHED", "HttpStats", "Metrics"]

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

# The `le` label of each duration bucket, as prometheus_client writes them.
_LE: tuple[str, ...] = tuple(
    floatToGoString(bound)  # type: ignore[no-untyped-call]
    for bound in (*HTTP_DURATION_BUCKETS, float("inf"))
)

# Any other method a client invents is folded into "OTHER" (bounded label cardinality).
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
UNMATCHED = "unmatched"


class HttpStats:
    """HTTP request counts and durations kept as plain numbers, exported when scraped.

    `record` is what every request pays: one dict look-up and three additions, no lock
    (one event loop per process), no label objects. Per (method, route, status) it keeps
    [count, sum of seconds, one count per duration bucket (not cumulative), +Inf];
    `collect` turns them into ``http_requests_total{method,route,status}``,
    ``http_request_duration_seconds{method,route}`` and ``http_requests_in_flight``.
    """

    __slots__ = ("_series", "in_flight")

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, int], list[float]] = {}
        self.in_flight = 0

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            if method not in _KNOWN_METHODS and method != "OTHER":
                self.record("OTHER", route, status, seconds)
                return
            series = self._series[key] = [0.0] * (len(HTTP_DURATION_BUCKETS) + 3)
        series[0] += 1
        series[1] += seconds
        series[2 + bisect_left(HTTP_DURATION_BUCKETS, seconds)] += 1

    def describe(self) -> Iterable[Metric]:
        return list(self.collect())

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            "http_requests",
            "HTTP requests handled, by method, route template and status.",
            labels=["method", "route", "status"],
        )
        duration = HistogramMetricFamily(
            "http_request_duration_seconds",
            "HTTP request duration in seconds, until the response body was sent.",
            labels=["method", "route"],
        )
        in_flight = GaugeMetricFamily(
            "http_requests_in_flight", "HTTP requests currently being handled."
        )
        in_flight.add_metric([], self.in_flight)
        by_route: dict[tuple[str, str], list[float]] = {}
        for (method, route, status), series in list(self._series.items()):
            requests.add_metric([method, route, str(status)], series[0])
            total = by_route.get((method, route))
            if total is None:
                by_route[(method, route)] = list(series)
            else:
                for i, value in enumerate(series):
                    total[i] += value
        for (method, route), series in by_route.items():
            buckets, running = [], 0.0
            for bound, count in zip(_LE, series[2:], strict=True):
                running += count
                buckets.append((bound, running))
            duration.add_metric([method, route], buckets, series[1])
        return [requests, duration, in_flight]


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
        self.http = HttpStats()
        r.register(self.http)
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
        self.bus_link_current = Gauge(
            "bus_link_current",
            "1 while this node hears the bus and has caught up (memory answers revocation "
            "checks, L1 serves); 0 while it falls back to Redis and the database.",
            registry=r,
        )
        self.revocation_checks_total = Counter(
            "revocation_checks_total",
            "Revocation checks by what answered them: memory, redis, database.",
            ["source"],
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
        self.send_group_size = Histogram(
            "send_group_size",
            "Sends committed together in one transaction (group commit).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.send_group_seconds = Histogram(
            "send_group_seconds",
            "Wall time of one send group, from its first statement to its commit and "
            "after-commit work (group commit).",
            buckets=(0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.refresh_group_size = Histogram(
            "refresh_group_size",
            "Refresh rotations made together in one statement (PostgreSQL, decision 0044).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
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
        self.moderation_decisions_total = Counter(
            "moderation_decisions_total",
            "Messages the moderation hook flagged or rejected, by decision.",
            ["decision"],
            registry=r,
        )
        self.moderation_classifier_failures_total = Counter(
            "moderation_classifier_failures_total",
            "Classifier calls that timed out or raised: the message went ahead (fail open).",
            ["reason"],
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
        self.pushes_total = Counter(
            "pushes_total",
            "Push attempts by outcome (delivered, retried, failed, gone, rejected).",
            ["outcome"],
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
        self._before_render: list[Callable[[], None]] = []

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

    def before_render(self, sync: Callable[[], None]) -> None:
        """Call `sync` before each render: it moves counts kept as plain numbers on a hot
        path into the registry's metrics."""
        self._before_render.append(sync)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type, for a `/metrics` endpoint."""
        for sync in self._before_render:
            sync()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
