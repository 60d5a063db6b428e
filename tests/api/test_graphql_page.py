"""GraphiQL at GET /graphql in a browser: files of this server only (vendored, recorded,
with their licences), GraphQL answers for anything else."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from litestar.testing import TestClient
from litestar.types import ASGIApp

from socius.api.web import GRAPHIQL_CSP, WEB_ROOT

Http = TestClient[ASGIApp]
VENDOR = WEB_ROOT / "graphiql" / "vendor"


@pytest.fixture
def stack() -> str:
    """These routes read no storage: one stack is enough."""
    return "sqlite"


def test_a_browser_gets_graphiql_from_this_server_only(http: Http) -> None:
    page = http.get("/graphql", headers={"accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == GRAPHIQL_CSP
    links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/graphql/ide/vendor/graphiql.min.js" in links
    for link in links:
        assert link.startswith("/"), link
        response = http.get(link, headers={"accept-encoding": "gzip"})
        assert response.status_code == 200, link
    big = http.get("/graphql/ide/vendor/graphiql.min.js", headers={"accept-encoding": "gzip"})
    assert big.headers["content-encoding"] == "gzip"
    assert int(big.headers["content-length"]) < (VENDOR / "graphiql.min.js").stat().st_size // 3
    for text in (page.text, (WEB_ROOT / "graphiql" / "start.js").read_text()):
        assert not re.search(r"(?<![\w.])(https?:)?//[\w-]+\.[\w.-]+/", text)


def test_a_program_gets_graphql_not_the_page(http: Http) -> None:
    answer = http.get("/graphql", params={"query": "{ __typename }"})
    assert answer.json() == {"data": {"__typename": "Query"}}
    bare = http.get("/graphql", headers={"accept": "application/json"})
    assert bare.status_code == 400
    assert bare.json()["errors"][0]["extensions"]["code"] == "bad_request"
    for path in ("/graphql/ide/vendor/VENDORED.py", "/graphql/ide/../../api/web.py"):
        assert http.get(path).status_code == 404


def test_the_vendored_graphiql_is_the_recorded_version_with_its_licences() -> None:
    record = json.loads((VENDOR / "VENDORED.json").read_text())
    assert set(record["packages"]) == {"graphiql", "react", "react-dom"}
    for name, digest in record["sha256"].items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert {p.name for p in VENDOR.iterdir()} == {*record["sha256"], "VENDORED.json"}
    for package in record["packages"]:
        assert "MIT License" in (VENDOR / f"LICENSE-{package}.txt").read_text()
    assert "sourceMappingURL" not in (VENDOR / "graphiql.min.js").read_text()[-400:]
