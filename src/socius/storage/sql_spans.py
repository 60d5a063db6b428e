"""A CLIENT span per SQL statement, on both drivers (asyncpg, the SQLite driver).

Installed on an engine only when tracing is on (``trace_engine``): off, the engine has
no listener at all. The span is a child of the span current where the statement runs
(SQLAlchemy's async layer runs the driver in a greenlet that shares the caller's
context); a statement run outside any span (a housekeeping loop, the worker) makes
none, so that traces stay those of requests, sockets and deliveries. It carries
``db.system`` (``postgresql``, ``sqlite``), ``db.operation`` (the statement's first
word) and ``db.statement``: the SQL text with its placeholders, never the parameters'
values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span
from sqlalchemy import event
from sqlalchemy.engine import Connection, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = ["trace_engine"]

_SPAN = "socius.span"  # in Connection.info: the statement's span, from before to after
_MAX_STATEMENT = 4096  # characters of db.statement (a bulk insert's text grows with rows)


def _operation(statement: str) -> str:
    word = statement.lstrip().split(None, 1)
    return word[0].upper() if word else "SQL"


def trace_engine(engine: AsyncEngine, tracer: Tracer) -> None:
    """Make every statement ``engine`` runs a span of ``tracer``."""
    system = engine.dialect.name  # "postgresql" or "sqlite": the OpenTelemetry names

    def before(
        conn: Connection,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        _context: Any,
        _executemany: bool,
    ) -> None:
        if not get_current_span().get_span_context().is_valid:
            return  # background work (housekeeping, the worker): no trace to join
        operation = _operation(statement)
        conn.info[_SPAN] = tracer.start_span(
            operation,
            kind=SpanKind.CLIENT,
            attributes={
                "db.system": system,
                "db.operation": operation,
                "db.statement": statement[:_MAX_STATEMENT],
            },
        )

    def after(
        conn: Connection,
        _cursor: Any,
        _statement: str,
        _parameters: Any,
        _context: Any,
        _executemany: bool,
    ) -> None:
        span: Span | None = conn.info.pop(_SPAN, None)
        if span is not None:
            span.end()

    def failed(context: ExceptionContext) -> None:
        conn = context.connection
        span: Span | None = conn.info.pop(_SPAN, None) if conn is not None else None
        if span is not None:
            error = context.original_exception
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.end()

    sync = engine.sync_engine
    event.listen(sync, "before_cursor_execute", before)
    event.listen(sync, "after_cursor_execute", after)
    event.listen(sync, "handle_error", failed)
