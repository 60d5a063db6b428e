"""Spans around any bus, with the trace context carried in the message.

Only when tracing is on does the bootstrap wrap its bus in ``TracedBus`` (off, the bus
is called directly). A publish is a PRODUCER span ``bus publish`` (a child of the work
that publishes: an HTTP request, a WebSocket op) whose context goes in front of the
payload (``observability/spans.py``: the envelope); each delivery is a CONSUMER span
``bus deliver``, its parent the publish span read back from the envelope, so a message
sent on one node and delivered to a socket on another is one trace. The handler runs
inside the deliver span.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry.trace import (
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from socius.observability.spans import open_envelope, seal_envelope

__all__ = ["TracedBus"]

Handler = Callable[[bytes], Awaitable[None]]


class _Subscription(Protocol):
    async def unsubscribe(self) -> None: ...


class _Bus(Protocol):
    async def start(self) -> None: ...

    async def publish(self, subject: str, payload: bytes) -> None: ...

    async def publish_many(self, items: Sequence[tuple[str, bytes]]) -> None: ...

    async def subscribe(self, subject: str, handler: Handler) -> Any: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


_PROPAGATOR = TraceContextTextMapPropagator()


class TracedBus:
    """``inner`` (a NATS, Redis or in-process bus) with a span per publish and delivery.
    ``system``: the ``messaging.system`` attribute (``nats``, ``redis``, ``memory``)."""

    def __init__(self, inner: _Bus, tracer: Tracer, *, system: str) -> None:
        self.inner = inner
        self._tracer = tracer
        self._system = system

    async def start(self) -> None:
        await self.inner.start()

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # What a particular bus has beyond the port (NatsBus.flush), untraced.
        return getattr(self.inner, name)

    def _publish_span(self, subject: str, payload: bytes) -> tuple[Span, bytes]:
        """A started ``bus publish`` span and the payload sealed with its context."""
        span = self._tracer.start_span(
            "bus publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": self._system,
                "messaging.operation": "publish",
                "messaging.destination.name": subject,
                "messaging.message.body.size": len(payload),
            },
        )
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=set_span_in_context(span))
        return span, seal_envelope(carrier, payload)

    async def publish(self, subject: str, payload: bytes) -> None:
        await self.publish_many([(subject, payload)])

    async def publish_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """One span per message (each carries its own context), one call of the bus."""
        spans: list[Span] = []
        sealed: list[tuple[str, bytes]] = []
        for subject, payload in items:
            span, body = self._publish_span(subject, payload)
            spans.append(span)
            sealed.append((subject, body))
        try:
            if len(sealed) == 1:
                await self.inner.publish(*sealed[0])
            else:
                await self.inner.publish_many(sealed)
        except BaseException as exc:
            for span in spans:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            for span in spans:
                span.end()

    async def subscribe(self, subject: str, handler: Handler) -> Any:
        tracer, system = self._tracer, self._system

        async def deliver(payload: bytes) -> None:
            carrier, body = open_envelope(payload)
            parent = _PROPAGATOR.extract(carrier) if carrier else None
            span = tracer.start_span(
                "bus deliver",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": system,
                    "messaging.operation": "deliver",
                    "messaging.destination.name": subject,
                    "messaging.message.body.size": len(body),
                },
            )
            token = otel_context.attach(set_span_in_context(span))
            try:
                await handler(body)
            except BaseException as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
            finally:
                otel_context.detach(token)
                span.end()

        return await self.inner.subscribe(subject, deliver)
