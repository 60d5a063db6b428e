"""Traces (SOCIUS_OTLP_ENDPOINT): spans reach a real OTLP/HTTP receiver, as a tree.

On both stacks: a request is a server span over its SQL statements (SQLite or
PostgreSQL), its Redis commands (postgres stack) and its bus publishes; a WebSocket is a
session span over its handshake and its frames; logs carry the trace id. On two nodes
sharing NATS (or Redis pub/sub), a message sent on node A and delivered on node B is one
trace: the publish on A is the parent of the delivery on B.
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from ws_support import connected, event_type, until

from conftest import NATS_URL, PASSWORD, Account, App, make_app, require_service, unique_name
from otlp_receiver import OtlpReceiver, Span, children, one
from socius.client import Client
from socius.observability.logging import configure_logging
from socius.services.delivery import shard_subject
from socius.settings import Settings


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def app(make_settings: Callable[..., Settings], receiver: OtlpReceiver) -> App:
    # JSON logs: the access lines (written by the front, not structlog) are JSON too.
    return make_app(make_settings(otlp_endpoint=receiver.url, log_json=True))


def flush(*apps: App) -> None:
    """Export every ended span now (the batch processor would wait for its timer)."""
    for app in apps:
        provider = app.wiring.tracer_provider
        assert provider is not None
        assert provider.force_flush(10_000)


def traceparent(trace_id: str) -> dict[str, str]:
    """Headers that start the request's spans in the trace ``trace_id``."""
    return {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}


def direct(a: Account, b: Account) -> str:
    body = a.client.request(
        "POST", "/v1/conversations", json={"kind": "direct", "member_ids": [b.id]}
    ).json()
    return str(body["id"])


def send(a: Account, conversation: str, body: str, trace_id: str) -> None:
    a.client.request(
        "POST",
        f"/v1/conversations/{conversation}/messages",
        json={"client_msg_id": secrets.token_hex(8), "body": body},
        headers=traceparent(trace_id),
    )


def server_span(spans: list[Span]) -> Span:
    [server] = [s for s in spans if s.kind == "server"]
    return server


def db_spans(spans: list[Span], system: str) -> list[Span]:
    return [s for s in spans if s.attributes.get("db.system") == system]


def test_a_request_is_a_server_span_over_its_sql_redis_and_bus_spans(
    stack: str, app: App, register: Callable[..., Account], receiver: OtlpReceiver
) -> None:
    a, b = register(), register()
    conversation = direct(a, b)
    trace_id, body = secrets.token_hex(16), f"private words {secrets.token_hex(4)}"

    send(a, conversation, body, trace_id)
    flush(app)

    spans = receiver.trace(trace_id)
    server = server_span(spans)
    assert server.name.startswith("POST /v1/conversations/{")
    assert server.name.endswith("}/messages")
    assert server.attributes["http.status_code"] == 201
    under = children(spans, server)

    sql = db_spans(spans, "sqlite" if stack == "sqlite" else "postgresql")
    assert sql, [s.name for s in spans]
    assert all(s in under and s.kind == "client" for s in sql)
    operations = {s.attributes["db.operation"] for s in sql}
    assert "SELECT" in operations
    # The writes: on PostgreSQL one statement of data-modifying CTEs (decision 0055).
    assert ("WITH" if stack == "postgres" else "INSERT") in operations
    statements = "\n".join(str(s.attributes["db.statement"]) for s in sql)
    assert "INSERT INTO messages" in statements
    assert body not in statements  # the text, never the parameters
    # Placeholders, as written: a send group's statements go to the driver on both
    # stacks (decision 0060), where they are written with ``?`` (numbered when sent).
    assert "?" in statements

    redis = db_spans(spans, "redis")
    if stack == "postgres":  # the Redis cache: rate limits, look-asides
        assert redis, [s.name for s in spans]
        assert all(s in under and s.kind == "client" for s in redis)
        assert all(s.name == s.attributes["db.operation"] for s in redis)
    else:
        assert redis == []

    publishes = [s for s in spans if s.name == "bus publish"]
    assert publishes  # the new message, to both members' logs
    assert all(s in under and s.kind == "producer" for s in publishes)
    assert {s.attributes["messaging.system"] for s in publishes} == {
        "memory" if stack == "sqlite" else "redis"
    }
    # One bus message per shard of the members (decision 0050).
    assert {s.attributes["messaging.destination.name"] for s in publishes} == {
        shard_subject(int(a.id)),
        shard_subject(int(b.id)),
    }


