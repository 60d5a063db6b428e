"""Embedded SQLite locked by another process past the busy timeout (a long ``socius
admin`` command, a backup tool): writes answer 503 ``unavailable`` with ``Retry-After``,
reads go on (WAL), and writes succeed again once the lock is released."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from litestar.testing import TestClient

from conftest import make_app
from socius.client import Client
from socius.storage import engine


def test_a_locked_database_is_503_for_writers_only(stack, make_settings, monkeypatch):
    if stack != "sqlite":
        pytest.skip("the file lock is SQLite's")
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_S", 0.2)  # the default waits 30 s
    settings = make_settings()
    app = make_app(settings)
    with TestClient(app.asgi) as http:  # type: ignore[arg-type]
        alice = Client(http=http)
        alice.register("locked_out", "correct horse battery staple")
        other = sqlite3.connect(Path(settings.data_dir) / "socius.db", isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            response = http.patch(
                "/v1/me",
                json={"display_name": "not now"},
                headers={"Authorization": f"Bearer {alice.access_token}"},
            )
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "unavailable"
            assert int(response.headers["retry-after"]) >= 1
            assert alice.me().display_name != "not now"  # reads go on
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert alice.update_me(display_name="now").display_name == "now"
