"""Make the generated OpenAPI document tell the truth about errors.

Litestar documents its own default error shape; socius answers every error with
``{"error": {"code", "message", "details"}}``. This rewrites the error responses of
every operation to that envelope, once, after the document is generated.
"""

from __future__ import annotations

from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    Schema,
)

__all__ = ["document_errors"]

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
    "400": "Malformed request (`invalid_json`, `bad_request`)",
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


def document_errors(schema: OpenAPI) -> OpenAPI:
    components = schema.components
    if isinstance(components, list):  # pragma: no cover - we always pass one Components
        components = components[0]
    assert isinstance(components, Components)
    components.schemas = {**(components.schemas or {}), "Error": _ERROR_SCHEMA}
    error_ref = Reference("#/components/schemas/Error")
    envelope = {"application/json": OpenAPIMediaType(schema=error_ref)}
    for item in (schema.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            responses = operation.responses or {}
            for status, response in responses.items():  # errors a route declares itself
                if (
                    status.isdigit()
                    and int(status) >= 400
                    and isinstance(response, OpenAPIResponse)
                ):
                    response.content = envelope
            for status, description in _STATUSES.items():
                responses[status] = OpenAPIResponse(description=description, content=envelope)
            operation.responses = responses
    return schema
