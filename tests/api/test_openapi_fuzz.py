"""Schemathesis against ``/openapi.json``, every phase and check, on both stacks.

The run is schemathesis's own engine (what ``st run --checks all`` runs: the examples,
coverage and fuzzing phases, positive and negative data, OPTIONS and undeclared methods,
missing and bad credentials), in-process on the ASGI app. It must find nothing.

- Secured operations carry a live bearer token. Operations that end sessions (logout,
  session revocation, password change, account erasure) act as a second account on a fresh
  session each time, so the main one stays signed in; an account the fuzzer erases is
  registered again. The main account is an administrator (made as ``socius admin
  grant-admin`` makes one), so the /v1/admin routes are fuzzed past their gate.
- Cursors are opaque: the document gives each list's cursor its own ``format``, and the
  fuzzer is taught to make well-formed ones (``CURSOR_STRATEGIES``) with positions
  anywhere in range, so positive data reaches the database at its extremes.
- ``positive_data_acceptance`` holds but for ``STATE_RULES``: refusals that depend on
  stored state or on who is asking, which no schema can express.
- Extra checks: every 4xx is the error envelope of docs/api.md, and a live token never gets 401.

Bounded: a fixed seed, ``MAX_EXAMPLES`` per operation and phase, no example database,
once per stack (slow).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from litestar.testing import TestClient
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conftest import PASSWORD, App, make_app, unique_name
from socius.api.rest.params import CURSOR_FORMATS
from socius.bootstrap import build
from socius.domain.pagination import (
    MAX_INT64,
    ActivityPosition,
    AuditPosition,
    EdgePosition,
    LogPosition,
    MemberPosition,
    NotificationPosition,
    OffsetPosition,
    UserPosition,
    encode_cursor,
)
from socius.services.audit import Actor
from socius.settings import Settings

# Throttles raised (and per-user limits off) so that hundreds of fuzzed logins,
# registrations and sends keep reaching the handlers instead of a 429 (the throttles and
# limits have their own tests).
NO_THROTTLES = {
    "login_max_failures_per_ip_and_account": 1_000_000,
    "login_max_failures_per_account": 1_000_000,
    "login_max_failures_per_ip": 1_000_000,
    "register_max_per_ip_per_hour": 1_000_000,
    "limit_messages": 0,
    "limit_typing": 0,
    "limit_friend_requests": 0,
    "limit_groups": 0,
    "limit_reports": 0,
    "verify_email_max_per_hour": 1_000_000,
    "password_reset_max_per_address_per_hour": 1_000_000,
    "password_reset_max_per_ip_per_hour": 1_000_000,
    "mfa_max_failures_per_account": 1_000_000,
}
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_EXAMPLES = 12
SEED = 20261203
# Operations that end sessions or the account: they run as the second account.
SESSION_ENDING = {
    "POST /v1/auth/logout",
    "DELETE /v1/me",
    "DELETE /v1/me/sessions",
    "DELETE /v1/me/sessions/{session_id}",
    "POST /v1/me/password",
}
# Refusals of schema-valid requests that depend on stored state or on the caller: the
# error code, and why no schema can say it.
STATE_RULES = {
    "cannot_target_self": "the id in the request is the caller's own",
    "weak_password": "a common password, or one containing the username",
    "invalid_reply_to": "reply_to names no message of this conversation",
    "invalid_thread_root": "thread_root_id names a live top-level message of this conversation",
    "direct_conversation": "a direct conversation has no title and fixed members",
    "invalid_role": "the owner's own role cannot change",
    "invalid_token": "the token of a mailed link is one the server issued, and unspent",
    "token_expired": "the token of a mailed link is one the server issued lately",
    "code_or_recovery_code": "exactly one of two optional fields (not expressible here)",
    "empty_body": "an empty body needs attachment_ids, uploads of the caller not sent yet",
    "invalid_code": "an OpenID Connect exchange code is one the server issued, and unspent",
    "invalid_challenge": "a passkey answer signs a challenge the server issued, and unspent",
    "invalid_passkey_response": "a passkey answer is an authenticator's, signed",
    "cannot_report_self": "the user or message reported is the caller's own",
    "invalid_action": "delete_message resolves a report of a message, not of a user",
}
# The main account is an administrator, so that /v1/admin is fuzzed past its gate. What
# it may meet there: refusing to disable itself is ``cannot_target_self`` above; being the
# last administrator is a 409, which positive data may get.

_ids = st.integers(1, MAX_INT64)
_positions = st.integers(0, MAX_INT64)
CURSOR_STRATEGIES: dict[type[Any], st.SearchStrategy[Any]] = {
    LogPosition: st.builds(LogPosition, s=_positions),
    NotificationPosition: st.builds(NotificationPosition, n=_ids),
    EdgePosition: st.builds(EdgePosition, p=_positions),
    MemberPosition: st.builds(MemberPosition, u=_ids),
    ActivityPosition: st.builds(
        ActivityPosition,
        c=_ids,
        t=st.datetimes(
            min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
        ),
    ),
    OffsetPosition: st.builds(OffsetPosition, o=_positions),
    UserPosition: st.builds(UserPosition, u=_ids),
    AuditPosition: st.builds(AuditPosition, a=_ids),
}


def test_every_cursor_format_has_a_strategy() -> None:
    assert set(CURSOR_FORMATS.values()) == set(CURSOR_STRATEGIES)


for _name, _kind in CURSOR_FORMATS.items():
    schemathesis.openapi.format(
        _name, st.one_of(st.just(""), CURSOR_STRATEGIES[_kind].map(encode_cursor))
    )


@pytest.fixture
def fuzz_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**NO_THROTTLES, log_level="warning")


@pytest.fixture
def fuzz_http(fuzz_settings: Settings) -> Iterator[TestClient[Any]]:
    app = make_app(fuzz_settings)
    with TestClient(app.asgi, raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        yield client


@dataclass
class Identity:
    """An account the fuzzer acts as."""

    http: Any  # a `requests`-like client on the app
    username: str = ""
    access_token: str = ""

    def register(self) -> None:
        self.username = unique_name("fuzz")
        response = self.http.post(
            "http://testserver/v1/auth/register",
            json={"username": self.username, "password": PASSWORD},
        )
        assert response.status_code == 201, response.text
        self.access_token = response.json()["access_token"]

    def fresh_session(self) -> str:
        response = self.http.post(
            "http://testserver/v1/auth/login",
            json={"username": self.username, "password": PASSWORD},
        )
        if response.status_code == 401:  # the fuzzer erased this account
            self.register()
            return self.access_token
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


@dataclass
class Tokens:
    """The bearer token each generated case carries. The main account's session stays live
    all run; the other's are disposable (its cases end sessions)."""

    main: Identity
    other: Identity
    lock: threading.Lock = field(default_factory=threading.Lock)

    def for_operation(self, label: str) -> str:
        with self.lock:
            if label in SESSION_ENDING:
                return self.other.fresh_session()
            return self.main.access_token


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


