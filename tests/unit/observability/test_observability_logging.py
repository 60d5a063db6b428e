"""configure_logging, the redact processor, and the front's request ids and access lines
(api/front.py, driven by hand-written ASGI apps)."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from socius.api.front import AuthTable, Front
from socius.observability import (
    REDACTED,
    Metrics,
    configure_logging,
    current_request_id,
    redact,
)
from socius.observability.access_log import AccessLog

Message = dict[str, Any]
SECRET = "eyJhbGciOiJFZERTQSJ9.super-secret-token"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    url_levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    for name, url_level in url_levels.items():
        logging.getLogger(name).setLevel(url_level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def http_scope(
    *, path: str = "/users/42", query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query,
        "headers": headers or [],
        "client": ("203.0.113.7", 40000),
    }


def app_responding(
    status: int = 200,
    template: str | None = "/users/{user_id:int}",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if template is not None:
            scope["path_template"] = template
        await send({"type": "http.response.start", "status": status, "headers": headers or []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def call(app: Any, scope: dict[str, Any]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def response_request_ids(sent: list[Message]) -> list[bytes]:
    start = next(m for m in sent if m["type"] == "http.response.start")
    return [v for k, v in start["headers"] if k == b"x-request-id"]


# --- request ids -------------------------------------------------------------------------


async def _no_token(_token: str) -> Any:
    raise AssertionError("no route here needs a token")


def front(app: Any, access: AccessLog | None = None) -> Front:
    """The served app's front (api/front.py), with no protected route."""
    return Front(
        app,
        table=AuthTable(),
        authenticate=_no_token,
        stats=Metrics().http,
        access_log=access or AccessLog(),
    )


class AccessLines:
    """An access log writing JSON lines into a stream the test reads."""

    def __init__(self) -> None:
        self.out = io.StringIO()
        configure_logging("info", json=True, stream=self.out)
        self.log = AccessLog()

    def lines(self) -> list[dict[str, Any]]:
        self.log.flush()
        return json_lines(self.out)

    def requests(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["event"] == "request"]


@pytest.mark.parametrize("given", [b"abc123", b"req-1.2_3", b"A" * 64])
async def test_a_well_formed_request_id_is_echoed(given: bytes) -> None:
    sent = await call(front(app_responding()), http_scope(headers=[(b"x-request-id", given)]))
    assert response_request_ids(sent) == [given]


async def test_a_request_id_is_generated_when_missing() -> None:
    mw = front(app_responding())
    first = response_request_ids(await call(mw, http_scope()))
    second = response_request_ids(await call(mw, http_scope()))
    assert len(first) == len(second) == 1
    assert re.fullmatch(rb"[0-9a-f]{32}", first[0])
    assert first != second


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"A" * 65,
        b"has space",
        b"abc\n",
        b"abc\r\nSet-Cookie: x=1",
        b"semi;colon",
        "caf\u00e9".encode(),
        b"{{7*7}}",
    ],
)
async def test_a_malformed_request_id_is_replaced(bad: bytes) -> None:
    sent = await call(front(app_responding()), http_scope(headers=[(b"x-request-id", bad)]))
    [echoed] = response_request_ids(sent)
    assert echoed != bad
    assert re.fullmatch(rb"[0-9a-f]{32}", echoed)


async def test_the_app_sees_the_request_id_and_it_is_cleared_after() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["var"] = current_request_id()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await call(front(app), http_scope(headers=[(b"x-request-id", b"r-1")]))

    assert seen == {"var": "r-1"}
    assert current_request_id() is None


async def test_an_existing_response_request_id_header_is_not_duplicated() -> None:
    app = app_responding(headers=[(b"x-request-id", b"from-app"), (b"content-type", b"x")])
    sent = await call(front(app), http_scope(headers=[(b"x-request-id", b"r")]))
    assert response_request_ids(sent) == [b"r"]
    start = sent[0]
    assert (b"content-type", b"x") in start["headers"]


