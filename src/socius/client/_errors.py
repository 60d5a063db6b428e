"""The exceptions the SDK raises: ApiError for an error answer from the server, and the
two that stop a sign-in half way (a second factor to give, an email to verify)."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import msgspec

__all__ = ["ApiError", "EmailVerificationRequired", "GraphQLError", "MfaRequired"]


class ApiError(Exception):
    """The server answered with a status >= 400.

    `code` is the stable snake_case code from the error body, or `http_<status>` when the
    body is not `{"error": {"code", "message", "details"}}`. `retry_after` is the
    `Retry-After` header in seconds (429, 503), or None.
    """

    status: int
    code: str
    message: str
    details: dict[str, Any]
    retry_after: float | None

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details if details is not None else {}
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (self.status, self.code, self.message, self.details, self.retry_after),
        )

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        status = response.status_code
        code = f"http_{status}"
        message = response.reason_phrase or code
        details: dict[str, Any] = {}
        try:
            body = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            code = error["code"]
            if isinstance(error.get("message"), str):
                message = error["message"]
            if isinstance(error.get("details"), dict):
                details = error["details"]
        return cls(
            status,
            code,
            message,
            details,
            parse_retry_after(response.headers.get("retry-after")),
        )


class MfaRequired(Exception):
    """The password was right and the account has a second factor: call `login_mfa` with
    `mfa_token` and a code (or a recovery code) within `expires_in` seconds."""

    mfa_token: str
    expires_in: int

    def __init__(self, mfa_token: str, expires_in: int) -> None:
        super().__init__("a second factor is required: call login_mfa")
        self.mfa_token = mfa_token
        self.expires_in = expires_in

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.mfa_token, self.expires_in))


class EmailVerificationRequired(Exception):
    """The account was created, but the server signs it in only once its email is
    verified (a link was mailed to it). `user` is the new account (a PrivateUser)."""

    user: Any

    def __init__(self, user: Any) -> None:
        super().__init__("the account was created; verify its email address, then log in")
        self.user = user

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.user,))


class GraphQLError(ApiError):
    """A GraphQL answer with errors (``client.graphql``).

    `code`, `message` and `details` are those of the first error (its
    ``extensions.code``: the same stable codes as REST); `errors` holds them all, as the
    server sent them, and `data` whatever the server could answer (None when nothing).
    """

    errors: list[dict[str, Any]]
    data: dict[str, Any] | None

    def __init__(
        self,
        status: int,
        errors: list[dict[str, Any]],
        data: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        first = errors[0] if errors else {}
        extensions = first.get("extensions") if isinstance(first.get("extensions"), dict) else {}
        assert isinstance(extensions, dict)
        code = extensions.get("code")
        details = extensions.get("details")
        super().__init__(
            status,
            code if isinstance(code, str) else "graphql_error",
            str(first.get("message", "the GraphQL operation failed")),
            details if isinstance(details, dict) else {},
            retry_after,
        )
        self.errors = errors
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.errors, self.data, self.retry_after))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())
