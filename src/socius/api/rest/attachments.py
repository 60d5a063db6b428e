"""/v1/uploads and /v1/attachments: files sent with messages (docs/attachments.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
import multipart
from litestar import Request, Response, Router, get, post
from litestar.datastructures import State
from litestar.exceptions import InternalServerException
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import Parameter, QueryParameter
from litestar.response import Stream
from litestar.status_codes import HTTP_201_CREATED

from socius.api.dependencies import Caller, container_of
from socius.api.errors import error_response
from socius.api.options import with_options
from socius.api.rest.message_views import AttachmentOut, attachment_out
from socius.api.rest.params import IdPath
from socius.domain.attachments import (
    THUMBNAIL_SIZES,
    Attachment,
    attachment_not_found,
    thumbnail_size,
)
from socius.domain.errors import InvalidInput, TooLarge
from socius.domain.ids import parse_id

__all__ = ["router"]

_INLINE = ("image/", "audio/", "video/")
_SAFETY = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; sandbox",
}


class LinkOut(msgspec.Struct, kw_only=True):
    url: str | None
    expires_at: datetime | None


class _UploadOperation(Operation):
    """The upload's body is the file itself, of any type (the server sniffs it)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={
                "application/octet-stream": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
                ),
                "multipart/form-data": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        required=["file"],
                        properties={
                            "file": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
                        },
                    )
                ),
            },
            description="The file's bytes, as the whole body (its Content-Type is not "
            "trusted: the type is read from the bytes).",
            required=True,
        )


def _attachment_id(text: str) -> int:
    value = parse_id(text)
    if value is None:
        raise attachment_not_found()
    return value


