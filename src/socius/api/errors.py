"""Every error leaves as ``{"error": {"code", "message", "details"}}`` with a stable code.

A dependency that cannot be used is a 503 ``unavailable`` with ``Retry-After``, never a
500: the domain's ``Unavailable`` (storage raises it for a database outage), a cache or
bus failure that a service did not degrade around, and any ``OSError`` (a connection
refused, reset or timed out) that got this far. Chosen by the exception's type.
"""

from __future__ import annotations

from typing import Any

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    SerializationException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from socius.api.body import InvalidJson
from socius.domain.errors import (
    BusUnavailable,
    CacheUnavailable,
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    InvalidCursor,
    InvalidInput,
    InvalidToken,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)

__all__ = ["ERROR_STATUS", "error_parts", "error_response", "exception_handlers"]

log = structlog.get_logger("socius.api")

# First match wins: a subclass comes before its base.
ERROR_STATUS: dict[type[DomainError], int] = {
    InvalidCursor: 400,
    InvalidToken: 400,
    InvalidInput: 422,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    TooLarge: 413,
    UnsupportedMediaType: 415,
    RateLimited: 429,
    Unavailable: 503,
}

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)


def _domain(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    assert isinstance(exc, DomainError)
    status, body, headers = _domain_parts(exc, request.url.path)
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)


def _domain_parts(exc: DomainError, path: str) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    status = next((s for kind, s in ERROR_STATUS.items() if isinstance(exc, kind)), 400)
    headers = None
    if isinstance(exc, RateLimited | Unavailable):
        headers = {"Retry-After": str(max(1, exc.retry_after))}
    if isinstance(exc, Unavailable):
        _log_outage(path, exc)
    body = {"error": {"code": exc.code, "message": exc.message, "details": exc.details or {}}}
    return status, body, headers


def _as_unavailable(exc: Exception) -> Unavailable:
    what = {CacheUnavailable: "the cache", BusUnavailable: "the event bus"}
    name = next((n for kind, n in what.items() if isinstance(exc, kind)), "a dependency")
    unavailable = Unavailable(f"{name} is unavailable; retry shortly")
    unavailable.__cause__ = exc
    return unavailable


def _dependency(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """A cache, bus or connection failure no service degraded around: retry shortly."""
    return _domain(request, _as_unavailable(exc))


def error_parts(exc: Exception, path: str) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    """Status, body and headers of the answer to `exc`, for code that answers outside
    Litestar's exception handlers (api/front.py): the same mapping as theirs."""
    if isinstance(exc, CacheUnavailable | BusUnavailable | OSError):
        exc = _as_unavailable(exc)
    if isinstance(exc, DomainError):
        return _domain_parts(exc, path)
    if isinstance(exc, InvalidJson):  # a fast write's body (api/fast.py)
        return 400, {"error": {"code": "invalid_json", "message": exc.message, "details": {}}}, None
    log.error("unhandled error", path=path, exc_info=exc)
    body = {
        "error": {
            "code": "internal_error",
            "message": "an internal error occurred; it is a bug",
            "details": {},
        }
    }
    return HTTP_500_INTERNAL_SERVER_ERROR, body, None


def _log_outage(path: str, exc: Exception) -> None:
    # One line per request, no traceback: an outage answers every request this way.
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    log.warning("dependency unavailable", path=path, error=repr(cause)[:300])


def _validation(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """A path, query or header parameter (or a missing body) that does not validate.

    Bodies are judged in api/body.py; Litestar reports parameters as a list of
    ``{"message", "key", "source"}``, which becomes ``details``."""
    assert isinstance(exc, ValidationException)
    message = str(exc.detail or "") or "the request is not valid"
    details: dict[str, Any] = {}
    extra = exc.extra
    if isinstance(extra, list) and extra and isinstance(extra[0], dict):
        first = extra[0]
        message = str(first.get("message") or message)
        if first.get("key"):
            details["field"] = str(first["key"])
        source = first.get("source")
        if source:
            details["source"] = str(getattr(source, "value", source))
    return error_response(422, "validation_error", message, details)


def _invalid_json(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    assert isinstance(exc, InvalidJson)
    return error_response(400, "invalid_json", exc.message)


def _http(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status >= 500:
        return _internal(request, exc)
    code = _STATUS_CODES.get(status, f"http_{status}")
    message = str(exc.detail) if exc.detail else code.replace("_", " ")
    if status == 413:
        message = "the request body is too large"
    if status == 400 and isinstance(exc.__cause__, SerializationException):
        code, message = "invalid_json", "the request body is not valid JSON"
    return error_response(status, code, message, None, dict(exc.headers or {}) or None)


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    return error_response(
        HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "an internal error occurred; it is a bug"
    )


exception_handlers: ExceptionHandlersMap = {
    DomainError: _domain,
    CacheUnavailable: _dependency,
    BusUnavailable: _dependency,
    OSError: _dependency,
    ValidationException: _validation,
    InvalidJson: _invalid_json,
    NotAuthorizedException: _http,
    HTTPException: _http,
    Exception: _internal,
}
