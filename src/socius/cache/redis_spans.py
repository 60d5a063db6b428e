"""A CLIENT span per Redis command, and one per pipeline (its commands in one round trip).

Used only when tracing is on: the cache then builds its client from ``TracedRespClient``
instead of ``RespClient`` (cache/resp.py; off, the plain class runs, with no check at
all). Spans carry ``db.system`` = ``redis`` and ``db.operation``: the command's name, or
``PIPELINE`` / ``MULTI`` with the commands' names in ``db.statement``; never keys or
values. A Lua script runs as ``EVALSHA``. A command outside any span (a background loop)
makes none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span

from socius.cache.resp import Arg, RespClient, Script

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = ["TracedRespClient"]


def _end(span: Span, error: BaseException | None) -> None:
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


def _in_a_trace() -> bool:
    """Commands outside any span (background loops) make no span of their own."""
    return bool(get_current_span().get_span_context().is_valid)


def _name(command: Arg) -> str:
    if isinstance(command, bytes):
        return command.decode("ascii", "replace").upper()
    return str(command).upper()


class TracedRespClient(RespClient):
    def __init__(self, url: str, *, timeout: float, tracer: Tracer) -> None:
        super().__init__(url, timeout=timeout)
        self._tracer = tracer

    def _span(self, operation: str, commands: Sequence[tuple[Arg, ...]] | None) -> Span:
        attributes: dict[str, Any] = {"db.system": "redis", "db.operation": operation}
        if commands is not None:
            names = " ".join(_name(c[0]) for c in commands)
            attributes["db.statement"] = names[:1024]
            attributes["db.redis.pipeline_length"] = len(commands)
        return self._tracer.start_span(operation, kind=SpanKind.CLIENT, attributes=attributes)

    async def execute(self, *args: Arg) -> Any:
        if not _in_a_trace():
            return await super().execute(*args)
        span = self._span(_name(args[0]), None)
        error: BaseException | None = None
        try:
            return await super().execute(*args)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _end(span, error)

    async def pipeline(self, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
        if not _in_a_trace():
            return await super().pipeline(commands)
        span = self._span("PIPELINE", commands)
        error: BaseException | None = None
        try:
            return await super().pipeline(commands)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _end(span, error)

    async def transaction(self, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
        if not _in_a_trace():
            return await super().transaction(commands)
        span = self._span("MULTI", commands)
        error: BaseException | None = None
        try:
            return await super().transaction(commands)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _end(span, error)

    async def evalsha(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        if not _in_a_trace():
            return await super().evalsha(script, keys, args)
        span = self._span("EVALSHA", None)
        error: BaseException | None = None
        try:
            return await super().evalsha(script, keys, args)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _end(span, error)
