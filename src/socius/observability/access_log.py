"""The access log: one preformatted JSON line per request, buffered, written in batches.

A line costs one `msgspec` encode and an append to a list; no structlog processor chain
and no stdlib `logging` record per request. The buffer is written to the log stream
(the one `configure_logging` set up) when it holds `flush_bytes`, and at the latest
`flush_seconds` after its first line. With a sample rate below 1, only that share of
ordinary requests is logged; errors (status ≥ 400) and slow requests always are.

The line holds what the structlog access line held (timestamp, level, logger, event,
method, route template or path — never the query string —, status, duration_ms,
client_ip, request_id, and with tracing on `trace_id` and `span_id` of the server span);
never headers or bodies. Setting the ``socius.access`` logger
above INFO silences ordinary lines (errors ≥ 500 are logged at ERROR).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import sys
import time
from typing import Any, TextIO

import msgspec

from socius.observability.spans import add_trace_ids

__all__ = ["AccessLog"]

_LOGGER = "socius.access"
_encode = msgspec.json.Encoder().encode
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]*")
_QUOTED: dict[str, str] = {}
_QUOTED_MAX = 4096
_FAST_SECONDS = 1e12
"""Durations below this (in seconds) are written by ``repr`` without an exponent."""


def _quote(text: str) -> str:
    """`text` as a JSON string; remembered for the few values lines repeat."""
    quoted = _QUOTED.get(text)
    if quoted is None:
        quoted = _encode(text).decode()
        if len(_QUOTED) < _QUOTED_MAX:
            _QUOTED[text] = quoted
    return quoted


def _log_stream() -> TextIO:
    """Where configure_logging's handler writes (stderr when it was not called)."""
    for handler in logging.getLogger().handlers:
        if handler.get_name() == "socius" and isinstance(handler, logging.StreamHandler):
            stream: TextIO = handler.stream
            return stream
    return sys.stderr


class AccessLog:
    __slots__ = (
        "_buffer",
        "_clock_second",
        "_clock_text",
        "_json",
        "_logger",
        "_pending",
        "_size",
        "_trace_ids",
        "flush_bytes",
        "flush_seconds",
        "sample_rate",
        "slow_seconds",
    )

    def __init__(
        self,
        *,
        json: bool = True,
        sample_rate: float = 1.0,
        slow_seconds: float = 0.5,
        flush_bytes: int = 32 * 1024,
        flush_seconds: float = 0.5,
        trace_ids: bool = False,
    ) -> None:
        """``trace_ids`` (tracing is on): each line carries the active span's ids."""
        self._json = json
        self._trace_ids = trace_ids
        self.sample_rate = sample_rate
        self.slow_seconds = slow_seconds
        self.flush_bytes = flush_bytes
        self.flush_seconds = flush_seconds
        self._logger = logging.getLogger(_LOGGER)
        self._buffer: list[str] = []
        self._size = 0
        self._pending: asyncio.TimerHandle | None = None
        self._clock_second = -1
        self._clock_text = ""

    def _timestamp(self, now: float) -> str:
        second = int(now)
        if second != self._clock_second:
            self._clock_second = second
            self._clock_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._clock_text}.{int((now - second) * 1e6):06d}Z"

    def request(
        self,
        method: str,
        path: str,
        status: int,
        seconds: float,
        client_ip: str | None,
        request_id: str,
    ) -> None:
        """Log one finished request (or not: sampling, logger level)."""
        if (
            status < 400
            and seconds < self.slow_seconds
            and self.sample_rate < 1.0
            and random.random() >= self.sample_rate
        ):
            return
        level = logging.ERROR if status >= 500 else logging.INFO
        if not self._logger.isEnabledFor(level):
            return
        if (
            self._json
            and not self._trace_ids
            and seconds < _FAST_SECONDS
            and _SAFE_ID.fullmatch(request_id)
        ):
            # The line `_line` encodes, put together directly (~1.5 µs instead of ~4): the
            # strings quoted once per distinct value (methods, route templates, client
            # addresses), the request id as it is (only [A-Za-z0-9._-], as the front's are),
            # the duration as repr writes it (as msgspec does below 1e16 ms; NaN and
            # infinity, which repr would write as no JSON, fail the comparison above).
            # tests/unit/observability/test_access_log_lines.py pins the two to one line.
            line = (
                f'{{"method":{_quote(method)},"path":{_quote(path)},"status":{status},'
                f'"duration_ms":{round(seconds * 1000.0, 3)!r},'
                f'"client_ip":{"null" if client_ip is None else _quote(client_ip)},'
                f'"request_id":"{request_id}","event":"request","logger":"{_LOGGER}",'
                f'"level":"{"error" if level == logging.ERROR else "info"}",'
                f'"timestamp":"{self._timestamp(time.time())}"}}\n'
            )
        else:
            line = self._line(method, path, status, seconds, client_ip, request_id, level)
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= self.flush_bytes or status >= 500:
            self.flush()
        elif self._pending is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._pending = loop.call_later(self.flush_seconds, self.flush)

    def _line(
        self,
        method: str,
        path: str,
        status: int,
        seconds: float,
        client_ip: str | None,
        request_id: str,
        level: int,
    ) -> str:
        fields: dict[str, Any] = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000.0, 3),
            "client_ip": client_ip,
            "request_id": request_id,
            "event": "request",
            "logger": _LOGGER,
            "level": "error" if level == logging.ERROR else "info",
            "timestamp": self._timestamp(time.time()),
        }
        if self._trace_ids:
            add_trace_ids(None, "", fields)
        if self._json:
            return _encode(fields).decode() + "\n"
        return (
            f"{fields['timestamp']} [{fields['level']:<8}] request "
            f"method={method} path={path} status={status} "
            f"duration_ms={fields['duration_ms']} client_ip={client_ip} "
            f"request_id={request_id} [{_LOGGER}]\n"
        )

    def flush(self) -> None:
        """Write the buffered lines now."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if not self._buffer:
            return
        text = "".join(self._buffer)
        self._buffer.clear()
        self._size = 0
        stream = _log_stream()
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # a closed stream (shutdown, tests): drop the lines
            pass
