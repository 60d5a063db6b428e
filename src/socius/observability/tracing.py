"""OpenTelemetry tracing: an optional OTLP/HTTP exporter and a server-span ASGI middleware.

Tracing is off unless an OTLP endpoint is configured; then the bootstrap installs
`TracingMiddleware` and the span hooks of the database, the cache, the bus and the
WebSocket gateway (``observability/spans.py``). The SDK and the exporter (the `otel`
extra) are imported only when tracing is configured; the core needs only the API.
"""

from __future__ import annotations

import importlib
import importlib.util
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["TracingMiddleware", "configure_tracing", "tracing_installed"]

# Loose on purpose: servers pass plain dicts, Litestar types scopes and messages as
# TypedDicts; both sides must fit (e.g. Litestar(middleware=[DefineMiddleware(...)])).
_ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

_OTLP_HTTP_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
_OTLP_TRACES_PATH = "/v1/traces"


def _traces_url(endpoint: str) -> str:
    """`http://collector:4318` -> `http://collector:4318/v1/traces`; a full URL is kept."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"OTLP endpoint must be an http(s) URL, got {endpoint!r}")
    if parts.path in ("", "/"):
        parts = parts._replace(path=_OTLP_TRACES_PATH)
    return urlunsplit(parts)


def tracing_installed() -> bool:
    """Whether the `otel` extra (the SDK and the OTLP/HTTP exporter) is installed."""
    try:
        return importlib.util.find_spec(_OTLP_HTTP_MODULE) is not None
    except ImportError:  # a parent package is missing
        return False


def configure_tracing(service_name: str, otlp_endpoint: str) -> TracerProvider | None:
    """Build a TracerProvider exporting spans over OTLP/HTTP, or None when no endpoint is set.

    The provider is returned, not installed globally: get a tracer with
    ``provider.get_tracer("socius")`` and call ``provider.shutdown()`` on app shutdown
    to flush the last batch.
    """
    if not otlp_endpoint:
        return None
    url = _traces_url(otlp_endpoint)
    try:
        exporter_module = importlib.import_module(_OTLP_HTTP_MODULE)
    except ImportError as exc:
        raise RuntimeError(
            f"tracing is enabled (OTLP endpoint {otlp_endpoint!r}) but the OpenTelemetry SDK "
            "and OTLP/HTTP exporter are not installed: pip install 'socius[otel]' "
            "(or unset SOCIUS_OTLP_ENDPOINT to disable tracing)"
        ) from exc

    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # One instance id per provider (per process): which node a span comes from.
    resource = Resource.create(
        {SERVICE_NAME: service_name, "service.instance.id": secrets.token_hex(8)}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter_module.OTLPSpanExporter(endpoint=url)))
    return provider


class _HeaderGetter(Getter[Iterable[tuple[bytes, bytes]]]):
    """Reads W3C trace-context headers from ASGI's list of (name, value) byte pairs."""

    def get(self, carrier: Iterable[tuple[bytes, bytes]], key: str) -> list[str] | None:
        wanted = key.lower().encode("latin-1")
        found = [v.decode("latin-1") for k, v in carrier if k == wanted]
        return found or None

    def keys(self, carrier: Iterable[tuple[bytes, bytes]]) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


_GETTER = _HeaderGetter()


class TracingMiddleware:
    """Pure ASGI middleware: one SERVER span per HTTP request, named "{method} {route}".

    Continues a trace from an incoming W3C ``traceparent`` header. The route is the
    framework's ``scope["path_template"]``, known only after routing, so the span is
    renamed when the inner app returns; unmatched requests keep the name "{method}".
    """

    __slots__ = ("_propagator", "_tracer", "app")

    def __init__(self, app: _ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self._tracer = tracer
        self._propagator = TraceContextTextMapPropagator()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        method: str = scope.get("method", "")
        parent = self._propagator.extract(scope.get("headers", ()), getter=_GETTER)
        status = 500

        async def send_capturing_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self._tracer.start_as_current_span(
            method, context=parent, kind=SpanKind.SERVER, attributes={"http.method": method}
        ) as span:
            try:
                await self.app(scope, receive, send_capturing_status)
            finally:
                route = scope.get("path_template")
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
