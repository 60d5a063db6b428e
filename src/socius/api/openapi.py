"""Make the generated OpenAPI document tell the truth, once, after Litestar generates it.

- Request bodies: Litestar's generator drops constraints (on list items, on optional
  fields) and never says ``additionalProperties: false``. Bodies are decoded by msgspec
  straight into their Structs (api/body.py), so their schemas are taken from msgspec too:
  every ``Meta`` constraint, the refusal of unknown fields, tagged unions.
- Query parameters: an optional string is written ``oneOf: [string, null]``, but the text
  ``null`` is just a string to the server (a cursor that is not valid), so it becomes
  ``string``. (An optional integer keeps its ``null``: ``?limit=null`` means no limit.)
- Errors: Litestar documents its own default error shape; socius answers every error with
  ``{"error": {"code", "message", "details"}}``, so every operation's error responses
  are rewritten to that envelope.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec
from litestar import Litestar
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
)
from litestar.routes import HTTPRoute

__all__ = ["document"]

_ERROR_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["error"],
    properties={
        "error": Schema(
            type=OpenAPIType.OBJECT,
            required=["code", "message", "details"],
            properties={
                "code": Schema(type=OpenAPIType.STRING, description="stable, snake_case"),
                "message": Schema(type=OpenAPIType.STRING, description="for humans"),
                "details": Schema(type=OpenAPIType.OBJECT),
            },
        )
    },
    description="Every error socius returns.",
)

_STATUSES = {
    "400": "Malformed request (`invalid_json`, `invalid_cursor`)",
    "401": "Missing, invalid or revoked access token",
    "403": "Not allowed",
    "404": "Not found, or not visible to you",
    "405": "Method not allowed",
    "409": "Conflict",
    "413": "Request body too large",
    "415": "Unsupported media type",
    "422": "Invalid input (`validation_error`, `unknown_field`, ...)",
    "429": "Rate limited; see Retry-After",
    "503": "A dependency is down; retry later",
}
_METHODS = ("get", "put", "post", "delete", "patch")
_REF_TEMPLATE = "#/components/schemas/{name}"


@dataclass
class _Raw(Schema):
    """A schema already in its JSON form (made by msgspec)."""

    raw: dict[str, Any] = field(default_factory=dict)

    def to_schema(self) -> dict[str, Any]:
        return self.raw


def document(app: Litestar) -> OpenAPI:
    schema = app.openapi_schema
    components = schema.components
    if isinstance(components, list):  # pragma: no cover - we always pass one Components
        components = components[0]
    assert isinstance(components, Components)
    _request_bodies(app, schema, components)
    _query_parameters(schema)
    _errors(schema, components)
    return schema


def _operations(schema: OpenAPI) -> list[Operation]:
    found = []
    for item in (schema.paths or {}).values():
        for method in _METHODS:
            operation = getattr(item, method, None)
            if operation is not None:
                found.append(operation)
    return found


def _request_bodies(app: Litestar, schema: OpenAPI, components: Components) -> None:
    targets: list[tuple[Operation, Any]] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        item = (schema.paths or {}).get(route.path_format)
        for handler in route.route_handlers:
            data = handler.parsed_data_field
            if item is None or data is None or not handler.include_in_schema:
                continue
            for method in handler.http_methods:
                operation = getattr(item, method.lower(), None)
                if operation is not None and operation.request_body is not None:
                    targets.append((operation, data.annotation))
    if not targets:
        return
    bodies, defined = msgspec.json.schema_components(
        [annotation for _, annotation in targets], ref_template=_REF_TEMPLATE
    )
    for (operation, annotation), body in zip(targets, bodies, strict=True):
        assert isinstance(operation.request_body, RequestBody)
        operation.request_body.content = {
            "application/json": OpenAPIMediaType(schema=_Raw(raw=body))
        }
        # An optional body (``data: X | None = None``) may be left out altogether.
        operation.request_body.required = not _accepts_none(annotation)
    schemas = dict(components.schemas or {})
    schemas.update({name: _Raw(raw=raw) for name, raw in defined.items()})
    components.schemas = schemas


def _accepts_none(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation)


def _query_parameters(schema: OpenAPI) -> None:
    for operation in _operations(schema):
        for parameter in operation.parameters or []:
            if not isinstance(parameter, Parameter) or parameter.param_in != "query":
                continue
            found = parameter.schema
            if not isinstance(found, Schema) or not found.one_of:
                continue
            kept = [
                s
                for s in found.one_of
                if not (isinstance(s, Schema) and s.type == OpenAPIType.NULL)
            ]
            if (
                len(kept) == 1
                and isinstance(kept[0], Schema)
                and kept[0].type == OpenAPIType.STRING
            ):
                found.type = kept[0].type
                found.enum = found.enum or kept[0].enum
                found.one_of = None


def _errors(schema: OpenAPI, components: Components) -> None:
    components.schemas = {**(components.schemas or {}), "Error": _ERROR_SCHEMA}
    error_ref = Reference("#/components/schemas/Error")
    envelope = {"application/json": OpenAPIMediaType(schema=error_ref)}
    for operation in _operations(schema):
        responses = operation.responses or {}
        for status, response in responses.items():  # errors a route declares itself
            if status.isdigit() and int(status) >= 400 and isinstance(response, OpenAPIResponse):
                response.content = envelope
        for status, description in _STATUSES.items():
            responses[status] = OpenAPIResponse(description=description, content=envelope)
        operation.responses = responses
