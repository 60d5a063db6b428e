"""Fuzz every operation of ``/openapi.json`` with schemathesis, on both stacks.

Schemathesis's own pytest loader (``schemathesis.pytest.from_fixture``) does not work under
pytest 9 (it writes ``Node._nodeid``), so each operation's ``as_strategy()`` (positive and
negative cases) runs under ``@given`` in a pytest subtest. Requests go through a Litestar
``TestClient`` on the real stack. Secured operations carry a pinned, valid bearer token, so
the fuzzer gets past authentication into the handlers; logout gets a fresh session per
example, and an account erased by ``DELETE /v1/me`` is replaced. Login and registration
throttles are raised so fuzzed failures do not turn every later request into a 429.

Checks on every response:
- ``not_a_server_error``: never a 5xx;
- ``status_code_conformance``: the status code is one the document lists;
- ``response_schema_conformance`` / ``response_headers_conformance`` /
  ``content_type_conformance``: the body, headers and media type match the document;
- ``negative_data_rejection``: a request the schema forbids is refused with a 4xx;
- the error envelope of docs/api.md: every 4xx is ``{"error": {"code", "message", "details"}}``;
- a secured operation never answers 401 to a live token.

``positive_data_acceptance`` is left out: schema-valid requests are still refused by rules
the schema does not carry (username characters, password strength, unknown ids).
Bounded: 25 examples per operation and mode, a fixed seed per operation, no example database.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis.errors import Unsatisfiable
from litestar.testing import TestClient
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import PASSWORD, make_app, unique_name
from socius.settings import Settings

# Throttles raised so that hundreds of fuzzed logins and registrations keep reaching the
# handlers instead of a 429 (the throttles have their own tests).
NO_THROTTLES = {
    "login_max_failures_per_account": 1_000_000,
    "login_max_failures_per_ip": 1_000_000,
    "register_max_per_ip_per_hour": 1_000_000,
}
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")
# Operations whose success ends the caller's session: each example gets a fresh one.
SESSION_ENDING = {"POST /v1/auth/logout"}
AUTH_PLACEHOLDER = "Bearer <live access token>"


@dataclass
class Identity:
    """The account the fuzzer acts as; replaced if the fuzzer ever erases it."""

    http: TestClient[Any]
    username: str = ""
    access_token: str = ""

    def register(self) -> None:
        self.username = unique_name("fuzz")
        response = self.http.post(
            "/v1/auth/register", json={"username": self.username, "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        self.access_token = response.json()["access_token"]

    def fresh_session(self) -> str:
        response = self.http.post(
            "/v1/auth/login", json={"username": self.username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


@pytest.fixture
def fuzz_http(make_settings: Callable[..., Settings]) -> Iterator[TestClient[Any]]:
    app = make_app(make_settings(**NO_THROTTLES))
    with TestClient(app.asgi, raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        yield client


@pytest.fixture
def identity(fuzz_http: TestClient[Any]) -> Identity:
    who = Identity(fuzz_http)
    who.register()
    return who


@pytest.fixture
def openapi_schema(fuzz_http: TestClient[Any]) -> BaseSchema:
    response = fuzz_http.get("/openapi.json")
    assert response.status_code == 200
    schema = schemathesis.openapi.from_dict(response.json())
    # A body over the 64 KiB limit is refused with 413 before it is parsed: a rejection too.
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    return schema


def error_envelope(ctx: Any, response: Any, case: Any) -> None:
    """docs/api.md: every error is
    ``{"error": {"code": snake_case, "message": str, "details": {}}}``."""
    if response.status_code < 400:
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(
            f"{case.method} {case.path}: {response.status_code} without a JSON body"
        ) from None
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"{response.status_code} without an error envelope: {body}"
    assert isinstance(error.get("code"), str), error
    assert SNAKE_CASE.match(error["code"]), error
    assert isinstance(error.get("message"), str), error
    assert error["message"], error
    assert isinstance(error.get("details"), dict), error


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    response_headers_conformance,
    content_type_conformance,
    negative_data_rejection,
    error_envelope,
]


def send(http: TestClient[Any], case: Case, token: str | None) -> httpx.Response:
    """Send a generated case through the TestClient, exactly as schemathesis serialized it.

    A secured operation's cases carry the fixed header ``AUTH_PLACEHOLDER`` (so negative
    generation never strips or mangles it); it becomes the live token here.
    """
    kwargs = case.as_transport_kwargs(base_url=str(http.base_url))
    headers = kwargs["headers"]
    if headers.get("Authorization") == AUTH_PLACEHOLDER:
        assert token is not None
        headers["Authorization"] = f"Bearer {token}"
    content: bytes | None = None
    if "json" in kwargs:
        # Escaped like `requests` does, so lone surrogates go over the wire as \udxxx.
        content = json.dumps(kwargs["json"]).encode()
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        content = data.encode() if isinstance(data, str) else data
    assert not kwargs.get("cookies"), "the schema declares no cookies"
    return http.request(
        kwargs["method"],
        kwargs["url"],
        params=kwargs.get("params") or None,
        headers=headers,
        content=content,
    )


FUZZ_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def operations(document: BaseSchema) -> list[APIOperation]:
    found = [result.ok() for result in document.get_all_operations()]
    assert len(found) >= 15, "the OpenAPI document lost its operations"
    return found


def fuzz_operation(
    operation: APIOperation, mode: GenerationMode, http: TestClient[Any], identity: Identity
) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    secured = bool(operation.definition.raw.get("security"))
    ends_session = label in SESSION_ENDING

    fixed = {"Authorization": AUTH_PLACEHOLDER} if secured else None

    @FUZZ_SETTINGS
    @seed(zlib.crc32(f"{mode.value} {label}".encode()))
    @given(case=operation.as_strategy(generation_mode=mode, headers=fixed))
    def run(case: Case) -> None:
        token: str | None = None
        if secured:
            token = identity.fresh_session() if ends_session else identity.access_token
        response = send(http, case, token)
        try:
            case.validate_response(response, checks=CHECKS)
            if secured:
                assert response.request.headers["authorization"] == f"Bearer {token}"
                assert response.status_code != 401, f"{label} refused a live token: {response.text}"
        finally:
            if label == "DELETE /v1/me" and response.is_success:
                identity.register()  # the fuzzer guessed the password: carry on as someone new

    run()


def can_violate(operation: dict[str, Any]) -> bool:
    """Whether a request to this operation can break its schema (the token being pinned).

    A bare string path parameter cannot: any segment is a valid string.
    """
    if operation.get("requestBody"):
        return True
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        constrained = set(schema) - {"type", "description", "title"}
        if parameter["in"] != "path" or schema.get("type") != "string" or constrained:
            return True
    return False


@pytest.mark.parametrize("mode", list(GenerationMode), ids=str)
def test_every_operation_survives_fuzzing(
    mode: GenerationMode,
    openapi_schema: BaseSchema,
    fuzz_http: TestClient[Any],
    identity: Identity,
    subtests: pytest.Subtests,
) -> None:
    """Positive (schema-valid) and negative (schema-violating) requests, every operation."""
    for operation in operations(openapi_schema):
        if mode is GenerationMode.NEGATIVE and not can_violate(operation.definition.raw):
            continue
        with subtests.test(msg=f"{mode} {operation.method.upper()} {operation.path}"):
            try:
                fuzz_operation(operation, mode, fuzz_http, identity)
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise
                # The token is pinned, so an operation whose only input is an unconstrained
                # string (or none at all) has nothing left that could violate the schema.
                pytest.skip("nothing in this request can violate the schema")


def test_secured_operations_refuse_missing_and_bad_tokens(
    fuzz_http: TestClient[Any], identity: Identity
) -> None:
    """Every operation the document marks as secured answers 401 in the error envelope."""
    document = fuzz_http.get("/openapi.json").json()
    secured = [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")
    ]
    assert len(secured) >= 10
    bad = {
        "missing": {},
        "garbage": {"Authorization": "Bearer not-a-jwt"},
        "scheme": {"Authorization": f"Basic {identity.access_token}"},
    }
    for method, path in secured:
        # No body and no query: authentication is checked before validation (a caller
        # without a token learns nothing about the operation's inputs).
        url = re.sub(r"\{[^}]+\}", "1", path)
        for label, headers in bad.items():
            response = fuzz_http.request(method, url, headers=headers)
            assert response.status_code == 401, (method, path, label, response.text)
            assert SNAKE_CASE.match(response.json()["error"]["code"]), response.text


# Text with U+0000 in it: PostgreSQL cannot store or compare it, so it must be refused (or
# found to match nothing) before it reaches a query. Each is a 500 on the postgres stack today.
NUL_REQUESTS = {
    "login-username": ("POST", "/v1/auth/login", {"username": "ada\x00", "password": PASSWORD}),
    "register-email": (
        "POST",
        "/v1/auth/register",
        {"username": "nul_email", "password": PASSWORD, "email": "a\x00@example.org"},
    ),
    "patch-bio": ("PATCH", "/v1/me", {"bio": "a\x00b"}),
    "patch-avatar-url": ("PATCH", "/v1/me", {"avatar_url": "https://example.org/\x00.png"}),
    "patch-display-name": ("PATCH", "/v1/me", {"display_name": "a\x00b"}),
    "search-q": ("GET", "/v1/users/search?q=a%00", None),
    "by-username": ("GET", "/v1/users/by-username/a%00b", None),
}


@pytest.mark.parametrize("name", list(NUL_REQUESTS))
def test_nul_characters_are_refused_not_crashing(
    name: str, fuzz_http: TestClient[Any], identity: Identity
) -> None:
    method, url, body = NUL_REQUESTS[name]
    headers = {"Authorization": f"Bearer {identity.access_token}"}
    response = fuzz_http.request(method, url, json=body, headers=headers)
    assert response.status_code < 500, f"{method} {url} {body!r}: {response.text}"
    if response.status_code >= 400:
        assert SNAKE_CASE.match(response.json()["error"]["code"]), response.text
