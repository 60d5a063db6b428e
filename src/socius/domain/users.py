"""Users: the account record and the rules for its fields."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from socius.domain.errors import InvalidInput
from socius.domain.text import check_no_control_chars, has_control_chars

__all__ = [
    "AVATAR_URL_MAX",
    "BIO_MAX",
    "DISPLAY_NAME_MAX",
    "PASSWORD_MAX",
    "PASSWORD_MIN",
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

USERNAME_RE = re.compile(r"^[a-z0-9_]{3,32}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")
DISPLAY_NAME_MAX = 64
BIO_MAX = 500
AVATAR_URL_MAX = 2048
PASSWORD_MIN = 8
PASSWORD_MAX = 256


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

    @property
    def is_active(self) -> bool:
        return self.status is UserStatus.ACTIVE


def check_username(value: str) -> str:
    """The canonical (lower-case) username, or InvalidInput."""
    name = value.strip().lower()
    if not USERNAME_RE.match(name):
        raise InvalidInput(
            "username must be 3-32 characters of a-z, 0-9 and _",
            code="invalid_username",
            details={"field": "username"},
        )
    return name


def check_email(value: str) -> str:
    email = check_no_control_chars(value, field="email").strip().lower()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise InvalidInput(
            "email is not a valid address", code="invalid_email", details={"field": "email"}
        )
    return email


def check_display_name(value: str) -> str:
    name = value.strip()
    if not name or len(name) > DISPLAY_NAME_MAX or not name.isprintable():
        raise InvalidInput(
            f"display_name must be 1-{DISPLAY_NAME_MAX} printable characters",
            code="invalid_display_name",
            details={"field": "display_name"},
        )
    return name


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
    if (
        len(value) > AVATAR_URL_MAX
        or not value.startswith(("https://", "http://"))
        or any(ch.isspace() for ch in value)
        or has_control_chars(value)
    ):
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
