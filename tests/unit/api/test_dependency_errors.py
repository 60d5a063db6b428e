"""A dependency failure that reaches the API is a 503 ``unavailable`` with ``Retry-After``
and the error envelope, never a 500: whatever failed, chosen by the exception's type."""

from __future__ import annotations

import pytest
from litestar import Litestar, get
from litestar.params import FromPath
from litestar.testing import TestClient

from socius.api.errors import exception_handlers
from socius.domain.errors import BusUnavailable, CacheUnavailable, Unavailable

FAILURES: dict[str, Exception] = {
    "unavailable": Unavailable("the database is unavailable; retry shortly", retry_after=3),
    "cache": CacheUnavailable("Error 111 connecting to 127.0.0.1:6379"),
    "bus": BusUnavailable("NATS unreachable"),
    "refused": ConnectionRefusedError(111, "Connect call failed"),
    "timeout": TimeoutError(),
}


@get("/fail/{kind:str}")
async def fail(kind: FromPath[str]) -> None:
    raise FAILURES[kind]


@get("/bug")
async def bug() -> None:
    raise ValueError("a bug")


@pytest.fixture
def client() -> TestClient[Litestar]:
    app = Litestar([fail, bug], exception_handlers=exception_handlers, logging_config=None)
    return TestClient(app)


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_a_failed_dependency_is_503_with_retry_after(client, kind):
    response = client.get(f"/fail/{kind}")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert set(error) == {"code", "message", "details"}
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    assert error["details"]["retry_after"] == retry_after
    if kind == "unavailable":
        assert retry_after == 3
    assert "111" not in error["message"]  # the cause is logged, not shown


def test_anything_else_is_still_a_500(client):
    response = client.get("/bug")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
