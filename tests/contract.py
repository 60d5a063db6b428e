"""Assertions about the API contract shared by the test modules."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from socius.client import ApiError

__all__ = ["api_error", "assert_error", "bearer"]


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is the contract's error envelope with this status (and code)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert re.fullmatch(r"[a-z][a-z0-9_]*", error["code"])
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["details"], dict)
    if code is not None:
        assert error["code"] == code, error
    return error


def api_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> ApiError:
    """The ApiError that ``call(*args, **kwargs)`` raises."""
    with pytest.raises(ApiError) as info:
        call(*args, **kwargs)
    return info.value


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