async def test_logs_emitted_inside_the_request_carry_its_id() -> None:
    access = AccessLines()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        structlog.get_logger("socius.test").info("inside")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await call(front(app, access.log), http_scope(headers=[(b"x-request-id", b"r-9")]))

    lines = access.lines()
    assert [(e["event"], e["request_id"]) for e in lines] == [("inside", "r-9"), ("request", "r-9")]


# --- access log ----------------------------------------------------------------------------


async def test_one_access_line_with_route_template_status_duration_and_client() -> None:
    access = AccessLines()
    await call(
        front(app_responding(201), access.log), http_scope(headers=[(b"x-request-id", b"r-2")])
    )

    [line] = access.requests()
    assert line["logger"] == "socius.access"
    assert line["level"] == "info"
    assert line["method"] == "GET"
    assert line["path"] == "/users/{user_id:int}"
    assert line["status"] == 201
    assert line["client_ip"] == "203.0.113.7"
    assert line["request_id"] == "r-2"
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0


async def test_access_log_never_holds_query_strings_or_headers() -> None:
    access = AccessLines()
    scope = http_scope(
        path="/unknown/route",
        query=f"token={SECRET}&password=hunter2".encode(),
        headers=[
            (b"authorization", f"Bearer {SECRET}".encode()),
            (b"cookie", b"session=hunter2"),
            (b"x-request-id", b"r-3"),
        ],
    )
    await call(front(app_responding(404, template=None), access.log), scope)

    [line] = access.requests()
    assert line["path"] == "/unknown/route"  # unmatched: raw path, without the query
    assert line["status"] == 404
    text = access.out.getvalue()
    assert SECRET not in text
    assert "hunter2" not in text
    assert "token=" not in text
    assert "authorization" not in text.lower()


async def test_a_crashing_app_is_logged_as_a_500_error_and_the_error_propagates() -> None:
    access = AccessLines()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await call(front(app, access.log), http_scope())

    [line] = access.requests()
    assert (line["status"], line["level"]) == (500, "error")
    assert current_request_id() is None


async def test_the_access_log_uses_the_raw_path_from_before_routing() -> None:
    access = AccessLines()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["path"] = "/"  # a mount rewrites the path while routing
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await call(front(app, access.log), http_scope(path="/static/x.js"))
    assert access.requests()[0]["path"] == "/static/x.js"


