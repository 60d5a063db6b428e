"""Errors a client can cause. Each has a stable ``code``; the API maps kinds to statuses."""

from __future__ import annotations

from typing import Any

__all__ = [
    "BusUnavailable",
    "CacheUnavailable",
    "Conflict",
    "DomainError",
    "Forbidden",
    "Gone",
    "InvalidCursor",
    "InvalidInput",
    "InvalidToken",
    "NotFound",
    "RateLimited",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
]


class DomainError(Exception):
    """Base of every error a client can cause. Never a bug."""

    default_code = "error"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details or {}


class InvalidInput(DomainError):
    default_code = "invalid_input"


class InvalidCursor(InvalidInput):
    """A list cursor the server did not issue for that list (400, not 422: it is opaque)."""

    default_code = "invalid_cursor"


class InvalidToken(InvalidInput):
    """A one-time token (from a mailed link) that is not, or no longer, valid (400: it is
    opaque, like a cursor)."""

    default_code = "invalid_token"


class Unauthenticated(DomainError):
    default_code = "unauthenticated"


class Forbidden(DomainError):
    default_code = "forbidden"


class NotFound(DomainError):
    default_code = "not_found"


class Conflict(DomainError):
    default_code = "conflict"


class Gone(DomainError):
    """What was asked for existed once and is kept no longer (an expired cursor)."""

    default_code = "gone"


class TooLarge(DomainError):
    default_code = "too_large"


class UnsupportedMediaType(DomainError):
    """A file of a type the server does not take (415)."""

    default_code = "unsupported_media_type"


class RateLimited(DomainError):
    default_code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code, details={"retry_after": retry_after})
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A dependency is down; the request may be retried after ``retry_after`` seconds."""

    default_code = "unavailable"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: int = 2,
    ) -> None:
        super().__init__(
            message, code=code, details={"retry_after": retry_after, **(details or {})}
        )
        self.retry_after = retry_after


class CacheUnavailable(Exception):
    """The cache did not answer. Not a client error: callers degrade to the database."""


class BusUnavailable(Exception):
    """The event bus did not answer. Not a client error: live delivery degrades, the
    durable log still has every event."""
