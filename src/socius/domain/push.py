"""Notifications about messages, and the devices that get them as pushes.

Four kinds of notification are made from the stream of committed messages and reactions
(services/notifier.py): a new ``message`` in a conversation of yours, a ``mention``
(``@username`` in its body), a ``reply`` to a message of yours, a ``reaction`` to a
message of yours. One message makes at most one notification per recipient, of the most
specific kind the recipient keeps on (mention, then reply, then message).

A device is where pushes go: a Web Push subscription (RFC 8030 endpoint and the RFC 8291
keys of the browser) or a token for the operator's push gateway (an HTTP relay to APNs,
FCM or the like). A push carries ids only, never a message body or a name
(docs/push.md).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from socius.domain.errors import Forbidden, InvalidInput

__all__ = [
    "Device",
    "DeviceKind",
    "NotificationKind",
    "NotificationSettings",
    "check_gateway_token",
    "check_platform",
    "check_webpush",
    "mentioned",
    "push_backoff",
]


class NotificationKind(StrEnum):
    MESSAGE = "message"
    MENTION = "mention"
    REPLY = "reply"
    REACTION = "reaction"


class DeviceKind(StrEnum):
    WEBPUSH = "webpush"
    GATEWAY = "gateway"


@dataclass(frozen=True, slots=True)
class NotificationSettings:
    """Which kinds make notifications (and so pushes) for a user; all on by default."""

    message: bool = True
    mention: bool = True
    reply: bool = True
    reaction: bool = True

    def allows(self, kind: NotificationKind) -> bool:
        return bool(getattr(self, kind.value))


@dataclass(frozen=True, slots=True)
class Device:
    id: int
    user_id: int
    kind: DeviceKind
    endpoint: str  # Web Push: the subscription's URL; gateway: the device token
    p256dh: str | None  # Web Push: the browser's P-256 public key (base64url)
    auth: str | None  # Web Push: the 16-byte auth secret (base64url)
    platform: str | None  # gateway: a label the gateway routes by (apns, fcm, ...)
    created_at: datetime
    last_pushed_at: datetime | None = None


_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{3,32})(?![A-Za-z0-9_])")
MAX_MENTIONS = 50


def mentioned(body: str | None) -> set[str]:
    """The usernames (lower case) ``@``-mentioned in a message body (at most 50)."""
    if not body:
        return set()
    found: set[str] = set()
    for match in _MENTION.finditer(body):
        found.add(match.group(1).lower())
        if len(found) >= MAX_MENTIONS:
            break
    return found


def _b64url(value: str, field: str, size: int) -> str:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size or (size == 65 and raw[0] != 4):
        raise InvalidInput(
            f"{field} is not a valid key", code="invalid_push_keys", details={"field": field}
        )
    return value.rstrip("=")


def check_webpush(endpoint: str, p256dh: str, auth: str, *, allow_http: bool) -> tuple[str, str]:
    """The subscription's keys, checked: an https endpoint (http only when the operator
    allows it), an uncompressed P-256 point and a 16-byte auth secret."""
    bad = InvalidInput(
        "endpoint must be an https URL without credentials",
        code="invalid_endpoint",
        details={"field": "endpoint"},
    )
    try:
        parts = urlsplit(endpoint)
        port = parts.port  # raises on a bad one
    except ValueError:
        raise bad from None
    if parts.scheme == "http" and not allow_http:
        raise Forbidden("push endpoints must be https on this server", code="insecure_endpoint")
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or port == 0
        or parts.username
        or parts.password
        or not endpoint.isprintable()
        or " " in endpoint
    ):
        raise bad
    return _b64url(p256dh, "keys.p256dh", 65), _b64url(auth, "keys.auth", 16)


def check_gateway_token(token: str) -> str:
    if not 1 <= len(token) <= 4096 or not all(33 <= ord(c) <= 126 for c in token):
        raise InvalidInput(
            "token must be 1-4096 printable ASCII characters, no spaces",
            code="invalid_token",
            details={"field": "token"},
        )
    return token


_PLATFORM = re.compile(r"^[a-z0-9_.-]{1,16}$")


def check_platform(platform: str | None) -> str | None:
    if platform is not None and not _PLATFORM.match(platform):
        raise InvalidInput(
            "platform is 1-16 of [a-z0-9_.-]",
            code="invalid_platform",
            details={"field": "platform"},
        )
    return platform


def push_backoff(attempt: int, base: float) -> timedelta:
    """The wait before retry ``attempt`` (1, 2, ...): ``base`` doubling, at most 64x."""
    return timedelta(seconds=base * (2 ** min(max(attempt - 1, 0), 6)))