async def test_access_lines_can_be_silenced_by_the_access_logger_level() -> None:
    access = AccessLines()
    logger = logging.getLogger("socius.access")
    logger.setLevel(logging.WARNING)
    try:
        await call(front(app_responding(200), access.log), http_scope())
        await call(front(app_responding(503), access.log), http_scope())
    finally:
        logger.setLevel(logging.NOTSET)
    assert [(e["status"], e["level"]) for e in access.requests()] == [(503, "error")]


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_non_http_scopes_pass_through_untouched(scope_type: str) -> None:
    access = AccessLines()
    seen: list[tuple[Any, Any, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Message:
        return {}

    async def send(message: Message) -> None:
        return None

    scope: dict[str, Any] = {"type": scope_type, "path": "/ws", "headers": []}
    await front(app, access.log)(scope, receive, send)

    assert seen == [(scope, receive, send)]
    assert seen[0][2] is send
    assert access.requests() == []


# --- redaction -----------------------------------------------------------------------------


def test_redact_masks_secret_keys_and_keeps_the_rest() -> None:
    event = {
        "event": "login",
        "user": "ada",
        "password": "hunter2",
        "new_password": "n",
        "current_password": "c",
        "token": "t",
        "access_token": "a",
        "refresh_token": "r",
        "Authorization": "Bearer x",
        "secret": "s",
    }
    out = redact(None, "info", event)
    assert out["event"] == "login"
    assert out["user"] == "ada"
    for key in event.keys() - {"event", "user"}:
        assert out[key] == REDACTED, key


def test_redact_reaches_nested_values_without_mutating_them() -> None:
    body = {"email": "a@example.com", "password": "hunter2", "inner": [{"token": "t"}]}
    out = redact(None, "info", {"event": "x", "body": body, "items": ({"secret": "s"}, 3)})
    assert out["body"] == {
        "email": "a@example.com",
        "password": REDACTED,
        "inner": [{"token": REDACTED}],
    }
    assert out["items"] == ({"secret": REDACTED}, 3)
    assert body["password"] == "hunter2"  # the caller's object is untouched


# --- configure_logging ---------------------------------------------------------------------


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_output_with_utc_timestamp_level_logger_and_redaction() -> None:
    out = io.StringIO()
    configure_logging("info", json=True, stream=out)

    structlog.get_logger("socius.test").info("signed in", user="ada", password="hunter2")
    structlog.get_logger("socius.test").debug("not shown")

    [line] = json_lines(out)
    assert line["event"] == "signed in"
    assert line["level"] == "info"
    assert line["logger"] == "socius.test"
    assert line["user"] == "ada"
    assert line["password"] == REDACTED
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line["timestamp"])
    assert "hunter2" not in out.getvalue()


def test_stdlib_logging_goes_through_the_same_pipeline() -> None:
    out = io.StringIO()
    configure_logging("warning", json=True, stream=out)
    structlog.contextvars.bind_contextvars(request_id="r-5")

    logging.getLogger("sqlalchemy.pool").warning("pool %s exhausted", "primary")
    logging.getLogger("sqlalchemy.pool").info("filtered out")

    [line] = json_lines(out)
    assert line["event"] == "pool primary exhausted"
    assert line["level"] == "warning"
    assert line["logger"] == "sqlalchemy.pool"
    assert line["request_id"] == "r-5"


def test_libraries_logging_urls_are_kept_above_info() -> None:
    out = io.StringIO()
    configure_logging("debug", json=True, stream=out)

    logging.getLogger("httpx").info("HTTP Request: GET http://api/x?access_token=%s", SECRET)
    logging.getLogger("httpcore.http11").debug("send_request_headers %s", SECRET)
    logging.getLogger("httpx").warning("retrying")

    assert SECRET not in out.getvalue()
    assert [line["event"] for line in json_lines(out)] == ["retrying"]


def test_exceptions_are_rendered_in_json() -> None:
    out = io.StringIO()
    configure_logging("info", json=True, stream=out)
    try:
        raise ValueError("bad value")
    except ValueError:
        structlog.get_logger("socius.test").exception("failed")

    [line] = json_lines(out)
    assert line["event"] == "failed"
    assert line["level"] == "error"
    assert "bad value" in json.dumps(line["exception"])


def test_console_mode_is_not_json() -> None:
    out = io.StringIO()
    configure_logging("debug", json=False, stream=out)
    structlog.get_logger("socius.test").debug("hello", token="abc")
    text = out.getvalue()
    assert "hello" in text
    assert REDACTED in text
    assert "abc" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_configuring_twice_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", json=True, stream=first)
    configure_logging("info", json=True, stream=second)

    logging.getLogger("socius.test").info("once")

    assert first.getvalue() == ""
    assert [line["event"] for line in json_lines(second)] == ["once"]
    assert sum(1 for h in logging.getLogger().handlers if h.get_name() == "socius") == 1


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="verbose"):
        configure_logging("verbose", json=True, stream=io.StringIO())


async def test_end_to_end_access_line_in_json_holds_no_secret() -> None:
    access = AccessLines()
    out = access.out
    scope = http_scope(
        query=f"access_token={SECRET}".encode(),
        headers=[(b"authorization", f"Bearer {SECRET}".encode()), (b"x-request-id", b"r-7")],
    )

    await call(front(app_responding(200), access.log), scope)

    [line] = access.lines()
    assert line["logger"] == "socius.access"
    assert line["request_id"] == "r-7"
    assert line["path"] == "/users/{user_id:int}"
    assert SECRET not in out.getvalue()
    assert "Bearer" not in out.getvalue()
