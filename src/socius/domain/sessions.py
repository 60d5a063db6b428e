"""Sessions: one login on one device, kept alive by rotating refresh tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

__all__ = ["AccessClaims", "RefreshSpend", "RefreshToken", "Session", "SpendOutcome"]


@dataclass(frozen=True, slots=True)
class Session:
    id: int
    user_id: int
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    user_agent: str
    ip: str

    def is_live(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says: who, which session, until when."""

    user_id: int
    session_id: int
    expires_at: int  # unix seconds
    issued_at: int


class SpendOutcome(Enum):
    OK = "ok"
    UNKNOWN = "unknown"
    REUSED = "reused"


@dataclass(frozen=True, slots=True)
class RefreshSpend:
    """What happened when a refresh token was presented."""

    outcome: SpendOutcome
    session_id: int | None = None
    user_id: int | None = None
    # REUSED: when it was spent, and the salt its successor was derived with (None for a
    # token spent before successors were derived).
    spent_at: datetime | None = None
    successor_salt: bytes | None = None


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """A stored refresh token (its hash is the key)."""

    session_id: int
    user_id: int
    created_at: datetime
    spent_at: datetime | None
