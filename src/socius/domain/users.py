"""Users: the account record and the rules for its fields."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from socius.domain.errors import InvalidInput
from socius.domain.text import (
    CONTROL,
    CONTROL_OR_BREAK,
    WHITESPACE,
    check_no_control_chars,
    has_control_chars,
    visible_text_pattern,
)

__all__ = [
    "AVATAR_URL_MAX",
    "AVATAR_URL_PATTERN",
    "BIO_MAX",
    "BIO_PATTERN",
    "DISPLAY_NAME_MAX",
    "DISPLAY_NAME_PATTERN",
    "EMAIL_MAX",
    "EMAIL_PATTERN",
    "PASSWORD_MAX",
    "PASSWORD_MIN",
    "USERNAME_PATTERN",
    "DmPolicy",
    "User",
    "UserStatus",
    "check_avatar_url",
    "check_bio",
    "check_display_name",
    "check_email",
    "check_username",
    "normalize_login",
]

# Each *_PATTERN is also published in the OpenAPI document (domain/text.py says how they
# are written so that Python and JSON Schema read them alike).
USERNAME_PATTERN = r"^[A-Za-z0-9_]{3,32}$"
"""3-32 of a-z, 0-9 and _, in either case (stored lower-case)."""
_NOT_IN_EMAIL = f"@{WHITESPACE}{CONTROL_OR_BREAK}"
EMAIL_PATTERN = f"^[^{_NOT_IN_EMAIL}]{{1,64}}@[^.{_NOT_IN_EMAIL}]+(?:[.][^.{_NOT_IN_EMAIL}]+)+$"
EMAIL_MAX = 254
DISPLAY_NAME_MAX = 64
_NOT_IN_NAME = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
DISPLAY_NAME_PATTERN = visible_text_pattern(_NOT_IN_NAME)
"""No control characters or line breaks; something visible (surrounding spaces are trimmed)."""
BIO_MAX = 500
BIO_PATTERN = f"^[^{CONTROL}]*$"
AVATAR_URL_MAX = 2048
AVATAR_URL_PATTERN = f"^(?:https?://[^{WHITESPACE}{CONTROL_OR_BREAK}]*)?$"
"""An http(s) URL without spaces; the empty string clears it."""
PASSWORD_MIN = 8
PASSWORD_MAX = 256

_USERNAME = re.compile(USERNAME_PATTERN)
_EMAIL = re.compile(EMAIL_PATTERN)
_DISPLAY_NAME = re.compile(DISPLAY_NAME_PATTERN)
_AVATAR_URL = re.compile(AVATAR_URL_PATTERN)


class DmPolicy(StrEnum):
    EVERYONE = "everyone"
    FRIENDS = "friends"


class UserStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    email: str | None
    display_name: str
    bio: str
    avatar_url: str | None
    is_private: bool
    dm_policy: DmPolicy
    password_hash: str
    status: UserStatus
    is_admin: bool
    created_at: datetime
    updated_at: datetime
    settings: dict[str, Any] = field(default_factory=dict)
    email_verified_at: datetime | None = None  # None: never verified, or changed since

    @property
    def is_active(self) -> bool:
        return self.status is UserStatus.ACTIVE

    @property
    def email_verified(self) -> bool:
        return self.email is not None and self.email_verified_at is not None


def check_username(value: str) -> str:
    """The canonical (lower-case) username, or InvalidInput."""
    if not _USERNAME.fullmatch(value):
        raise InvalidInput(
            "username must be 3-32 characters of a-z, 0-9 and _",
            code="invalid_username",
            details={"field": "username"},
        )
    return value.lower()


def check_email(value: str) -> str:
    check_no_control_chars(value, field="email")
    if len(value) > EMAIL_MAX or not _EMAIL.fullmatch(value):
        raise InvalidInput(
            "email is not a valid address", code="invalid_email", details={"field": "email"}
        )
    return value.lower()


def check_display_name(value: str) -> str:
    if len(value) > DISPLAY_NAME_MAX or not _DISPLAY_NAME.fullmatch(value):
        raise InvalidInput(
            f"display_name must be 1-{DISPLAY_NAME_MAX} characters, without control "
            "characters or line breaks",
            code="invalid_display_name",
            details={"field": "display_name"},
        )
    return value.strip()


def check_bio(value: str) -> str:
    check_no_control_chars(value, field="bio", allow_newlines=True)
    if len(value) > BIO_MAX:
        raise InvalidInput(
            f"bio must be at most {BIO_MAX} characters",
            code="invalid_bio",
            details={"field": "bio"},
        )
    return value


def check_avatar_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > AVATAR_URL_MAX or not _AVATAR_URL.fullmatch(value):
        raise InvalidInput(
            "avatar_url must be an http(s) URL",
            code="invalid_avatar_url",
            details={"field": "avatar_url"},
        )
    return value


def normalize_login(value: str) -> str:
    """A login name (username or email) in the form it is stored; "" for text that no
    stored name can be (control characters), which then matches no one."""
    if has_control_chars(value):
        return ""
    return value.strip().lower()
