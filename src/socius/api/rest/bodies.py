"""Response bodies encoded once and kept (services/rendered.py, decision 0024).

`render(view)` encodes a view exactly as Litestar would (msgspec JSON); `json_response`
sends such bytes as they are, declared in OpenAPI as the view type of the handler.

`json_response` skips Litestar's response assembly (header merging, media type and
encoder resolution, ``ASGIResponse``: ~15 µs of a ~140 µs warm read in py-spy): it is a
`Response` whose ASGI answer is two prebuilt messages. Should a route ever add headers,
cookies or a background task, it falls back to Litestar's own assembly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from litestar import Litestar, Request, Response
from litestar.types import ASGIApp

__all__ = ["encode", "json_response", "renderer"]

T = TypeVar("T")

_encode = msgspec.json.Encoder().encode
encode = _encode
"""A view encoded as Litestar encodes a handler's return value (msgspec JSON)."""
_JSON = "application/json"
_CONTENT_TYPE = (b"content-type", b"application/json")


def renderer(view: Callable[[T], Any]) -> Callable[[T], bytes]:
    """What the service hands a value to: the value turned into its view, encoded."""

    def render(value: T) -> bytes:
        return _encode(view(value))

    return render


class _Sent:
    """The ASGI answer: 200, JSON, the body."""

    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __call__(self, _scope: Any, _receive: Any, send: Any) -> None:
        body = self._body
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_CONTENT_TYPE, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _RawJSON(Response[Any]):
    def __init__(self, body: bytes) -> None:
        super().__init__(content=body, media_type=_JSON)  # a whole Response, for any hook
        self.raw = body

    def to_asgi_response(  # type: ignore[override]
        self, app: Litestar | None, request: Request[Any, Any, Any], **kwargs: Any
    ) -> ASGIApp:
        if (
            kwargs.get("headers")
            or kwargs.get("cookies")
            or kwargs.get("background")
            or kwargs.get("encoded_headers")
            or kwargs.get("status_code") not in (None, 200)
            or request.method == "HEAD"
            or self.headers
            or self.cookies
            or self.background
        ):
            return super().to_asgi_response(app, request, **kwargs)
        return _Sent(self.raw)


def json_response(body: bytes) -> Response[Any]:
    return _RawJSON(body)
