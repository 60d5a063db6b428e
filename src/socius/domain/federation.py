"""Signing in without a password: identities at OpenID Connect providers, passkeys, and
the short-lived, single-use challenges their ceremonies need.

A federated identity is the pair (provider, subject) an OpenID provider vouches for,
linked to one account. A passkey is a WebAuthn credential: its id, its public key (COSE)
and the authenticator's signature counter. A challenge (an OpenID ``state``, the code a
browser trades for tokens, a WebAuthn challenge) is stored by its SHA-256 only and spent
by its first use, like the one-time tokens of mailed links.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from socius.domain.errors import InvalidInput
from socius.domain.users import DISPLAY_NAME_MAX, DISPLAY_NAME_PATTERN

__all__ = [
    "PROVIDER_PATTERN",
    "AuthChallenge",
    "ChallengePurpose",
    "FederatedIdentity",
    "Passkey",
    "check_passkey_name",
    "hash_challenge",
    "new_secret",
    "unusable_password_hash",
]

PROVIDER_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
PASSKEY_NAME_MAX = DISPLAY_NAME_MAX  # the same rules as a display name
_NAME = re.compile(DISPLAY_NAME_PATTERN)


class ChallengePurpose(StrEnum):
    OIDC_LOGIN = "oidc_login"  # the state of a sign-in at a provider
    OIDC_LINK = "oidc_link"  # the state of linking a provider to a signed-in account
    OIDC_EXCHANGE = "oidc_exchange"  # the code the callback hands the app, for tokens
    OIDC_LINK_CONFIRM = "oidc_link_confirm"  # the code the linking account confirms
    PASSKEY_REGISTER = "passkey_register"
    PASSKEY_LOGIN = "passkey_login"


@dataclass(frozen=True, slots=True)
class AuthChallenge:
    token_hash: bytes
    purpose: ChallengePurpose
    user_id: int | None
    data: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FederatedIdentity:
    provider: str
    subject: str
    user_id: int
    email: str | None
    created_at: datetime
    last_used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Passkey:
    id: int
    user_id: int
    credential_id: bytes
    public_key: bytes  # COSE
    sign_count: int
    name: str
    created_at: datetime
    last_used_at: datetime | None = None
    transports: list[str] = field(default_factory=list)


def new_secret() -> str:
    """256 random bits, URL-safe: a state, an exchange code."""
    return secrets.token_urlsafe(32)


def hash_challenge(value: bytes | str) -> bytes:
    """What is stored of a challenge (256 random bits: one SHA-256 is enough)."""
    raw = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(b"challenge:" + raw).digest()


def unusable_password_hash() -> str:
    """The password hash of an account made by a provider or with no password: no
    password matches it (it is not a valid hash), until one is set by a reset link."""
    return "!no-password"


def check_passkey_name(value: str) -> str:
    if len(value) > PASSKEY_NAME_MAX or not _NAME.fullmatch(value):
        raise InvalidInput(
            f"a passkey's name is 1-{PASSKEY_NAME_MAX} characters, without control characters "
            "or line breaks",
            code="invalid_passkey_name",
            details={"field": "name"},
        )
    return value.strip()
