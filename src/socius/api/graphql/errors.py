"""GraphQL errors carry REST's stable codes: ``extensions: {code, details}``.

Chosen by the exception's type, as api/errors.py does for REST: a ``DomainError`` gives
its own ``code`` and ``details``; a dependency outage (``Unavailable``, or a cache, bus or
connection failure no service degraded around) is ``unavailable``, and over HTTP the
answer is then a 503 with ``Retry-After``; the query limits give ``query_too_deep`` and
``query_too_complex`` (limits.py); a document that does not parse or validate is
``invalid_query``. Anything else is a bug: ``internal_error``, logged with its traceback,
and the client sees neither the traceback nor the exception's text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import structlog
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types import StreamExecutionResult

from socius.domain.errors import (
    BusUnavailable,
    CacheUnavailable,
    DomainError,
    Unavailable,
)

__all__ = ["ErrorCodes", "is_bug", "is_outage", "log_errors"]

log = structlog.get_logger("socius.api")

_OUTAGES = (Unavailable, CacheUnavailable, BusUnavailable, OSError)
_DEFAULT_WAIT = 2  # seconds, as Unavailable's


def is_outage(error: GraphQLError) -> bool:
    return isinstance(error.original_error, _OUTAGES)


def is_bug(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, (DomainError, *_OUTAGES))


def log_errors(errors: list[GraphQLError], operation: str | None) -> None:
    """What the server log says: one line per outage, a traceback per bug, nothing for
    errors the client caused."""
    for error in errors:
        if is_outage(error):
            cause: BaseException | None = error.original_error
            if cause is not None and cause.__cause__ is not None:
                cause = cause.__cause__
            log.warning("dependency unavailable", path="/graphql", error=repr(cause)[:300])
        elif is_bug(error):
            log.error(
                "unhandled error",
                path="/graphql",
                operation=operation,
                field=".".join(str(p) for p in error.path or ()),
                exc_info=error.original_error,
            )


def _extensions(error: GraphQLError) -> tuple[str, dict[str, Any], str]:
    """The code, details and message a client gets for ``error``."""
    original = error.original_error
    if isinstance(original, DomainError):
        return original.code, dict(original.details), original.message
    if isinstance(original, _OUTAGES):
        unavailable = Unavailable("a dependency is unavailable; retry shortly")
        return unavailable.code, dict(unavailable.details), unavailable.message
    if original is not None:
        return "internal_error", {}, "an internal error occurred; it is a bug"
    known = error.extensions or {}
    if isinstance(known.get("code"), str):
        return str(known["code"]), dict(known.get("details") or {}), error.message
    return "invalid_query", {}, error.message


def coded(error: GraphQLError) -> GraphQLError:
    code, details, message = _extensions(error)
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": code, "details": details},
    )


def _retry_after(errors: list[GraphQLError]) -> int | None:
    """Seconds to wait when the answer failed on an outage (None: it did not)."""
    waits = [
        getattr(e.original_error, "retry_after", _DEFAULT_WAIT) for e in errors if is_outage(e)
    ]
    return max(waits) if waits else None


@runtime_checkable
class _WithErrors(Protocol):
    errors: list[GraphQLError] | None


class ErrorCodes(SchemaExtension):
    """Replaces each error of a result with its coded form (and sets the HTTP status of
    an outage), for single results and for each result of a stream."""

    def __init__(self) -> None:
        self._streamed = False

    def on_operation(self) -> Iterator[None]:
        self._streamed = False
        yield
        if self._streamed:
            return
        result = self.execution_context.result
        if not isinstance(result, _WithErrors) or not result.errors:
            return
        errors = result.errors
        wait = _retry_after(errors)
        response = getattr(self.execution_context.context, "response", None)
        if wait is not None and response is not None:
            response.status_code = 503
            response.headers["Retry-After"] = str(max(1, wait))
        result.errors = [coded(e) for e in errors]

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        self._streamed = True
        if isinstance(result, _WithErrors) and result.errors:
            result.errors = [coded(e) for e in result.errors]
        yield None
