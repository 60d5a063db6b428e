"""The browser client (``/``, ``/web/...``) and the API reference (``/docs``) are static
files from the package: right types, ETag revalidation, gzip, no CDN, and no API path
shadowed by them."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from litestar.testing import TestClient
from litestar.types import ASGIApp

from socius.api.web import CLIENT_CSP, DOCS_CSP, WEB_ROOT

Http = TestClient[ASGIApp]

DOCS_ROOT = WEB_ROOT / "docs"
VENDORED = DOCS_ROOT / "swagger-ui"
GRAPHIQL_ROOT = WEB_ROOT / "graphiql"  # served under /graphql/ide (test_graphql_page.py)
TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}


@pytest.fixture
def stack() -> str:
    """These routes read no storage: one stack is enough."""
    return "sqlite"


def client_files() -> list[Path]:
    return sorted(
        p
        for p in WEB_ROOT.rglob("*")
        if p.is_file() and DOCS_ROOT not in p.parents and GRAPHIQL_ROOT not in p.parents
    )


def test_the_client_page_is_served_at_the_root(http: Http) -> None:
    response = http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CLIENT_CSP
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/web/app.js"></script>' in response.text
    assert response.text == (WEB_ROOT / "index.html").read_text()


def test_every_client_file_is_served_with_its_type(http: Http) -> None:
    files = client_files()
    assert {p.suffix for p in files} >= {".html", ".js", ".css", ".svg"}
    for path in files:
        relative = path.relative_to(WEB_ROOT).as_posix()
        response = http.get(f"/web/{relative}", headers={"accept-encoding": "identity"})
        assert response.status_code == 200, relative
        assert response.headers["content-type"].split(";")[0] == TYPES[path.suffix], relative
        assert response.content == path.read_bytes(), relative
        assert "content-encoding" not in response.headers


def test_revalidation_answers_304_without_a_body(http: Http) -> None:
    first = http.get("/web/app.js", headers={"accept-encoding": "identity"})
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{20}"', etag)
    again = http.get("/web/app.js", headers={"if-none-match": etag, "accept-encoding": "identity"})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other = http.get(
        "/web/app.js", headers={"if-none-match": '"nope"', "accept-encoding": "identity"}
    )
    assert other.status_code == 200


def test_text_files_are_gzipped_when_the_browser_accepts_it(http: Http) -> None:
    plain = (WEB_ROOT / "app.js").read_bytes()
    raw = http.get("/web/app.js", headers={"accept-encoding": "gzip, br"})
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.headers["vary"] == "Accept-Encoding"
    assert raw.content == plain  # the test client decodes it
    assert raw.headers["etag"].endswith('-gz"')
    refused = http.get("/web/app.js", headers={"accept-encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
    # Revalidating the gzip form uses its own tag.
    again = http.get(
        "/web/app.js",
        headers={"accept-encoding": "gzip", "if-none-match": raw.headers["etag"]},
    )
    assert again.status_code == 304


@pytest.mark.parametrize(
    "path",
    [
        "/web/nope.js",
        "/web/../pyproject.toml",
        "/web/%2e%2e/api/web.py",
        "/web/..%2fapi%2fweb.py",
        "/web/docs/index.html",  # the docs are served under /docs only
        "/web/graphiql/index.html",  # GraphiQL under /graphql only
        "/web/.hidden.js",
        "/web/",
        "/docs/../index.html",
        "/docs/swagger-ui/VENDORED.py",
        "/docs/nope.css",
    ],
)
def test_nothing_outside_the_served_folders_is_reachable(http: Http, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 404, path
    assert response.json()["error"]["code"] == "not_found"


def test_no_api_path_is_shadowed_and_none_of_these_routes_is_documented(http: Http) -> None:
    schema = http.get("/openapi.json").json()
    paths = schema["paths"]
    assert not [p for p in paths if p == "/" or p.startswith(("/web", "/docs"))]
    # Every documented GET answers as the API does (JSON), never with the page.
    for path, item in paths.items():
        if "get" not in item:
            continue
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        response = http.get(concrete)
        assert not response.headers.get("content-type", "").startswith("text/html"), path
    assert http.get("/v1/me").status_code == 401
    unknown = http.get("/v1/no-such-thing")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"


def test_the_docs_page_loads_only_files_of_this_server(http: Http) -> None:
    response = http.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == DOCS_CSP
    html = response.text
    links = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert links, html
    for link in links:
        assert link.startswith("/"), link
        assert http.get(link).status_code == 200, link
    # The former Scalar page at /openapi loaded a CDN; it is the JSON document now.
    assert http.get("/openapi").headers["content-type"].startswith("application/")


def test_the_vendored_swagger_ui_is_the_recorded_version_with_its_licence() -> None:
    record = json.loads((VENDORED / "VENDORED.json").read_text())
    assert record["package"] == "swagger-ui-dist"
    assert re.fullmatch(r"\d+\.\d+\.\d+", record["version"])
    assert {"LICENSE", "NOTICE", "swagger-ui-bundle.js", "swagger-ui.css"} <= set(record["sha256"])
    for name, digest in record["sha256"].items():
        assert hashlib.sha256((VENDORED / name).read_bytes()).hexdigest() == digest, name
    assert "Apache License" in (VENDORED / "LICENSE").read_text()
    served = {p.name for p in VENDORED.iterdir()}
    assert served == {*record["sha256"], "VENDORED.json"}


def test_no_file_of_the_client_or_docs_loads_anything_from_elsewhere() -> None:
    vendored = (VENDORED, GRAPHIQL_ROOT / "vendor")
    ours = [
        p for p in WEB_ROOT.rglob("*") if p.is_file() and not any(v in p.parents for v in vendored)
    ]
    for path in ours:
        if path.suffix not in (".html", ".js", ".css"):
            continue
        text = path.read_text()
        assert not re.search(r"(?<![\w.])(https?:)?//[\w-]+\.[\w.-]+/", text), path


def test_the_client_modules_import_only_files_that_exist() -> None:
    imports = re.compile(r'(?:import|from)\s*(?:\(\s*)?"(\.{1,2}/[^"]+)"')
    for path in WEB_ROOT.rglob("*.js"):
        if DOCS_ROOT in path.parents or GRAPHIQL_ROOT in path.parents:
            continue
        for target in imports.findall(path.read_text()):
            assert (path.parent / target).resolve().is_file(), f"{path.name}: {target}"


def test_the_large_docs_bundle_travels_compressed(http: Http) -> None:
    response = http.get(
        "/docs/swagger-ui/swagger-ui-bundle.js", headers={"accept-encoding": "gzip"}
    )
    assert response.headers["content-encoding"] == "gzip"
    body = (VENDORED / "swagger-ui-bundle.js").read_bytes()
    assert response.content == body  # decoded by the client
    assert int(response.headers["content-length"]) < len(body) // 2
