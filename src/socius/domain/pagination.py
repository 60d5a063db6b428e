"""Opaque list cursors and page limits, as docs/api.md sets them.

A cursor is the position after the last item of a page: a small JSON object, base64url
encoded without padding. Each list has its own position type, a msgspec ``Struct`` whose
fields are bounded to what the database can hold, so a forged cursor is refused with
400 ``invalid_cursor`` before it can reach a query. Cursors are validated, not signed:
a position only says where to continue in a list the caller may read anyway
(docs/decisions/0009-validated-cursors.md).
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import msgspec

from socius.domain.errors import InvalidCursor, InvalidInput

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_CURSOR_LENGTH",
    "MAX_INT64",
    "MAX_LIMIT",
    "ActivityPosition",
    "AuditPosition",
    "EdgePosition",
    "Id",
    "LogPosition",
    "MemberPosition",
    "NotificationPosition",
    "OffsetPosition",
    "Seq",
    "UserPosition",
    "check_limit",
    "decode_cursor",
    "encode_cursor",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
MAX_INT64 = (1 << 63) - 1
MAX_CURSOR_LENGTH = 512

Seq = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT64)]
"""A position in a sequence (a log, a conversation): 0 is before the first item."""
Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_INT64)]
"""A 64-bit id (domain/ids.py)."""


class LogPosition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """After event ``s`` of a user's log (sync and the WebSocket)."""

    s: Seq


class NotificationPosition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Before notification ``n``, newest first."""

    n: Id


class EdgePosition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Before the edge at position ``p`` of a graph list, newest first."""

    p: Seq


class MemberPosition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """After member ``u`` of a conversation, by user id."""

    u: Id


class ActivityPosition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Before conversation ``c`` last active at ``t``, most recently active first."""

    c: Id
    t: Annotated[datetime, msgspec.Meta(tz=True)]

    def __post_init__(self) -> None:
        try:
            msgspec.structs.force_setattr(self, "t", self.t.astimezone(UTC))
        except OverflowError as exc:  # 0001-01-01T00:00+01:00 has no UTC time
            raise ValueError("out of range") from exc


class OffsetPosition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The ``o``-th result of a ranked search."""

    o: Seq


class UserPosition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Before user ``u``, newest first (the administrators' list of accounts)."""

    u: Id


class AuditPosition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Before audit log entry ``a``, newest first."""

    a: Id


P = TypeVar("P", bound=msgspec.Struct)

_encode = msgspec.json.Encoder().encode
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+\Z")


def check_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be 1..{MAX_LIMIT}", code="invalid_limit", details={"field": "limit"}
        )
    return limit


def encode_cursor(position: msgspec.Struct) -> str:
    return base64.urlsafe_b64encode(_encode(position)).rstrip(b"=").decode()


def decode_cursor(cursor: str | None, kind: type[P]) -> P | None:
    """The ``kind`` position in ``cursor`` (None for no cursor or ""); 400 ``invalid_cursor``
    for anything ``encode_cursor`` could not have made for this list."""
    if not cursor:
        return None
    if len(cursor) > MAX_CURSOR_LENGTH or not _ALPHABET.match(cursor):
        raise _invalid()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=kind)
    except (binascii.Error, msgspec.DecodeError, RecursionError) as exc:
        raise _invalid() from exc


def _invalid() -> InvalidCursor:
    return InvalidCursor("cursor is not valid", details={"field": "cursor"})
