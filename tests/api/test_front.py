"""The front (api/front.py): request id, authentication before routing parameters, the
access log line (buffered, sampled) and the HTTP metrics, through the served app."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from conftest import App, make_app
from contract import assert_error, bearer
from socius.observability.logging import configure_logging


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("info", json=True, stream=out)
    yield out
    configure_logging("info", json=False)


def access_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "socius.access"]


def serve(app: App) -> TestClient[Any]:
    return TestClient(app.asgi, raise_server_exceptions=True)  # type: ignore[arg-type]


def test_every_answer_carries_a_request_id_and_a_given_one_is_kept(http, register):
    alice = register()
    me = http.get("/v1/me", headers={**bearer(alice.auth.access_token), "X-Request-ID": "abc-1"})
    assert me.status_code == 200
    assert me.headers["x-request-id"] == "abc-1"
    refused = http.get("/v1/me", headers={"X-Request-ID": "bad id"})
    assert_error(refused, 401, "missing_token")
    made = refused.headers["x-request-id"]
    assert made
    assert made != "bad id"
    assert len(refused.headers.get_list("x-request-id")) == 1
    other = http.get("/healthz").headers["x-request-id"]
    assert other != made


def test_a_protected_route_answers_401_before_looking_at_its_parameters(http):
    # The parameters are wrong too: the token is judged first, as the guard did.
    assert_error(http.get("/v1/users/not-an-id?limit=-5"), 401, "missing_token")
    assert_error(http.get("/v1/friends?limit=1000"), 401, "missing_token")
    assert_error(http.get("/v1/friends/?limit=1000"), 401, "missing_token")
    assert_error(http.get("/v1/me", headers=bearer("garbage")), 401)
    # Routes without the bearer requirement are not touched, unknown paths are 404.
    assert http.get("/healthz").status_code == 200
    assert_error(http.get("/v1/nowhere"), 404)


def test_one_access_line_per_request_in_json(make_settings, log_stream, register):
    app = make_app(make_settings(log_json=True))
    with serve(app) as client:
        token = client.post(
            "/v1/auth/register", json={"username": "front_log_1", "password": "pw-Secret-123!"}
        ).json()["access_token"]
        client.get("/v1/me?secret_query=1", headers={**bearer(token), "X-Request-ID": "r-77"})
    # Written in batches: the lifespan's end flushes what is left.
    lines = access_lines(log_stream)
    me = [line for line in lines if line["request_id"] == "r-77"]
    assert len(me) == 1
    line = me[0]
    assert line["method"] == "GET"
    assert line["path"] == "/v1/me"
    assert line["status"] == 200
    assert line["event"] == "request"
    assert line["level"] == "info"
    assert line["duration_ms"] >= 0
    assert line["timestamp"].endswith("Z")
    assert "secret_query" not in log_stream.getvalue()
    assert token not in log_stream.getvalue()


def test_sampling_keeps_every_error_line(make_settings, log_stream):
    app = make_app(make_settings(log_json=True, access_log_sample_rate=0.0))
    with serve(app) as client:
        for _ in range(5):
            assert client.get("/healthz").status_code == 200
        assert client.get("/v1/me").status_code == 401
    lines = access_lines(log_stream)
    assert [(line["path"], line["status"]) for line in lines] == [("/v1/me", 401)]


def test_requests_are_counted_by_route_template_and_status(http, register):
    alice = register()
    user = register()
    for _ in range(3):
        path = f"/v1/users/{user.auth.user.id}"
        assert http.get(path, headers=bearer(alice.auth.access_token)).status_code == 200
    http.get("/v1/users/1", headers=bearer("garbage"))
    body = http.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/v1/users/{user_id}",status="200"} 3.0' in body
    assert 'http_requests_total{method="GET",route="/v1/users/{user_id}",status="401"} 1.0' in body
    assert "http_request_duration_seconds_bucket{" in body
    assert "http_requests_in_flight" in body