async def _body(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except InternalServerException as exc:  # Litestar's word for a client that went away
        raise InvalidInput("the upload ended early", code="upload_incomplete") from exc


_FORM_OVERHEAD = 64 * 1024
"""What a multipart body may carry besides the file (boundaries, headers, other fields)."""


class _FormFile:
    """The first file of a ``multipart/form-data`` body (the part named ``file``, or the
    first with a file name), streamed: parts are parsed as the body arrives, and reading
    stops at the end of that part."""

    def __init__(self, request: Request[Any, Any, Any], boundary: str, max_bytes: int) -> None:
        self._request = request
        self._boundary = boundary
        self._limit = max_bytes + _FORM_OVERHEAD
        self.filename: str | None = None

    def _invalid(self, why: str) -> InvalidInput:
        return InvalidInput(
            f"not a valid multipart/form-data body: {why}", code="invalid_multipart"
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            parser = multipart.PushMultipartParser(self._boundary, max_segment_count=16)
        except multipart.MultipartError as exc:
            raise self._invalid(str(exc)) from exc
        seen, inside, found = 0, False, False
        async for chunk in _body(self._request):
            seen += len(chunk)
            if seen > self._limit:
                raise TooLarge(
                    f"an upload is at most {self._limit - _FORM_OVERHEAD} bytes",
                    code="request_too_large",
                    details={"max": self._limit - _FORM_OVERHEAD},
                )
            try:
                for event in parser.parse(chunk):
                    if isinstance(event, multipart.MultipartSegment):
                        inside = not found and (event.name == "file" or bool(event.filename))
                        if inside:
                            found, self.filename = True, event.filename
                    elif event is None:
                        if inside:
                            return
                    elif inside:
                        yield bytes(event)
            except multipart.MultipartError as exc:
                raise self._invalid(str(exc)) from exc
        if not found:
            raise self._invalid("no file part (send it as the part named `file`)")


@post(
    "/v1/uploads",
    status_code=HTTP_201_CREATED,
    summary="Upload a file",
    description="The file as the whole body (any Content-Type), or as the part named "
    "`file` of a `multipart/form-data` body (its file name is kept unless `filename` is "
    "given; 422 `invalid_multipart` for a broken one). It is streamed to storage, never "
    "held in memory; past `SOCIUS_UPLOAD_MAX_BYTES` (default 25 MiB) 413 "
    "`request_too_large` (at once when Content-Length says so). Its type is sniffed "
    "from its bytes; one not on "
    "`SOCIUS_UPLOAD_ALLOWED_TYPES` (or an empty file) is 415 `unsupported_media_type`. "
    "Images get `width` and `height`. Send it with a message (`attachment_ids`) within "
    "`SOCIUS_UPLOAD_UNSENT_TTL_SECONDS` (a day), or it is purged.",
    request_max_body_size=None,  # the service enforces upload_max_bytes while streaming
    operation_class=_UploadOperation,
)
async def upload(
    request: Request[Any, Any, Any],
    state: State,
    principal: Caller,
    filename: Annotated[
        str | None,
        QueryParameter(
            max_length=255,
            description="The file's name, for `Content-Disposition` on download",
        ),
    ] = None,
) -> AttachmentOut:
    service = container_of(state).attachments
    media, options = multipart.parse_options_header(request.headers.get("content-type", ""))
    if media == "multipart/form-data":
        declared = request.content_length
        if declared is not None and declared > service.limits.max_bytes + _FORM_OVERHEAD:
            declared = service.limits.max_bytes + 1  # refused before a byte is read
        form = _FormFile(request, options.get("boundary", ""), service.limits.max_bytes)
        attachment = await service.upload(
            principal.user_id,
            form.chunks(),
            declared_size=declared if declared and declared > service.limits.max_bytes else None,
            filename=lambda: filename or form.filename,
        )
    else:
        attachment = await service.upload(
            principal.user_id,
            _body(request),
            declared_size=request.content_length,
            filename=lambda: filename,
        )
    return attachment_out(attachment)


def _disposition(a: Attachment) -> str:
    kind = "inline" if a.content_type.startswith(_INLINE) else "attachment"
    if not a.filename:
        return kind
    ascii_name = a.filename.encode("ascii", "replace").decode().replace("?", "_")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(a.filename, safe='')}"


def _media_type(a: Attachment) -> str:
    return "text/plain; charset=utf-8" if a.content_type == "text/plain" else a.content_type


def _etag(a: Attachment, suffix: str = "") -> str:
    return f'"{a.sha256}{suffix}"'


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def _range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """The one byte range asked for as (first, last); None for the whole file (no Range,
    several ranges, or one not understood); "unsatisfiable" for 416."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first_text, dash, last_text = header[6:].strip().partition("-")
    if not dash or not (first_text.isdigit() or last_text.isdigit()):
        return None
    if not first_text:  # the last N bytes
        n = int(last_text)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    if last_text and not last_text.isdigit():
        return None
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size:
        return "unsatisfiable"
    if first > last:
        return None
    return first, min(last, size - 1)


@get(
    "/v1/attachments/{attachment_id:str}",
    summary="Download an attachment",
    description="The bytes, to the uploader and to the members of the conversation it was "
    "sent in (404 `attachment_not_found` to anyone else, and once its message is deleted). "
    "One `Range: bytes=` range gives 206 with `Content-Range` (416 "
    "`range_not_satisfiable` past the end); `ETag` is the SHA-256, and `If-None-Match` "
    "answers 304. `Content-Type` is the sniffed type, `Content-Disposition` inline for "
    "images, audio and video, else attachment.",
    media_type="application/octet-stream",
    responses={},
)
async def download(
    attachment_id: IdPath, request: Request[Any, Any, Any], state: State, principal: Caller
) -> Response[Any]:
    service = container_of(state).attachments
    a = await service.get(principal.user_id, _attachment_id(attachment_id))
    etag = _etag(a)
    headers = {
        "etag": etag,
        "cache-control": "private, no-cache",
        "accept-ranges": "bytes",
        "content-disposition": _disposition(a),
        "content-type": _media_type(a),
        **_SAFETY,
    }
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(b"", status_code=304, headers=headers)
    wanted = _range(request.headers.get("range"), a.size)
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        wanted = None
    if wanted == "unsatisfiable":
        return error_response(
            416,
            "range_not_satisfiable",
            f"the file has {a.size} bytes",
            {"size": a.size},
            {"content-range": f"bytes */{a.size}"},
        )
    if isinstance(wanted, tuple):
        first, last = wanted
        length = last - first + 1
        chunks = await service.read(a, offset=first, length=length)
        headers["content-range"] = f"bytes {first}-{last}/{a.size}"
        headers["content-length"] = str(length)
        return Stream(chunks, status_code=206, headers=headers)
    chunks = await service.read(a)
    headers["content-length"] = str(a.size)
    return Stream(chunks, status_code=200, headers=headers)


@get(
    "/v1/attachments/{attachment_id:str}/thumbnail",
    summary="A thumbnail of an image attachment",
    description="A WebP no larger than `size` on each side (rounded up to one of "
    f"{', '.join(map(str, THUMBNAIL_SIZES))}), made on first use and kept. Who may read "
    "the attachment may read it; 404 `thumbnail_unavailable` for a file that is not an "
    "image Pillow reads (or a server without `socius[images]`).",
    media_type="image/webp",
)
async def thumbnail(
    attachment_id: IdPath,
    request: Request[Any, Any, Any],
    state: State,
    principal: Caller,
    size: Annotated[
        int, Parameter(ge=1, le=THUMBNAIL_SIZES[-1], description="Longest side in pixels")
    ] = 256,
) -> Response[bytes]:
    service = container_of(state).attachments
    wanted = _attachment_id(attachment_id)
    a = await service.get(principal.user_id, wanted)
    etag = _etag(a, f"-{thumbnail_size(size)}")
    headers = {"etag": etag, "cache-control": "private, no-cache", **_SAFETY}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(b"", status_code=304, headers=headers)
    _, data = await service.thumbnail(principal.user_id, wanted, size)
    return Response(data, media_type="image/webp", headers=headers)


@get(
    "/v1/attachments/{attachment_id:str}/link",
    summary="A direct download URL",
    description="A presigned URL of the object store that serves the bytes to anyone "
    "holding it until `expires_at` (`SOCIUS_BLOB_PRESIGN_SECONDS`), so large files need "
    "not pass through socius. `url` is null when the store has no such URLs (files, the "
    "embedded server): download from `GET /v1/attachments/{id}` then.",
)
async def link(attachment_id: IdPath, state: State, principal: Caller) -> LinkOut:
    service = container_of(state).attachments
    a = await service.get(principal.user_id, _attachment_id(attachment_id))
    url = service.link(a, _disposition(a))
    if url is None:
        return LinkOut(url=None, expires_at=None)
    expires = datetime.now(UTC) + timedelta(seconds=service.limits.presign_seconds)
    return LinkOut(url=url, expires_at=expires.replace(microsecond=0))


router = Router(
    path="/",
    route_handlers=with_options([upload, download, thumbnail, link]),
    tags=["attachments"],
)
