"""What the span hooks share: the trace context on the bus, and trace ids in log lines.

Tracing is off unless an OTLP endpoint is configured (``tracing.configure_tracing``).
Off, nothing here runs: the hooks (``storage/sql_spans.py``, ``cache/redis_spans.py``,
``bus/traced.py``, the gateway) are not installed or stop at one ``tracer is None``
check, and the log processor is not in the chain.

On the bus a traced publish puts the W3C trace context in front of the payload::

    \\x1e <traceparent> [\\x1f <tracestate>] \\x1e <payload>

(ASCII record and unit separators: a payload that is JSON never starts with them). A
node that does not trace still reads such a payload: the hub strips the envelope when
its payload does not decode (``strip_trace_context``), so a cluster may switch tracing
on one node at a time.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import get_current_span

__all__ = [
    "TRACE_MARK",
    "add_trace_ids",
    "open_envelope",
    "seal_envelope",
    "strip_trace_context",
]

TRACE_MARK = b"\x1e"
_STATE = b"\x1f"
_MAX_CONTEXT = 600  # traceparent (55) and a tracestate (at most 512 by the W3C spec)


def seal_envelope(carrier: dict[str, str], payload: bytes) -> bytes:
    """``payload`` with the trace context of ``carrier`` (as a propagator fills it) in
    front; ``payload`` alone when the carrier holds no traceparent."""
    parent = carrier.get("traceparent")
    if not parent:
        return payload
    head = parent.encode("ascii")
    state = carrier.get("tracestate")
    if state:
        head += _STATE + state.encode("ascii")
    return TRACE_MARK + head + TRACE_MARK + payload


def open_envelope(payload: bytes) -> tuple[dict[str, str] | None, bytes]:
    """The trace context carrier and the payload inside; (None, payload) without one."""
    if payload[:1] != TRACE_MARK:
        return None, payload
    end = payload.find(TRACE_MARK, 1, _MAX_CONTEXT + 2)
    if end < 0:
        return None, payload
    parent, _, state = payload[1:end].partition(_STATE)
    try:
        carrier = {"traceparent": parent.decode("ascii")}
        if state:
            carrier["tracestate"] = state.decode("ascii")
    except UnicodeDecodeError:
        carrier = {}
    return carrier, payload[end + 1 :]


def strip_trace_context(payload: bytes) -> bytes:
    """``payload`` without a trace context envelope (for nodes that do not trace)."""
    return open_envelope(payload)[1]


def add_trace_ids(_logger: Any, _method_name: str, event_dict: Any) -> Any:
    """structlog processor (in the chain only when tracing is on): the ids of the span
    active where the line is logged, as ``trace_id`` (32 hex digits) and ``span_id`` (16),
    the forms OTLP back ends search by."""
    context = get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict
