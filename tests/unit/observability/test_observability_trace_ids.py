"""Log lines carry the active span's ids when tracing is on, and nothing when it is off."""

from __future__ import annotations

import io
import json

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from socius.observability import configure_logging


@pytest.mark.parametrize("trace_ids", [True, False])
def test_lines_inside_a_span_carry_its_ids_only_when_tracing_is_on(trace_ids: bool) -> None:
    out = io.StringIO()
    configure_logging("info", json=True, stream=out, trace_ids=trace_ids)
    tracer = TracerProvider().get_tracer("test")
    log = structlog.get_logger("socius.test")
    try:
        with tracer.start_as_current_span("work") as span:
            log.info("inside")
        log.info("outside")
    finally:
        configure_logging("info", json=False)

    inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    context = span.get_span_context()
    if trace_ids:
        assert inside["trace_id"] == format(context.trace_id, "032x")
        assert inside["span_id"] == format(context.span_id, "016x")
    else:
        assert "trace_id" not in inside
    assert "trace_id" not in outside
