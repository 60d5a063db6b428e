"""ApiError: built from the contract's error body, with fallbacks and Retry-After."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from socius.client import ApiError, AsyncClient
from socius.client._errors import parse_retry_after


def error_response(status: int, body: object = None, **headers: str) -> httpx.Response:
    if body is None:
        return httpx.Response(status, headers=headers)
    if isinstance(body, bytes):
        return httpx.Response(status, content=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


def test_contract_error_body() -> None:
    body = {
        "error": {
            "code": "username_taken",
            "message": "that username is taken",
            "details": {"field": "username"},
        }
    }
    error = ApiError.from_response(error_response(409, body))
    assert error.status == 409
    assert error.code == "username_taken"
    assert error.message == "that username is taken"
    assert error.details == {"field": "username"}
    assert error.retry_after is None
    assert str(error) == "409 username_taken: that username is taken"


def test_details_and_message_are_optional() -> None:
    error = ApiError.from_response(error_response(401, {"error": {"code": "unauthenticated"}}))
    assert (error.code, error.message, error.details) == ("unauthenticated", "Unauthorized", {})


@pytest.mark.parametrize(
    "body",
    [
        None,
        b"<html>bad gateway</html>",
        b"",
        {"detail": "litestar default shape"},
        {"error": "a string"},
        {"error": {"message": "no code"}},
        [1, 2, 3],
    ],
)
def test_other_bodies_fall_back_to_http_status(body: object) -> None:
    error = ApiError.from_response(error_response(502, body))
    assert error.status == 502
    assert error.code == "http_502"
    assert error.message == "Bad Gateway"
    assert error.details == {}


def test_retry_after_seconds() -> None:
    error = ApiError.from_response(
        error_response(
            429,
            {"error": {"code": "rate_limited", "message": "slow down"}},
            **{"Retry-After": "30"},
        )
    )
    assert error.retry_after == 30.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0.0), ("1.5", 1.5), (" 7 ", 7.0), ("-3", 0.0), ("soon", None), ("", None)],
)
def test_parse_retry_after(value: str, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    seconds = parse_retry_after(format_datetime(when, usegmt=True))
    assert seconds is not None
    assert 100 < seconds <= 120
    past = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(past) == 0.0


def test_pickles() -> None:
    error = ApiError(429, "rate_limited", "slow down", {"a": 1}, 2.0)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (copy.status, copy.code, copy.message, copy.details, copy.retry_after) == (
        429,
        "rate_limited",
        "slow down",
        {"a": 1},
        2.0,
    )


async def test_request_raises_and_raw_does_not() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429,
            json={"error": {"code": "rate_limited", "message": "slow down", "details": {}}},
            headers={"Retry-After": "5"},
        )

    async with httpx.AsyncClient(
        base_url="http://test", transport=httpx.MockTransport(handler)
    ) as http:
        client = AsyncClient(http=http)
        with pytest.raises(ApiError) as caught:
            await client.login("ada", "password123")
        assert (caught.value.status, caught.value.code, caught.value.retry_after) == (
            429,
            "rate_limited",
            5.0,
        )
        response = await client.raw("GET", "/v1/me")
        assert response.status_code == 429
