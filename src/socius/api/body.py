"""JSON request bodies: decoded strictly, straight into the handler's declared type.

Litestar decodes a body to plain Python values and then converts them to the handler's
``data`` type with lax rules (``"5"`` becomes 5, ``1`` becomes ``True``), so a body the
OpenAPI document forbids could be accepted. ``StrictRequest.json`` instead decodes the
bytes with msgspec into that type in one pass: the Struct's constraints are exactly what
the document shows, and nothing else gets in. The conversion Litestar runs afterwards is
a no-op on a Struct that is already of its type.

JSON Schema counts ``2.0`` as an integer, and so does this: when a body fails to decode,
it is decoded once more generically, with integral floats made ints, and converted to the
type again. Only a body that fails both ways is refused.

Errors, chosen by exception type (msgspec gives no structured error, only a message):
- not JSON (``DecodeError``), or nested deeper than ``MAX_DEPTH`` anywhere the body does
  not validate: 400 ``invalid_json``. No request type accepts deep nesting, so a deep body
  never validates; it costs one extra generic decode, on the error path only. msgspec's own
  recursion guard (a ``RecursionError``) is caught too.
- a field the type does not declare: 422 ``unknown_field`` (found by comparing keys).
- anything else: 422 ``validation_error`` with msgspec's message.
"""

from __future__ import annotations

import types
from functools import cache
from typing import Any, Union, get_args, get_origin

import msgspec
from litestar import Request
from litestar.handlers.base import BaseRouteHandler

from socius.domain.errors import InvalidInput

__all__ = ["MAX_DEPTH", "InvalidJson", "StrictRequest", "decode_body", "depth_exceeds"]

MAX_DEPTH = 32
"""Deepest nesting of arrays and objects a request body may have."""

_generic = msgspec.json.Decoder()


class InvalidJson(Exception):
    """The body is not JSON, or is nested too deeply: 400 ``invalid_json``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StrictRequest(Request[Any, Any, Any]):
    """A Litestar request whose JSON body is decoded by ``decode_body``."""

    async def json(self) -> Any:
        return decode_body(await self.body() or b"null", _body_type(self.route_handler))


def decode_body(body: bytes, target: Any) -> Any:
    try:
        return _decoder(target)(body)
    except msgspec.ValidationError:
        return _second_look(body, target)
    except msgspec.DecodeError as exc:
        raise InvalidJson("the request body is not valid JSON") from exc
    except RecursionError as exc:
        raise InvalidJson(_TOO_DEEP) from exc


_TOO_DEEP = f"the request body is nested deeper than {MAX_DEPTH} levels"


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether arrays and objects in ``value`` nest deeper than ``limit``. Iterative,
    and it stops at the first container past the limit."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if level > limit:
            return True
        stack.extend((child, level + 1) for child in children)
    return False


def _second_look(body: bytes, target: Any) -> Any:
    """``body`` as ``target`` with integral floats taken for ints, or the error to raise."""
    try:
        value = _generic.decode(body)
    except msgspec.DecodeError as exc:
        # The typed decoder stopped at the first wrong value; the rest is not JSON.
        raise InvalidJson("the request body is not valid JSON") from exc
    except RecursionError as exc:
        raise InvalidJson(_TOO_DEEP) from exc
    if depth_exceeds(value, MAX_DEPTH):
        raise InvalidJson(_TOO_DEEP)
    try:
        return msgspec.convert(_integral(value), target, strict=True)
    except msgspec.ValidationError as exc:
        raise _invalid(value, target, exc) from exc


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value


def _invalid(value: Any, target: Any, exc: msgspec.ValidationError) -> InvalidInput:
    known = _fields(target, value)
    if known is not None and isinstance(value, dict):
        unknown = [key for key in value if key not in known]
        if unknown:
            return InvalidInput(
                f"unknown field {unknown[0][:64]!r}",
                code="unknown_field",
                details={"field": unknown[0][:64], "source": "body"},
            )
    message, _, where = str(exc).partition(" - at `$")
    details = {"source": "body"}
    if where:
        details["field"] = where.rstrip("`").lstrip(".")
    return InvalidInput(message, code="validation_error", details=details)


def _fields(target: Any, value: Any) -> frozenset[str] | None:
    """The field names ``target`` accepts for ``value`` when it refuses unknown ones; for a
    tagged union, those of the member ``value``'s tag selects."""
    if get_origin(target) in (Union, types.UnionType):
        for member in get_args(target):
            config = getattr(member, "__struct_config__", None)
            if (
                config is not None
                and isinstance(value, dict)
                and value.get(config.tag_field) == config.tag
            ):
                return _fields(member, value)
        return None
    config = getattr(target, "__struct_config__", None)
    if config is None or not config.forbid_unknown_fields:
        return None
    fields = set(target.__struct_encode_fields__)
    if config.tag_field is not None:
        fields.add(config.tag_field)
    return frozenset(fields)


@cache
def _decoder(target: Any) -> Any:
    return msgspec.json.Decoder(target).decode


def _body_type(handler: BaseRouteHandler) -> Any:
    field = handler.parsed_data_field
    return Any if field is None else field.annotation
