"""Structured logging (structlog, stdlib routed through it), request ids and access logs.

Secrets never reach the logs: the access log carries no headers, query strings or
bodies, and the `redact` processor masks well-known secret keys in every event.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any, TextIO

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

from socius.observability.spans import add_trace_ids

__all__ = [
    "REDACTED",
    "add_request_id",
    "configure_logging",
    "current_request_id",
    "next_request_id",
    "redact",
    "request_id_var",
    "valid_request_id",
]

# Loose on purpose: servers pass plain dicts, Litestar types scopes and messages as
# TypedDicts; both sides must fit (e.g. Litestar(middleware=[DefineMiddleware(...)])).
_ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

REDACTED = "[redacted]"
_SECRET_KEYS = frozenset(
    {
        "password",
        "new_password",
        "current_password",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
        "secret",
    }
)
# The usual event values; checked first because the Mapping ABC check is slow.
_SCALARS = (str, int, float, bool, type(None))
_HANDLER_NAME = "socius"
# Libraries that log full URLs, query strings (and so tokens) included, below WARNING.
_URL_LOGGERS = ("httpx", "httpcore")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS |= {"error": logging.ERROR, "critical": logging.CRITICAL}

request_id_var: ContextVar[str | None] = ContextVar("socius_request_id", default=None)

# fullmatch, not `$`: `$` would also accept a trailing newline.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def current_request_id() -> str | None:
    """The id of the HTTP request being handled in this context, if any."""
    return request_id_var.get()


def _redact_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and k.lower() in _SECRET_KEYS else _redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact_value(v) for v in value)
    return value


def redact(_logger: WrappedLogger, _method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask the values of secret-looking keys, also in nested dicts."""
    for key, value in event_dict.items():
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = REDACTED
        elif not isinstance(value, _SCALARS) and isinstance(value, Mapping | list | tuple):
            event_dict[key] = _redact_value(value)
    return event_dict


def add_request_id(_logger: WrappedLogger, _method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the id of the request being handled, when there is one (the
    front sets `request_id_var`; nothing is bound per request)."""
    if "request_id" not in event_dict:
        request_id = request_id_var.get()
        if request_id is not None:
            event_dict["request_id"] = request_id
    return event_dict


def configure_logging(
    level: str, json: bool, *, stream: TextIO | None = None, trace_ids: bool = False
) -> None:
    """Configure structlog and route stdlib logging through the same processors.

    `json` selects one JSON object per line (production) or a human console format.
    httpx/httpcore are held at WARNING or above: below that they log full URLs.
    Safe to call more than once: the previous socius handler is replaced, other root
    handlers (e.g. pytest's) are left alone. `stream` defaults to stderr. `trace_ids`
    (tracing is on): each line logged inside a span carries its `trace_id` and `span_id`.
    """
    try:
        level_no = _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r}; expected one of {sorted(_LEVELS)}"
        ) from None
    out = stream if stream is not None else sys.stderr

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    if trace_ids:
        shared.insert(1, add_trace_ids)
    final: list[Processor]
    if json:
        final = [
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ]
    else:
        final = [structlog.dev.ConsoleRenderer(colors=out.isatty())]
    renderer_chain = [structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final]

    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        # Not cached: reconfiguring (tests build many apps) must reach existing loggers.
        cache_logger_on_first_use=False,
    )

    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=renderer_chain)
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level_no)
    for name in _URL_LOGGERS:
        logging.getLogger(name).setLevel(max(level_no, logging.WARNING))


_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(1)


def next_request_id() -> str:
    """Unique across processes (random prefix) and cheap (a counter): ids need not be
    unguessable, only distinct."""
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


def valid_request_id(value: bytes) -> str | None:
    """A client's X-Request-ID value, if well-formed (else None: one is generated)."""
    return value.decode("ascii") if _REQUEST_ID.fullmatch(value) else None
