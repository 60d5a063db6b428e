"""The second factor: TOTP (RFC 6238) and single-use recovery codes, as pure rules.

A code is accepted in the time step it was made for or one step either side (clock skew),
and only for a step later than the last one the account used: a code, once used, never
works again, and neither does any older one (no replay within its window).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp

__all__ = [
    "RECOVERY_CODE_COUNT",
    "RECOVERY_CODE_PATTERN",
    "TOTP_CODE_PATTERN",
    "TOTP_STEP_SECONDS",
    "RecoveryCode",
    "TotpFactor",
    "hash_recovery_code",
    "matching_step",
    "new_recovery_codes",
    "new_totp_secret",
    "normalize_recovery_code",
    "provisioning_uri",
    "recovery_code_matches",
]

TOTP_STEP_SECONDS = 30
TOTP_DIGITS = 6
TOTP_CODE_PATTERN = r"^[0-9]{6}$"
_SKEW_STEPS = 1
RECOVERY_CODE_COUNT = 10
# 16 characters of Crockford's base32 (80 bits), shown as four groups: xxxx-xxxx-xxxx-xxxx.
_RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
RECOVERY_CODE_PATTERN = r"^[0-9A-Za-z]{4}-?[0-9A-Za-z]{4}-?[0-9A-Za-z]{4}-?[0-9A-Za-z]{4}$"
_RECOVERY_CODE = re.compile(RECOVERY_CODE_PATTERN)
_LOOK_ALIKES = str.maketrans("oil", "011")


@dataclass(frozen=True, slots=True)
class TotpFactor:
    """A user's authenticator: pending until confirmed with a first code."""

    user_id: int
    secret_box: bytes  # the base32 secret, encrypted (services/secret_box.py)
    created_at: datetime
    confirmed_at: datetime | None
    last_step: int | None  # the last time step a code was accepted for

    @property
    def enabled(self) -> bool:
        return self.confirmed_at is not None


@dataclass(frozen=True, slots=True)
class RecoveryCode:
    user_id: int
    salt: bytes
    code_hash: bytes
    used_at: datetime | None


def new_totp_secret() -> str:
    """A random base32 secret of 160 bits (RFC 4226's recommended length)."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI authenticator apps read (usually from a QR code)."""
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def matching_step(secret: str, code: str, *, at: datetime, after: int | None) -> int | None:
    """The time step ``code`` belongs to, within one step of ``at`` and later than
    ``after``; None when it matches none (wrong, too old, or already used)."""
    if not re.fullmatch(TOTP_CODE_PATTERN, code):
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS)
    now_step = totp.timecode(at)
    found: int | None = None
    for step in range(now_step - _SKEW_STEPS, now_step + _SKEW_STEPS + 1):
        expected = totp.generate_otp(step)
        # Compare every candidate (no early exit): the time taken says nothing.
        if hmac.compare_digest(expected, code) and (after is None or step > after):
            found = step if found is None else found
    return found


def new_recovery_codes() -> list[str]:
    """``RECOVERY_CODE_COUNT`` fresh codes, as shown to the user (``xxxx-xxxx-xxxx-xxxx``)."""
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def normalize_recovery_code(code: str) -> str | None:
    """The code as hashed (lower case, no dashes; Crockford's look-alikes read as digits),
    or None when it cannot be a recovery code."""
    if not _RECOVERY_CODE.fullmatch(code):
        return None
    text = code.replace("-", "").lower()
    return text.translate(_LOOK_ALIKES)


def hash_recovery_code(normalized: str, salt: bytes) -> bytes:
    """What is stored of a recovery code: a salted SHA-256 (80 random bits each)."""
    return hashlib.sha256(salt + normalized.encode()).digest()


def recovery_code_matches(normalized: str, stored: RecoveryCode) -> bool:
    return hmac.compare_digest(hash_recovery_code(normalized, stored.salt), stored.code_hash)
