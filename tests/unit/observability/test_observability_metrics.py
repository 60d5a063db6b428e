"""Metrics registry, and the front's request counts (api/front.py), driven by a
hand-written ASGI app."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from socius.api.front import AuthTable, Front
from socius.observability import HTTP_DURATION_BUCKETS, Metrics
from socius.observability.access_log import AccessLog

Message = dict[str, Any]


async def _no_token(_token: str) -> Any:
    raise AssertionError("no route here needs a token")


def counting_front(app: Any, metrics: Metrics) -> Front:
    """The served app's front with no protected route, counting into ``metrics``."""
    return Front(
        app,
        table=AuthTable(),
        authenticate=_no_token,
        stats=metrics.http,
        access_log=AccessLog(sample_rate=0.0),
    )


def http_scope(method: str = "GET", path: str = "/users/42") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [],
        "client": ("10.0.0.1", 5555),
    }


def app_responding(status: int = 200, template: str | None = "/users/{user_id:int}") -> Any:
    """Sets path_template the way Litestar's router does, then answers with `status`."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if template is not None:
            scope["path_template"] = template
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def call(app: Any, scope: dict[str, Any]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def requests(metrics: Metrics, method: str, route: str, status: str) -> float | None:
    return metrics.registry.get_sample_value(
        "http_requests_total", {"method": method, "route": route, "status": status}
    )


def duration_count(metrics: Metrics, method: str, route: str) -> float | None:
    return metrics.registry.get_sample_value(
        "http_request_duration_seconds_count", {"method": method, "route": route}
    )


def in_flight(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("http_requests_in_flight")


async def test_status_and_route_template_are_recorded() -> None:
    metrics = Metrics()
    ok = counting_front(app_responding(200), metrics)
    created = counting_front(app_responding(201), metrics)

    sent = await call(ok, http_scope())
    await call(ok, http_scope(path="/users/43"))
    await call(created, http_scope("POST", "/users/44"))

    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert requests(metrics, "GET", "/users/{user_id:int}", "200") == 2
    assert requests(metrics, "POST", "/users/{user_id:int}", "201") == 1
    assert duration_count(metrics, "GET", "/users/{user_id:int}") == 2
    assert duration_count(metrics, "POST", "/users/{user_id:int}") == 1
    assert in_flight(metrics) == 0


async def test_raw_path_is_never_a_label() -> None:
    metrics = Metrics()
    mw = counting_front(app_responding(404, template=None), metrics)

    await call(mw, http_scope(path="/no/such/thing"))
    await call(mw, http_scope(path="/another/unknown/path"))

    assert requests(metrics, "GET", "unmatched", "404") == 2
    body, _ = metrics.render()
    assert b"/no/such/thing" not in body
    assert b"/another/unknown/path" not in body


async def test_empty_path_template_counts_as_unmatched() -> None:
    metrics = Metrics()
    await call(counting_front(app_responding(404, template=""), metrics), http_scope())
    assert requests(metrics, "GET", "unmatched", "404") == 1


async def test_unknown_methods_are_folded_into_other() -> None:
    metrics = Metrics()
    mw = counting_front(app_responding(405), metrics)
    await call(mw, http_scope(method="FROBNICATE"))
    assert requests(metrics, "OTHER", "/users/{user_id:int}", "405") == 1
    assert requests(metrics, "FROBNICATE", "/users/{user_id:int}", "405") is None


async def test_in_flight_is_one_during_the_request_and_zero_after() -> None:
    metrics = Metrics()
    seen: list[float | None] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(in_flight(metrics))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await call(counting_front(app, metrics), http_scope())

    assert seen == [1.0]
    assert in_flight(metrics) == 0
    assert requests(metrics, "GET", "unmatched", "204") == 1


async def test_a_crashing_app_is_counted_as_500_and_the_error_propagates() -> None:
    metrics = Metrics()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["path_template"] = "/boom"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await call(counting_front(app, metrics), http_scope(path="/boom"))

    assert requests(metrics, "GET", "/boom", "500") == 1
    assert in_flight(metrics) == 0


async def test_status_comes_from_the_response_start_even_if_the_app_fails_later() -> None:
    metrics = Metrics()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        await call(counting_front(app, metrics), http_scope())
    assert requests(metrics, "GET", "unmatched", "200") == 1


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_non_http_scopes_pass_through_untouched(scope_type: str) -> None:
    metrics = Metrics()
    seen: list[tuple[Any, Any, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Message:
        return {}

    async def send(message: Message) -> None:
        return None

    scope: dict[str, Any] = {"type": scope_type, "path": "/ws", "headers": []}
    await counting_front(app, metrics)(scope, receive, send)

    assert seen == [(scope, receive, send)]
    assert seen[0][2] is send  # the original send, not a wrapper
    body, _ = metrics.render()
    assert b"http_requests_total{" not in body
    assert in_flight(metrics) == 0


async def test_latency_lands_in_the_histogram_buckets() -> None:
    metrics = Metrics()
    await call(counting_front(app_responding(200), metrics), http_scope())
    labels = {"method": "GET", "route": "/users/{user_id:int}"}
    # A trivial in-process call finishes within 5 s: it is in the last finite bucket.
    assert (
        metrics.registry.get_sample_value(
            "http_request_duration_seconds_bucket", {**labels, "le": "5.0"}
        )
        == 1
    )
    assert HTTP_DURATION_BUCKETS[0] == 0.0005
    assert HTTP_DURATION_BUCKETS[-1] == 5.0
    assert list(HTTP_DURATION_BUCKETS) == sorted(HTTP_DURATION_BUCKETS)


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.auth_failures_total.labels(reason="bad_password").inc()
    assert first.registry is not second.registry
    assert first.registry.get_sample_value("auth_failures_total", {"reason": "bad_password"}) == 1
    assert (
        second.registry.get_sample_value("auth_failures_total", {"reason": "bad_password"}) is None
    )


def test_render_exposes_all_declared_metrics_in_text_format() -> None:
    metrics = Metrics()
    metrics.cache_errors_total.labels(op="get").inc()
    metrics.cache_requests_total.labels(cache="profile", result="hit").inc(3)
    metrics.login_throttled_total.labels(scope="ip").inc()

    body, content_type = metrics.render()

    assert content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name in (
        "http_requests",
        "http_request_duration_seconds",
        "http_requests_in_flight",
        "cache_errors",
        "cache_requests",
        "login_throttled",
        "auth_failures",
        "python_gc_objects_collected",
        "python_info",
    ):
        assert name in families, name
    hits = [s for s in families["cache_requests"].samples if s.name == "cache_requests_total"]
    assert [(s.labels, s.value) for s in hits] == [({"cache": "profile", "result": "hit"}, 3.0)]


def test_pool_gauge_is_read_at_scrape_time() -> None:
    metrics = Metrics()
    stats = {"in_use": 1, "idle": 4}
    calls: list[int] = []

    def read() -> dict[str, int]:
        calls.append(1)
        return dict(stats)

    metrics.add_pool_gauge("primary", read)
    assert calls == []  # nothing read at registration

    def value(state: str) -> float | None:
        return metrics.registry.get_sample_value(
            "db_pool_connections", {"pool": "primary", "state": state}
        )

    assert (value("in_use"), value("idle")) == (1, 4)
    stats.update(in_use=3, idle=2)
    assert (value("in_use"), value("idle")) == (3, 2)


def test_several_pools_share_one_metric_family() -> None:
    metrics = Metrics()
    metrics.add_pool_gauge("primary", lambda: {"in_use": 2, "idle": 8})
    metrics.add_pool_gauge("replica", lambda: {"in_use": 0, "idle": 5})

    body, _ = metrics.render()

    assert body.count(b"# TYPE db_pool_connections gauge") == 1
    assert b'db_pool_connections{pool="primary",state="in_use"} 2.0' in body
    assert b'db_pool_connections{pool="replica",state="idle"} 5.0' in body


def test_registering_the_same_pool_twice_is_an_error() -> None:
    metrics = Metrics()
    metrics.add_pool_gauge("primary", lambda: {"in_use": 0, "idle": 0})
    with pytest.raises(ValueError, match="primary"):
        metrics.add_pool_gauge("primary", lambda: {"in_use": 0, "idle": 0})


def test_a_failing_pool_does_not_break_the_scrape() -> None:
    metrics = Metrics()

    def broken() -> dict[str, int]:
        raise RuntimeError("pool disposed")

    metrics.add_pool_gauge("broken", broken)
    metrics.add_pool_gauge("replica", lambda: {"in_use": 1, "idle": 1})

    body, _ = metrics.render()

    assert b'pool="broken"' not in body
    assert b'db_pool_connections{pool="replica",state="in_use"} 1.0' in body
