"""Field types of request bodies. Each carries the rule the server applies to it, so the
OpenAPI document (built from the body Structs by msgspec, see api/openapi.py) says exactly
what is accepted.

A rule is either enforced while the body is decoded (a ``msgspec.Meta`` constraint: 422
``validation_error``), or enforced by the domain with its own error code (422
``invalid_username``, ``body_too_long``, ...) and only documented here, through
``extra_json_schema``, from the domain's own pattern and limits.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from socius.domain.conversations import (
    BODY_MAX,
    BODY_PATTERN,
    CLIENT_MSG_ID_PATTERN,
    MAX_TTL_SECONDS,
    SENT_BODY_PATTERN,
    TITLE_MAX,
    TITLE_PATTERN,
)
from socius.domain.ids import ID_PATTERN
from socius.domain.mfa import RECOVERY_CODE_PATTERN, TOTP_CODE_PATTERN
from socius.domain.users import (
    AVATAR_URL_MAX,
    AVATAR_URL_PATTERN,
    BIO_MAX,
    BIO_PATTERN,
    DISPLAY_NAME_MAX,
    DISPLAY_NAME_PATTERN,
    EMAIL_MAX,
    EMAIL_PATTERN,
    PASSWORD_MAX,
    PASSWORD_MIN,
    USERNAME_PATTERN,
)

__all__ = [
    "AvatarUrl",
    "Bio",
    "ClientMsgId",
    "DisplayName",
    "DisplayNameOrEmpty",
    "Email",
    "EmailAddress",
    "IdText",
    "MessageBody",
    "MessageTtl",
    "MfaCode",
    "NewPassword",
    "OneTimeTokenText",
    "Password",
    "RecoveryCodeText",
    "SentBody",
    "Title",
    "Username",
    "optional",
]


def _documented(**schema: object) -> msgspec.Meta:
    return msgspec.Meta(extra_json_schema=schema)


def optional(pattern: str) -> str:
    """``pattern`` (``^...$``) that also accepts the empty string."""
    return f"^(?:{pattern[1:-1]})?$"


IdText = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=20,
        description="An id (a decimal string)",
        extra_json_schema={"pattern": ID_PATTERN},
    ),
]
Username = Annotated[
    str,
    _documented(
        pattern=USERNAME_PATTERN,
        description="3-32 of a-z, 0-9 and _, case-insensitive (422 `invalid_username`)",
    ),
]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=PASSWORD_MAX)]
"""A password to check against the stored one."""
NewPassword = Annotated[
    str,
    _documented(
        minLength=PASSWORD_MIN,
        maxLength=PASSWORD_MAX,
        description=f"{PASSWORD_MIN}-{PASSWORD_MAX} characters (422 `invalid_password`); "
        "common passwords and ones containing the username are refused (422 `weak_password`)",
    ),
]
Email = Annotated[
    str,
    _documented(
        maxLength=EMAIL_MAX,
        pattern=optional(EMAIL_PATTERN),
        description="An address (422 `invalid_email`); empty for none",
    ),
]
EmailAddress = Annotated[
    str,
    _documented(
        maxLength=EMAIL_MAX,
        pattern=EMAIL_PATTERN,
        description="An email address (422 `invalid_email`)",
    ),
]
OneTimeTokenText = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=256,
        description="The token from the link (400 `invalid_token` or `token_expired`)",
    ),
]
MfaCode = Annotated[
    str,
    msgspec.Meta(
        pattern=TOTP_CODE_PATTERN,
        description="The 6-digit code the authenticator app shows now",
    ),
]
RecoveryCodeText = Annotated[
    str,
    msgspec.Meta(
        pattern=RECOVERY_CODE_PATTERN,
        description="One of the recovery codes (`xxxx-xxxx-xxxx-xxxx`), each usable once",
    ),
]
DisplayName = Annotated[
    str,
    _documented(
        maxLength=DISPLAY_NAME_MAX,
        pattern=DISPLAY_NAME_PATTERN,
        description="No control characters or line breaks; surrounding spaces are trimmed "
        "(422 `invalid_display_name`)",
    ),
]
DisplayNameOrEmpty = Annotated[
    str,
    _documented(
        maxLength=DISPLAY_NAME_MAX,
        pattern=optional(DISPLAY_NAME_PATTERN),
        description="As `display_name` of PATCH /v1/me; empty or null for the username",
    ),
]
Bio = Annotated[
    str,
    _documented(
        maxLength=BIO_MAX,
        pattern=BIO_PATTERN,
        description="No control characters but tab and line breaks (422 `invalid_bio`, "
        "`invalid_characters`)",
    ),
]
AvatarUrl = Annotated[
    str,
    _documented(
        maxLength=AVATAR_URL_MAX,
        pattern=AVATAR_URL_PATTERN,
        description="An http(s) URL; empty or null clears it (422 `invalid_avatar_url`)",
    ),
]
Title = Annotated[
    str,
    _documented(
        maxLength=TITLE_MAX,
        pattern=TITLE_PATTERN,
        description="One line; surrounding spaces are trimmed (422 `invalid_title`)",
    ),
]
MessageBody = Annotated[
    str,
    _documented(
        maxLength=BODY_MAX,
        pattern=BODY_PATTERN,
        description="Not blank; no control characters but tab and line breaks (422 "
        "`empty_body`, `body_too_long`, `invalid_characters`)",
    ),
]
SentBody = Annotated[
    str,
    _documented(
        maxLength=BODY_MAX,
        pattern=SENT_BODY_PATTERN,
        description='The text: not blank, and empty (`""`) only when `attachment_ids` is '
        "not; no control characters but tab and line breaks (422 `empty_body`, "
        "`body_too_long`, `invalid_characters`)",
    ),
]
ClientMsgId = Annotated[
    str,
    _documented(
        pattern=CLIENT_MSG_ID_PATTERN,
        description="Your id for the message, unique per conversation: a retry with the same "
        "one returns the message already sent (422 `invalid_client_msg_id`)",
    ),
]
MessageTtl = Annotated[
    int,
    _documented(
        minimum=0,
        maximum=MAX_TTL_SECONDS,
        description="Seconds until new messages disappear; 0 turns it off (422 `invalid_ttl`)",
    ),
]
