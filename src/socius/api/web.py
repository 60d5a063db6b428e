"""The browser client at ``/``, the API reference at ``/docs`` and GraphiQL at ``GET
/graphql``: static files shipped in the package (``socius/web``), with no CDN and no build
step.

Only exact routes are registered — ``/``, ``/web/{path}``, ``/docs``, ``/docs/{path}`` and
``/graphql/ide/{path}`` (the GraphiQL page itself is answered by the GraphQL controller,
through ``graphiql_page``) — never a catch-all mount, so no API path can be shadowed; none
of them is in the OpenAPI document. A file is read on its first request and kept in memory with its
gzip form and a strong ETag. Answers say ``Cache-Control: no-cache``: browsers
keep the files and revalidate them, which costs a 304 with no body, so a new release
shows at the next load. HTML pages carry a Content-Security-Policy that allows this
origin only (docs/web.md).
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from litestar import Request, Response, Router, get
from litestar.params import FromPath

from socius.domain.errors import NotFound

__all__ = [
    "CLIENT_CSP",
    "DOCS_CSP",
    "GRAPHIQL_CSP",
    "WEB_ROOT",
    "Asset",
    "Assets",
    "graphiql_page",
    "router",
]

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
_COMPRESSIBLE = {".html", ".js", ".css", ".svg", ".json", ".txt"}
_MIN_GZIP = 512  # bytes; smaller files gain nothing from compression

_BASE_HEADERS = {
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
# The client builds its DOM from JavaScript and loads nothing from elsewhere: no inline
# script or style, and the socket is same-origin ('self' covers ws: and wss: there).
# Attachments are fetched with the session's token and shown from blob: URLs.
CLIENT_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI sets style attributes on its elements.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

# GraphiQL (React) sets style attributes too, and its CSS carries its fonts as data: URLs.
GRAPHIQL_CSP = DOCS_CSP.replace(
    "img-src 'self' data:;", "img-src 'self' data:; font-src 'self' data:;"
)


@dataclass(frozen=True, slots=True)
class Asset:
    """One file as served: its bytes, their gzip form (when worth it), their ETags."""

    body: bytes
    gzipped: bytes | None
    etag: str
    content_type: str

    @property
    def gzip_etag(self) -> str:
        return self.etag[:-1] + '-gz"'

    @classmethod
    def load(cls, path: Path) -> Asset:
        body = path.read_bytes()
        squeezed = None
        if path.suffix in _COMPRESSIBLE and len(body) >= _MIN_GZIP:
            squeezed = gzip.compress(body, compresslevel=9, mtime=0)
            if len(squeezed) >= len(body):
                squeezed = None
        digest = hashlib.sha256(body).hexdigest()[:20]
        return cls(body, squeezed, f'"{digest}"', _TYPES[path.suffix])


class Assets:
    """The servable files under ``root``, by relative path; each kept in memory once read,
    and read again when its size or modification time changes (one ``stat`` a request:
    an edited file shows at the next load, without a restart).

    A path is servable when it names a regular file inside ``root`` with a known suffix,
    no part of it is hidden or ``..``, and it is not under one of ``exclude``."""

    def __init__(self, root: Path, *, exclude: tuple[str, ...] = ()) -> None:
        self._root = root.resolve()
        self._exclude = exclude
        self._loaded: dict[str, tuple[Path, tuple[int, int], Asset]] = {}

    def get(self, relative: str) -> Asset | None:
        known = self._loaded.get(relative)
        path = known[0] if known is not None else self._locate(relative)
        if path is None:
            return None
        try:
            stat = path.stat()
        except OSError:
            self._loaded.pop(relative, None)
            return None
        version = (stat.st_mtime_ns, stat.st_size)
        if known is not None and known[1] == version:
            return known[2]
        asset = Asset.load(path)
        self._loaded[relative] = (path, version, asset)
        return asset

    def _locate(self, relative: str) -> Path | None:
        parts = PurePosixPath(relative.lstrip("/")).parts
        if not parts or parts[0] in self._exclude:
            return None
        if any(p.startswith(".") or p in ("..", "") or "\\" in p for p in parts):
            return None
        path = self._root.joinpath(*parts)
        if path.suffix not in _TYPES:
            return None
        try:
            resolved = path.resolve(strict=True)
        except OSError:
            return None
        if not resolved.is_relative_to(self._root) or not resolved.is_file():
            return None
        return resolved


def _accepts_gzip(header: str) -> bool:
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() != "gzip":
            continue
        q = params.strip().removeprefix("q=").strip()
        return not params or q not in ("0", "0.0", "0.00", "0.000")
    return False


def _not_modified(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags


def _serve(
    request: Request[Any, Any, Any], asset: Asset, *, csp: str | None = None
) -> Response[bytes]:
    """``asset`` as the answer to ``request``: 200 (gzip when accepted) or 304."""
    compressed = asset.gzipped is not None and _accepts_gzip(
        request.headers.get("accept-encoding", "")
    )
    etag = asset.gzip_etag if compressed else asset.etag
    headers = {**_BASE_HEADERS, "etag": etag, "content-type": asset.content_type}
    if asset.gzipped is not None:
        headers["vary"] = "Accept-Encoding"
    if csp is not None:
        headers["content-security-policy"] = csp
    if _not_modified(request.headers.get("if-none-match"), etag):
        return Response(b"", status_code=304, headers=headers)
    if compressed:
        assert asset.gzipped is not None
        headers["content-encoding"] = "gzip"
        return Response(asset.gzipped, headers=headers)
    return Response(asset.body, headers=headers)


class _Site:
    """A folder of files and the policy its pages are served with."""

    def __init__(self, assets: Assets, csp: str) -> None:
        self.assets = assets
        self.csp = csp

    def answer(self, request: Request[Any, Any, Any], path: str) -> Response[bytes]:
        asset = self.assets.get(path)
        if asset is None:
            raise NotFound("no such file", code="not_found")
        return _serve(request, asset, csp=self.csp if path.endswith(".html") else None)


_CLIENT = _Site(Assets(WEB_ROOT, exclude=("docs", "graphiql")), CLIENT_CSP)
_DOCS = _Site(Assets(WEB_ROOT / "docs"), DOCS_CSP)
_GRAPHIQL = _Site(Assets(WEB_ROOT / "graphiql"), GRAPHIQL_CSP)


def graphiql_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """GraphiQL on ``/graphql``, from files vendored in the package (the GraphQL
    controller answers a browser's ``GET /graphql`` with it)."""
    return _GRAPHIQL.answer(request, "index.html")


@get("/", include_in_schema=False)
async def client_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The browser client's one page; it routes with the URL fragment (``#/chats``)."""
    return _CLIENT.answer(request, "index.html")


@get("/web/{path:path}", include_in_schema=False)
async def client_file(request: Request[Any, Any, Any], path: FromPath[str]) -> Response[bytes]:
    return _CLIENT.answer(request, path)


@get("/docs", include_in_schema=False)
async def docs_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Swagger UI on ``/openapi.json``, from files vendored in the package."""
    return _DOCS.answer(request, "index.html")


@get("/docs/{path:path}", include_in_schema=False)
async def docs_file(request: Request[Any, Any, Any], path: FromPath[str]) -> Response[bytes]:
    return _DOCS.answer(request, path)


@get("/graphql/ide/{path:path}", include_in_schema=False)
async def graphiql_file(request: Request[Any, Any, Any], path: FromPath[str]) -> Response[bytes]:
    return _GRAPHIQL.answer(request, path)


router = Router(
    path="/",
    route_handlers=[client_page, client_file, docs_page, docs_file, graphiql_file],
)