def _error_code(response: Any) -> str | None:
    try:
        body = json.loads(response.content)
        return str(body["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def positive_data_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """``positive_data_acceptance``, but for the refusals listed in ``STATE_RULES``."""
    if response.status_code in (400, 422) and _error_code(response) in STATE_RULES:
        return None
    return positive_data_acceptance(ctx, response, case)  # type: ignore[no-any-return]


_TOKENS: list[Tokens] = []  # the run in progress (one at a time)


def live_token_accepted(ctx: Any, response: Any, case: Any) -> None:
    """A secured operation never answers 401 to the main account's live token."""
    if response.status_code != 401 or not _TOKENS or not _secured(case.operation):
        return
    sent = response.request.headers.get("Authorization", "")
    assert sent != f"Bearer {_TOKENS[-1].main.access_token}", (
        f"{case.method} {case.path} refused a live token: {response.text}"
    )


def _secured(operation: Any) -> bool:
    return bool(operation.definition.raw.get("security"))


for _check in (error_envelope, positive_data_accepted, live_token_accepted):
    schemathesis.check(_check)


def failures_of(stream: Any) -> list[str]:
    """Every failed check of a run, one line each with a curl command to reproduce it."""
    found: list[str] = []
    for event in stream:
        if isinstance(event, events.ScenarioFinished):
            for nodes in event.recorder.checks.values():
                for node in nodes:
                    info = node.failure_info
                    if node.status.value != "failure" or info is None:
                        continue
                    found.append(
                        f"{event.recorder.label}: {node.name}: {info.failure.title}: "
                        f"{info.failure.message.strip()}\n    {info.code_sample.strip()}"
                    )
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            found.append(f"engine error: {event}")
    return found


@pytest.mark.slow
def test_schemathesis_finds_nothing(fuzz_settings: Settings) -> None:
    app: App = make_app(fuzz_settings)
    try:
        with asgi.get_client(app.asgi) as client:
            _run(app, client)
    finally:
        asgi.shutdown_lifespans()


async def _make_admin(app: App, username: str) -> None:
    """What ``socius admin grant-admin`` does: another process's services on the same
    database and cache (the admin check reads the database, so the app sees it at once)."""
    wiring = build(app.wiring.container.settings)
    try:
        admin = wiring.container.admin
        await admin.set_admin(Actor.command_line(), await admin.find_user(username), True)
    finally:
        await wiring.cache.close()
        await wiring.database.dispose()


def _run(app: App, client: Any) -> None:
    main, other = Identity(client), Identity(client)
    main.register()
    other.register()
    asyncio.run(_make_admin(app, main.username))
    tokens = Tokens(main, other)
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {"stateful": {"enabled": True}},
            "checks": {"positive_data_acceptance": {"enabled": False}},
            "workers": 1,
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app.asgi, config=config)

    @schema.auth(refresh_interval=None)
    class LiveToken:
        def get(self, case: Any, context: Any) -> str:
            label = f"{context.operation.method.upper()} {context.operation.path}"
            return tokens.for_operation(label)

        def set(self, case: Any, data: str, context: Any) -> None:
            if _secured(context.operation):
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    _TOKENS.append(tokens)
    try:
        found = failures_of(from_schema(schema).execute())
    finally:
        _TOKENS.remove(tokens)
    assert not found, f"{len(found)} failures:\n" + "\n".join(found)


@pytest.fixture
def identity(fuzz_http: TestClient[Any]) -> Identity:
    who = Identity(fuzz_http)
    who.register()
    return who


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


def test_options_lists_exactly_the_documented_methods(
    fuzz_http: TestClient[Any], identity: Identity
) -> None:
    """``Allow`` names every method the document has for the path, and OPTIONS."""
    document = fuzz_http.get("/openapi.json").json()
    headers = {"Authorization": f"Bearer {identity.access_token}"}
    for path, operations in document["paths"].items():
        url = re.sub(r"\{[^}]+\}", "1", path)
        response = fuzz_http.options(url, headers=headers)
        assert response.status_code == 204, (path, response.text)
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        documented = {
            m.upper() for m in operations if m in {"get", "put", "post", "delete", "patch"}
        }
        assert allowed == documented | {"OPTIONS"}, (path, allowed)


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
