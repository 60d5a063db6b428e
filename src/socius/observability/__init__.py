"""Observability: Prometheus metrics, structured logs with request ids, OpenTelemetry traces.

Cross-cutting: imports no other socius package. Nothing is configured at import time;
the bootstrap calls `configure_logging` / `configure_tracing`, builds `Metrics` and
wraps the ASGI app in the middlewares.
"""

from socius.observability.logging import (
    REDACTED,
    configure_logging,
    current_request_id,
    redact,
    request_id_var,
)
from socius.observability.metrics import HTTP_DURATION_BUCKETS, Metrics
from socius.observability.tracing import TracingMiddleware, configure_tracing

__all__ = [
    "HTTP_DURATION_BUCKETS",
    "REDACTED",
    "Metrics",
    "TracingMiddleware",
    "configure_logging",
    "configure_tracing",
    "current_request_id",
    "redact",
    "request_id_var",
]
