"""A CLIENT span per Redis command, and one per pipeline (its commands in one round trip).

Used only when tracing is on: the cache then builds its client from ``traced_redis``
instead of ``redis.asyncio.Redis`` (off, the plain class runs, with no check at all).
Spans carry ``db.system`` = ``redis`` and ``db.operation``: the command's name, or
``PIPELINE`` / ``MULTI`` with the commands' names in ``db.statement``; never keys or
values. A Lua script runs as ``EVALSHA``. A command outside any span (a background loop)
makes none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import redis.asyncio as aioredis
from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span
from redis.asyncio.client import Pipeline

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = ["traced_redis"]


def _end(span: Span, error: BaseException | None) -> None:
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


def _in_a_trace() -> bool:
    """Commands outside any span (background loops) make no span of their own."""
    return bool(get_current_span().get_span_context().is_valid)


def _name(command: Any) -> str:
    if isinstance(command, bytes):
        return command.decode("ascii", "replace").upper()
    return str(command).upper()


class _TracedPipeline(Pipeline):
    _socius_tracer: Tracer

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if not self.command_stack or not _in_a_trace():
            return await super().execute(raise_on_error)
        operation = "MULTI" if self.is_transaction or self.explicit_transaction else "PIPELINE"
        names = " ".join(_name(args[0]) for args, _ in self.command_stack)
        span = self._socius_tracer.start_span(
            operation,
            kind=SpanKind.CLIENT,
            attributes={
                "db.system": "redis",
                "db.operation": operation,
                "db.statement": names[:1024],
                "db.redis.pipeline_length": len(self.command_stack),
            },
        )
        error: BaseException | None = None
        try:
            return await super().execute(raise_on_error)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _end(span, error)


class _TracedRedis(aioredis.Redis):
    _socius_tracer: Tracer

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if not _in_a_trace():
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        operation = _name(args[0])
        span = self._socius_tracer.start_span(
            operation,
            kind=SpanKind.CLIENT,
            attributes={"db.system": "redis", "db.operation": operation},
        )
        error: BaseException | None = None
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except BaseException as exc:
            error = exc
            raise
        finally:
            _end(span, error)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = _TracedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe._socius_tracer = self._socius_tracer
        return pipe


def traced_redis(url: str, tracer: Tracer, **options: Any) -> aioredis.Redis:
    """``redis.asyncio.Redis.from_url(url, **options)`` whose commands are spans."""
    client = cast("_TracedRedis", _TracedRedis.from_url(url, **options))
    client._socius_tracer = tracer
    return client
