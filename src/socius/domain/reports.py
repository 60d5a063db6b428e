"""Reports of abuse, and what the moderation hook decides about a message.

A report names what it is about by id only (a user, or a message and its conversation);
what a message said is read when an administrator reads the report, so a message deleted
meanwhile shows as deleted and nothing else (decision 0023).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from socius.domain.errors import InvalidInput
from socius.domain.text import CONTROL

__all__ = [
    "NOTE_MAX",
    "NOTE_PATTERN",
    "Decision",
    "Report",
    "ReportAction",
    "ReportReason",
    "ReportStatus",
    "ReportTarget",
    "ReportedMessage",
    "Verdict",
    "check_note",
]

NOTE_MAX = 1000
"""The longest note a reporter (or a resolving administrator) may write."""
NOTE_PATTERN = f"^[^{CONTROL}]*$"
_NOTE = re.compile(NOTE_PATTERN)


class ReportTarget(StrEnum):
    USER = "user"
    MESSAGE = "message"


class ReportReason(StrEnum):
    SPAM = "spam"
    HARASSMENT = "harassment"
    HATE = "hate"
    SEXUAL = "sexual"
    VIOLENCE = "violence"
    SELF_HARM = "self_harm"
    ILLEGAL = "illegal"
    IMPERSONATION = "impersonation"
    OTHER = "other"


class ReportStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class ReportAction(StrEnum):
    """What an administrator did about a report."""

    DISMISS = "dismiss"
    DELETE_MESSAGE = "delete_message"  # for everyone, as its sender deleting it
    DISABLE_USER = "disable_user"  # the reported user, or the reported message's sender


@dataclass(frozen=True, slots=True)
class ReportedMessage:
    """The reported message as it is when the report is read (joined, never copied)."""

    id: int
    conversation_id: int
    sender_id: int | None
    body: str | None  # None once deleted, expired or erased
    deleted: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Report:
    id: int
    created_at: datetime
    reporter_id: int | None  # None: the moderation hook (the system)
    target_type: ReportTarget
    target_id: int
    target_user_id: int | None  # the reported user, or the message's sender
    conversation_id: int | None  # the message's conversation
    reason: ReportReason
    note: str | None
    status: ReportStatus = ReportStatus.OPEN
    rule: str | None = None  # what flagged it (system reports)
    resolved_at: datetime | None = None
    resolved_by: int | None = None
    action: ReportAction | None = None
    resolution_note: str | None = None
    message: ReportedMessage | None = None  # joined when read by administrators


class Decision(StrEnum):
    """What the moderation hook decides about a message about to be stored."""

    ALLOW = "allow"
    FLAG = "flag"  # stored, and reported by the system for an administrator to look at
    REJECT = "reject"  # refused: 422 ``message_rejected``


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    rule: str | None = None  # which rule decided (``words``, ``links``, a classifier's own)
    reason: ReportReason = ReportReason.OTHER  # the reason of the report a flag makes

    @classmethod
    def allow(cls) -> Verdict:
        return _ALLOW


_ALLOW = Verdict(Decision.ALLOW)


def check_note(value: str | None, *, field: str = "note") -> str | None:
    """A note, trimmed (None when empty), or InvalidInput."""
    if value is None:
        return None
    if len(value) > NOTE_MAX or not _NOTE.fullmatch(value):
        raise InvalidInput(
            f"{field} must be at most {NOTE_MAX} characters, without control characters",
            code="invalid_note",
            details={"field": field},
        )
    return value.strip() or None
