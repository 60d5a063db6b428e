"""Helpers for tests of the second factor: codes as an authenticator app makes them."""

from __future__ import annotations

from datetime import datetime

import pyotp

from clock import Clock
from conftest import Account

__all__ = ["code_at", "enable_totp"]


def code_at(secret: str, when: datetime) -> str:
    """The code an authenticator app shows at ``when``."""
    return pyotp.TOTP(secret).at(when)


def enable_totp(account: Account, clock: Clock) -> tuple[str, list[str]]:
    """Turn TOTP on for ``account``; its secret and recovery codes. The clock moves on a
    time step, so the next code is not the one used to confirm."""
    enrollment = account.client.enroll_totp()
    codes = account.client.confirm_totp(code_at(enrollment.secret, clock.now))
    clock.advance(30)
    return enrollment.secret, codes
