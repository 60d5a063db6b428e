"""One-time tokens: secrets handed to one user for one purpose, once, for a short while.

An email verification link, a password reset link and the ``mfa_token`` of a login
waiting for its second factor are all one: a random token whose SHA-256 alone is stored,
bound to a user (and, for mail, to the address it was sent to), spent by the first use.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

__all__ = ["OneTimeToken", "TokenPurpose", "hash_token", "issue_token", "new_token"]

_TOKEN_BYTES = 32


class TokenPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 (a purpose, not a secret)
    MFA_LOGIN = "mfa_login"


@dataclass(frozen=True, slots=True)
class OneTimeToken:
    token_hash: bytes
    purpose: TokenPurpose
    user_id: int
    email: str | None  # the address a mailed token went to; it is void once that changes
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    attempts: int = 0  # failed uses so far (a login's second factor)


def new_token() -> str:
    """A fresh token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(_TOKEN_BYTES)


def hash_token(token: str) -> bytes:
    """What is stored of a token (it has 256 random bits: one SHA-256 is enough)."""
    return hashlib.sha256(b"ott:" + token.encode()).digest()


def issue_token(
    purpose: TokenPurpose,
    *,
    user_id: int,
    now: datetime,
    ttl_seconds: int,
    email: str | None = None,
) -> tuple[str, OneTimeToken]:
    """A fresh token for the user (to hand out) and its record (to store)."""
    token = new_token()
    record = OneTimeToken(
        token_hash=hash_token(token),
        purpose=purpose,
        user_id=user_id,
        email=email,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    return token, record
