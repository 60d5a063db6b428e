"""Signing keys for access tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["SigningKeyRecord"]


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    kid: str
    private_key_pem: str
    created_at: datetime
    retired_at: datetime | None
