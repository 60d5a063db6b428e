"""Fixtures for the SDK's unit tests."""

from __future__ import annotations

import pytest
from fake_socius_api import FakeApi


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()
