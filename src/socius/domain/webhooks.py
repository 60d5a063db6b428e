"""Webhooks: endpoints that receive the stream's events over HTTP, signed by the Standard
Webhooks scheme (https://www.standardwebhooks.com).

Each delivery carries ``webhook-id`` (the event id: the same on every retry, so a
receiver drops repeats), ``webhook-timestamp`` (seconds) and ``webhook-signature``:
``v1,`` + base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>")), where the key is the
base64 part of the endpoint's ``whsec_…`` secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from socius.domain.errors import InvalidInput

__all__ = [
    "DESCRIPTION_MAX",
    "DESCRIPTION_PATTERN",
    "SECRET_PATTERN",
    "URL_MAX",
    "URL_PATTERN",
    "Delivery",
    "Webhook",
    "backoff",
    "check_description",
    "check_secret",
    "check_url",
    "new_secret",
    "sign",
]

URL_MAX = 2000
DESCRIPTION_MAX = 200
_B64 = "[A-Za-z0-9+/]"
SECRET_PATTERN = f"^whsec_(?:{_B64}{{4}}){{8,22}}(?:{_B64}{{2}}==|{_B64}{{3}}=)?$"
"""``whsec_`` and 24 to 66 bytes in base64."""
_NOT_IN_URL = r"\s\x00-\x1f\x7f-\x9f"
_PORT = r"(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
URL_PATTERN = rf"^https?://[^{_NOT_IN_URL}/?#@:\[\]\\]+(?::{_PORT})?(?:[/?][^{_NOT_IN_URL}#]*)?$"
"""An absolute http(s) URL: a host (no credentials), an optional port, no fragment."""
_URL = re.compile(URL_PATTERN)
DESCRIPTION_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
_DESCRIPTION = re.compile(DESCRIPTION_PATTERN)
_SECRET = re.compile(SECRET_PATTERN)
_FIRST_RETRY = 5.0  # seconds; doubled on each failure
_LONGEST_WAIT = 3600.0


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    url: str
    types: list[str]  # empty: every type
    secret: str
    enabled: bool
    description: str | None
    position: int  # the last stream position delivered (or skipped: another type)
    attempts: int  # failed attempts at the next event
    failing_since: datetime | None
    next_attempt_at: datetime | None
    disabled_reason: str | None  # "failing": disabled after failing too long
    created_at: datetime
    updated_at: datetime
    bodies: bool = False  # message events carry the body while the message has content


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to deliver one event (or a ping) to one endpoint."""

    id: int
    webhook_id: int
    event_id: int
    event_type: str
    attempt: int
    status: str  # "delivered" or "failed"
    status_code: int | None
    latency_ms: int | None
    error: str | None
    created_at: datetime


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def check_secret(value: str) -> str:
    if not _SECRET.fullmatch(value):
        raise InvalidInput(
            "secret must be whsec_ followed by 24 to 64 bytes in base64",
            code="invalid_secret",
            details={"field": "secret"},
        )
    return value


def check_url(value: str) -> str:
    """An absolute http(s) URL with a host, no credentials, no fragment."""
    text = value.strip()
    if len(text) > URL_MAX or not _URL.fullmatch(text):
        raise InvalidInput(
            "url must be an absolute http:// or https:// URL without credentials",
            code="invalid_url",
            details={"field": "url"},
        )
    return text


def check_description(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > DESCRIPTION_MAX or not _DESCRIPTION.fullmatch(value):
        raise InvalidInput(
            f"description must be at most {DESCRIPTION_MAX} characters, one line",
            code="invalid_description",
            details={"field": "description"},
        )
    return value.strip() or None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def backoff(attempts: int) -> timedelta:
    """The wait before attempt ``attempts + 1``: 5 s, 10 s, 20 s, … at most an hour."""
    return timedelta(seconds=min(_FIRST_RETRY * 2 ** max(attempts - 1, 0), _LONGEST_WAIT))
