"""Response bodies encoded once and kept (services/rendered.py, decision 0024).

`render(view)` encodes a view exactly as Litestar would (msgspec JSON); `json_response`
sends such bytes as they are, declared in OpenAPI as the view type of the handler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from litestar import Response

__all__ = ["json_response", "renderer"]

T = TypeVar("T")
V = TypeVar("V")

_encode = msgspec.json.Encoder().encode
_JSON = "application/json"


def renderer(view: Callable[[T], Any]) -> Callable[[T], bytes]:
    """What the service hands a value to: the value turned into its view, encoded."""

    def render(value: T) -> bytes:
        return _encode(view(value))

    return render


def json_response(body: bytes) -> Response[Any]:
    return Response(content=body, media_type=_JSON)
