"""The audit log: what administrators did, to what, and when.

An entry names people by id only. Names are joined in when the log is read, so an erased
account leaves its id and nothing else; what erasure changes in the log is decided in
docs/decisions/0015-admin-audit-log.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from socius.domain.errors import InvalidInput
from socius.domain.text import CONTROL

__all__ = [
    "ACTION_PATTERN",
    "ERASED_DETAILS",
    "REASON_MAX",
    "REASON_PATTERN",
    "AuditAction",
    "AuditEntry",
    "TargetType",
    "Via",
    "check_reason",
]

ACTION_PATTERN = r"^[a-z][a-z_]{0,31}(?:[.][a-z][a-z_]{0,31}){0,3}$"
"""What an action name looks like: dotted lower-case words (``user.disable``)."""

REASON_MAX = 500
"""The longest reason an administrator may give for an action."""
REASON_PATTERN = f"^[^{CONTROL}]*$"
"""No control characters but tab and line breaks."""
_REASON = re.compile(REASON_PATTERN)

ERASED_DETAILS = frozenset({"reason"})
"""Keys of ``details`` that may hold free text about the target: erasing the target's
account drops them from the entries about it."""


class Via(StrEnum):
    """How the action was taken: through the API by an admin, or on the command line by
    whoever runs the server (who has no account to name)."""

    API = "api"
    CLI = "cli"


class TargetType(StrEnum):
    """What an action was taken on (``target_id`` is its id). Later features add theirs."""

    USER = "user"
    WEBHOOK = "webhook"
    REPORT = "report"


class AuditAction(StrEnum):
    """Every action written to the log. Later features add theirs here."""

    USER_CREATE = "user.create"
    USER_DISABLE = "user.disable"
    USER_ENABLE = "user.enable"
    USER_GRANT_ADMIN = "user.grant_admin"
    USER_REVOKE_ADMIN = "user.revoke_admin"
    KEYS_ROTATE = "keys.rotate"
    WEBHOOK_CREATE = "webhook.create"
    WEBHOOK_UPDATE = "webhook.update"
    WEBHOOK_DELETE = "webhook.delete"
    WEBHOOK_PING = "webhook.ping"
    REPORT_RESOLVE = "report.resolve"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    created_at: datetime
    via: Via
    actor_id: int | None  # None: the command line
    action: str
    target_type: str | None
    target_id: int | None
    details: dict[str, Any]
    request_id: str | None
    ip: str | None
    # Joined in when read: the accounts' current usernames (None once erased).
    actor_username: str | None = None
    target_username: str | None = None


def check_reason(value: str | None) -> str | None:
    """The reason given for an action, trimmed (None when there is none), or InvalidInput."""
    if value is None:
        return None
    if len(value) > REASON_MAX or not _REASON.fullmatch(value):
        raise InvalidInput(
            f"reason must be at most {REASON_MAX} characters, without control characters",
            code="invalid_reason",
            details={"field": "reason"},
        )
    return value.strip() or None
