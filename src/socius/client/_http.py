"""Request plumbing shared by the async and the sync client."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import quote

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "UNSET",
    "USER_AGENT",
    "Unset",
    "clean_params",
    "segment",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 10.0

try:
    _VERSION = version("socius")
except PackageNotFoundError:  # a source tree that is not installed
    _VERSION = "0.0.0"

USER_AGENT = f"socius-python/{_VERSION}"


def segment(value: str) -> str:
    """`value` quoted for use as one path segment (an id or username from a caller)."""
    return quote(str(value), safe="")


def clean_params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters without the ones set to None."""
    if params is None:
        return None
    return {key: value for key, value in params.items() if value is not None}


class Unset:
    """The type of UNSET: an argument left out (None may mean something else)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()
