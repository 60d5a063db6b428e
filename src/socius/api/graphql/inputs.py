"""Arguments, checked by the very rules REST applies to the same values.

A mutation's arguments are decoded into the REST route's request Struct (the same
constraints, the same ``validation_error`` / ``unknown_field`` answers, api/body.py), and
ids are parsed as REST parses them (a malformed id names nothing: not found).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

from socius.api.body import InvalidJson, decode_body
from socius.api.rest.params import parse_id_list
from socius.domain.conversations import not_found
from socius.domain.errors import InvalidInput, NotFound
from socius.domain.ids import parse_id

__all__ = [
    "conversation_id",
    "id_list",
    "message_id",
    "struct",
    "user_id",
    "user_ids",
]

T = TypeVar("T")
_encode = msgspec.json.Encoder().encode


def struct(kind: type[T], values: dict[str, Any]) -> T:
    """``values`` as REST's request body ``kind``."""
    try:
        decoded: T = decode_body(_encode(values), kind)
    except InvalidJson as exc:  # nested too deeply
        raise InvalidInput(exc.message, code="invalid_json") from exc
    return decoded


def user_id(text: str) -> int:
    value = parse_id(text)
    if value is None:
        raise NotFound("no such user", code="user_not_found")
    return value


def user_ids(texts: Sequence[str]) -> list[int]:
    return [user_id(t) for t in texts]


def conversation_id(text: str) -> int:
    value = parse_id(text)
    if value is None:
        raise not_found()
    return value


def message_id(text: str) -> int:
    value = parse_id(text)
    if value is None:
        raise not_found("message")
    return value


def id_list(texts: Sequence[str]) -> list[int]:
    """Up to 100 user ids, judged as REST's ``ids=a,b,c`` (``invalid_id``, ``too_many_ids``)."""
    for text in texts:
        if "," in text or not text:
            raise InvalidInput(
                f"not a user id: {text[:24]!r}", code="invalid_id", details={"field": "ids"}
            )
    return parse_id_list(",".join(texts))
