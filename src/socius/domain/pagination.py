"""Opaque list cursors and page limits, as docs/api.md sets them."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from socius.domain.errors import InvalidInput

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "check_limit", "decode_cursor", "encode_cursor"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


def check_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be 1..{MAX_LIMIT}", code="invalid_limit", details={"field": "limit"}
        )
    return limit


def encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    """The position in ``cursor``; InvalidInput when it was not made by ``encode_cursor``."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "cursor is not valid", code="invalid_cursor", details={"field": "cursor"}
        ) from exc
    if not isinstance(value, dict):
        raise InvalidInput(
            "cursor is not valid", code="invalid_cursor", details={"field": "cursor"}
        )
    return value
