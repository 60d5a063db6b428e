"""The access log's JSON line is built two ways (decision 0041): put together directly
when the request id needs no escaping and no trace ids are added, else encoded from a
dict (`AccessLog._line`). Both must give the same line, to the character."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from socius.observability import access_log
from socius.observability.access_log import AccessLog

NOW = 1_796_000_000.123456  # a fixed clock: both ways stamp the line with time.time()


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    out = io.StringIO()
    logger = logging.getLogger("socius.access")
    level = logger.level
    logger.setLevel(logging.INFO)
    monkeypatch.setattr(access_log, "_log_stream", lambda: out)
    monkeypatch.setattr(access_log.time, "time", lambda: NOW)
    yield out
    logger.setLevel(level)


Case = tuple[str, str, int, float, str | None, str]
CASES: list[Case] = [
    # method, path (route template or raw path), status, seconds, client_ip, request_id
    ("GET", "/v1/users/{user_id:str}", 200, 0.000183, "127.0.0.1", "r-1"),
    ("GET", "/v1/friends", 304, 0.0, None, "abc.DEF_123-x"),
    ("POST", "/v1/friends/requests", 201, 0.0123456, "::1", ""),
    ("PATCH", "/v1/me", 400, 0.5, "203.0.113.7", "A"),
    ("DELETE", "/v1/users/1/follow", 404, 1.0, None, "req"),
    ("GET", "/v1/search", 429, 12.3456789, "10.0.0.1", "x"),
    ("GET", "/v1/boom", 500, 0.25, "127.0.0.1", "r-500"),
    ("GET", "/v1/gateway", 503, 3600.0, "127.0.0.1", "r-503"),
    # a raw path (no route matched) holds whatever the client sent: JSON escapes
    ("GET", '/a"quote\\back/slash', 404, 0.001, "127.0.0.1", "q"),
    ("GET", "/tab\tnew\nline\rcr\x00nul\x1fus\x7fdel", 404, 0.002, None, "c"),
    ("GET", "/ünïcødé/日本/😀/\u2028\u2029", 404, 0.003, "fe80::1%eth0", "u"),
    ("GET", "/v1/users/1?limit=5&cursor=x", 200, 0.004, "127.0.0.1", "qs"),
    ('we"ird', "/", 405, 0.0009994, 'ip"\\', "m"),
    # durations: rounding to the µs, tiny and huge
    ("GET", "/", 200, 0.0000004, None, "t0"),
    ("GET", "/", 200, 0.0000005, None, "t1"),
    ("GET", "/", 200, 1e-9, None, "t2"),
    ("GET", "/", 200, 86_400.0 * 365, None, "t3"),
    ("GET", "/", 200, 1e13, None, "t4"),
    ("GET", "/", 200, 1e20, None, "t5"),  # "1e23" in JSON as msgspec writes it, not "1e+23"
    ("GET", "/", 200, float("inf"), None, "t6"),
    ("GET", "/", 200, float("nan"), None, "t7"),
]


@pytest.mark.parametrize("case", CASES)
def test_the_fast_line_is_the_encoded_line(stream: io.StringIO, case: Case) -> None:
    method, path, status, seconds, client_ip, request_id = case
    log = AccessLog(json=True, flush_bytes=0)  # every line written at once
    log.request(method, path, status, seconds, client_ip, request_id)
    written = stream.getvalue()
    level = logging.ERROR if status >= 500 else logging.INFO
    assert written == log._line(method, path, status, seconds, client_ip, request_id, level)
    fields = json.loads(written)
    assert (fields["method"], fields["path"], fields["status"]) == (method, path, status)
    assert (fields["client_ip"], fields["request_id"]) == (client_ip, request_id)
    if seconds == seconds and seconds < float("inf"):
        assert fields["duration_ms"] == round(seconds * 1000.0, 3)
    assert fields["level"] == ("error" if status >= 500 else "info")
    assert fields["timestamp"] == "2026-11-30T00:53:20.123456Z"


def test_a_request_id_needing_escapes_takes_the_encoded_line(stream: io.StringIO) -> None:
    log = AccessLog(json=True, flush_bytes=0)
    log.request("GET", "/", 200, 0.001, None, 'id"with\\escapes')
    assert json.loads(stream.getvalue())["request_id"] == 'id"with\\escapes'