def test_a_socket_is_a_session_span_over_its_handshake_and_frames(
    stack: str,
    app: App,
    http: TestClient[Any],
    register: Callable[..., Account],
    receiver: OtlpReceiver,
) -> None:
    a, b = register(), register()
    conversation = direct(a, b)
    with (
        connected(http, a.auth.access_token) as (ws_a, _, _),
        connected(http, b.auth.access_token) as (ws_b, _, _),
    ):
        ws_a.send_json({"type": "ping"})  # pings are not traced
        ws_a.send_json({"type": "typing", "conversation_id": conversation})
        until(ws_b, lambda f: f["type"] == "event" and event_type(f) == "typing")
    # The sessions end as the server sees the sockets close.
    spans = receiver.wait_for(
        lambda got: sum(s.name == "ws session" for s in got) == 2, poll=lambda: flush(app)
    )
    [session] = [
        s for s in spans if s.name == "ws session" and s.attributes.get("socius.user_id") == a.id
    ]
    assert session.kind == "server"
    assert session.parent_id == ""
    assert session.attributes["websocket.closed_by"] == "client"
    trace = receiver.trace(session.trace_id)
    # The frames are the session's children. So may be the cache reads of an event
    # delivered to this socket meanwhile (the relay publishes up to 20 ms after a commit,
    # so under load the conversation's own events arrive during the session): only the
    # session's frames are counted here.
    frames = [s.name for s in children(trace, session) if s.attributes.get("db.system") is None]
    assert sorted(frames) == ["ws auth", "ws typing"]
    typing = one(trace, "ws typing")
    # The typing signal goes to b's socket through the bus, in this trace.
    publish = one(children(trace, typing), "bus publish")
    assert publish.attributes["messaging.destination.name"] == shard_subject(int(b.id))
    deliver = one(children(trace, publish), "bus deliver")
    assert deliver.kind == "consumer"
    assert deliver.attributes["messaging.destination.name"] == shard_subject(int(b.id))
    # The handshake read the session and the log position: SQL (or Redis) under "ws auth".
    auth = one(trace, "ws auth")
    assert any(s.attributes.get("db.system") for s in children(trace, auth))


def test_log_lines_carry_the_trace_and_span_ids(
    app: App, http: TestClient[Any], register: Callable[..., Account], receiver: OtlpReceiver
) -> None:
    a = register()
    out = io.StringIO()
    configure_logging("info", json=True, stream=out, trace_ids=True)
    trace_id = secrets.token_hex(16)
    try:
        a.client.request("GET", "/v1/me", headers=traceparent(trace_id))
        assert app.wiring.access_log is not None
        app.wiring.access_log.flush()  # access lines are written in batches
    finally:
        configure_logging("info", json=False)
    flush(app)

    server = server_span(receiver.trace(trace_id))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    [access] = [line for line in lines if line.get("trace_id") == trace_id]
    assert access["event"] == "request"
    assert access["path"] == "/v1/me"
    assert access["span_id"] == server.span_id


def test_without_an_endpoint_nothing_is_traced(
    make_settings: Callable[..., Settings], receiver: OtlpReceiver
) -> None:
    app = make_app(make_settings())
    assert app.wiring.tracer_provider is None
    with TestClient(app.asgi) as http:  # type: ignore[arg-type]
        Client(http=http).register(unique_name(), PASSWORD)
    assert receiver.requests == 0
    realtime = app.wiring.container.realtime
    assert realtime is not None
    assert realtime.gateway.tracer is None


# ---------------------------------------------------------------------------- two nodes


@pytest.mark.parametrize("bus", ["nats", "redis"])
def test_a_message_sent_on_node_a_and_delivered_on_node_b_is_one_trace(
    stack: str, bus: str, make_settings: Callable[..., Settings], receiver: OtlpReceiver
) -> None:
    if stack != "postgres":
        pytest.skip("nodes share a database and a bus only on PostgreSQL + Redis")
    overrides: dict[str, str] = {"otlp_endpoint": receiver.url}
    if bus == "nats":
        require_service(NATS_URL, "nats")
        overrides["nats_url"] = NATS_URL
    node_a, node_b = make_app(make_settings(**overrides)), make_app(make_settings(**overrides))
    with (
        TestClient(node_a.asgi) as http_a,  # type: ignore[arg-type]
        TestClient(node_b.asgi) as http_b,  # type: ignore[arg-type]
    ):
        a, b = (
            Account(c, c.register(unique_name(), PASSWORD), PASSWORD)
            for c in (Client(http=http_a), Client(http=http_a))
        )
        conversation = direct(a, b)
        trace_id = secrets.token_hex(16)
        with connected(http_b, b.auth.access_token) as (ws, _, _):
            send(a, conversation, "across", trace_id)
            until(ws, lambda f: f["type"] == "event" and event_type(f) == "message.created")
        flush(node_a, node_b)

    spans = receiver.trace(trace_id)
    server = server_span(spans)
    [publish] = [
        s
        for s in children(spans, server)
        if s.name == "bus publish"
        and s.attributes["messaging.destination.name"] == shard_subject(int(b.id))
    ]
    assert publish.attributes["messaging.system"] == bus
    [deliver] = [s for s in children(spans, publish) if s.name == "bus deliver"]
    assert deliver.attributes["messaging.system"] == bus
    assert server.instance == publish.instance == instance(node_a)
    assert deliver.instance == instance(node_b)


def instance(app: App) -> str:
    provider = app.wiring.tracer_provider
    assert provider is not None
    return str(provider.resource.attributes["service.instance.id"])
