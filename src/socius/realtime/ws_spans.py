"""The span of a WebSocket connection (tracing on only; ``Gateway.tracer``).

``ws session`` (SERVER) lasts as long as the socket; inside it ``ws auth`` covers the
handshake (token, subscription, replay) and ``ws <type>`` each client frame but pings
(``realtime/gateway.py``). What a frame sets off (a typing signal's publish, its SQL and
Redis work) is a child of the frame's span.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.trace import SpanKind

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from socius.realtime.gateway import Connection

__all__ = ["traced_session"]


async def traced_session(tracer: Tracer, connection: Connection) -> int | None:
    """``connection.run()`` inside a ``ws session`` span; its close code."""
    with tracer.start_as_current_span(
        "ws session", kind=SpanKind.SERVER, attributes={"network.protocol.name": "websocket"}
    ) as span:
        code = await connection.run()
        if connection.user_id:
            span.set_attribute("socius.user_id", str(connection.user_id))
        if code is None:
            span.set_attribute("websocket.closed_by", "client")
        else:
            span.set_attribute("websocket.closed_by", "server")
            span.set_attribute("websocket.close_code", code)
        return code
