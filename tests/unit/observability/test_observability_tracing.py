"""configure_tracing and TracingMiddleware, with an in-memory span exporter."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from socius.observability import TracingMiddleware, configure_tracing

Message = dict[str, Any]
OTLP_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    memory.provider = provider  # type: ignore[attr-defined]
    yield memory
    provider.shutdown()


def tracer_of(exporter: InMemorySpanExporter) -> Any:
    return exporter.provider.get_tracer("test")  # type: ignore[attr-defined]


def http_scope(headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/users/42",
        "query_string": b"",
        "headers": headers or [],
    }


def app_responding(status: int = 200, template: str | None = "/users/{user_id:int}") -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if template is not None:
            scope["path_template"] = template
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


async def call(app: Any, scope: dict[str, Any]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_a_server_span_per_request_named_after_the_route(
    exporter: InMemorySpanExporter,
) -> None:
    sent = await call(TracingMiddleware(app_responding(200), tracer_of(exporter)), http_scope())

    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /users/{user_id:int}"
    assert span.kind is SpanKind.SERVER
    assert dict(span.attributes or {}) == {
        "http.method": "GET",
        "http.route": "/users/{user_id:int}",
        "http.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET


async def test_an_unmatched_request_has_no_route(exporter: InMemorySpanExporter) -> None:
    await call(
        TracingMiddleware(app_responding(404, template=None), tracer_of(exporter)), http_scope()
    )
    [span] = exporter.get_finished_spans()
    assert span.name == "GET"
    assert "http.route" not in (span.attributes or {})
    assert (span.attributes or {})["http.status_code"] == 404
    assert span.status.status_code is StatusCode.UNSET  # a 4xx is not a server error


async def test_a_5xx_marks_the_span_as_an_error(exporter: InMemorySpanExporter) -> None:
    await call(TracingMiddleware(app_responding(503), tracer_of(exporter)), http_scope())
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR


async def test_an_exception_is_recorded_and_propagates(exporter: InMemorySpanExporter) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["path_template"] = "/boom"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await call(TracingMiddleware(app, tracer_of(exporter)), http_scope())

    [span] = exporter.get_finished_spans()
    assert span.name == "GET /boom"
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["http.status_code"] == 500
    assert [e.name for e in span.events] == ["exception"]


async def test_an_incoming_traceparent_is_continued(exporter: InMemorySpanExporter) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = [(b"traceparent", f"00-{trace_id}-{parent_id}-01".encode())]

    await call(TracingMiddleware(app_responding(), tracer_of(exporter)), http_scope(headers))

    [span] = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == parent_id


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_non_http_scopes_pass_through_untouched(
    exporter: InMemorySpanExporter, scope_type: str
) -> None:
    seen: list[tuple[Any, Any, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Message:
        return {}

    async def send(message: Message) -> None:
        return None

    scope: dict[str, Any] = {"type": scope_type, "path": "/ws", "headers": []}
    await TracingMiddleware(app, tracer_of(exporter))(scope, receive, send)

    assert seen == [(scope, receive, send)]
    assert seen[0][2] is send
    assert exporter.get_finished_spans() == ()


# --- configure_tracing ---------------------------------------------------------------------


def test_no_endpoint_means_no_tracing() -> None:
    assert configure_tracing("socius", "") is None


def test_a_missing_exporter_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, OTLP_MODULE, None)  # makes the import fail
    with pytest.raises(RuntimeError, match=r"pip install .socius\[otel\]."):
        configure_tracing("socius", "http://collector:4318")


def test_a_non_http_endpoint_is_rejected() -> None:
    with pytest.raises(ValueError, match="http"):
        configure_tracing("socius", "collector:4318")


class FakeOTLPExporter(SpanExporter):
    instances: list[FakeOTLPExporter] = []

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.exported: list[str] = []
        FakeOTLPExporter.instances.append(self)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported.extend(s.name for s in spans)
        return SpanExportResult.SUCCESS


@pytest.fixture
def fake_otlp(monkeypatch: pytest.MonkeyPatch) -> type[FakeOTLPExporter]:
    module = types.ModuleType(OTLP_MODULE)
    module.OTLPSpanExporter = FakeOTLPExporter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, OTLP_MODULE, module)
    FakeOTLPExporter.instances = []
    return FakeOTLPExporter


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://otel.example.com/custom/v1/traces", "https://otel.example.com/custom/v1/traces"),
    ],
)
def test_an_endpoint_builds_a_batching_otlp_provider(
    fake_otlp: type[FakeOTLPExporter], endpoint: str, url: str
) -> None:
    provider = configure_tracing("socius-test", endpoint)

    assert isinstance(provider, TracerProvider)
    try:
        assert provider.resource.attributes["service.name"] == "socius-test"
        [exporter] = fake_otlp.instances
        assert exporter.endpoint == url
        with provider.get_tracer("t").start_as_current_span("work"):
            pass
        assert provider.force_flush()
        assert exporter.exported == ["work"]
    finally:
        provider.shutdown()
