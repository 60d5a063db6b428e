"""The real ``socius`` command: migrate, admin users, worker, version, bad settings."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import socius
from conftest import PASSWORD, REDIS_URL, unique_name
from socius.storage.migrate import head_revision

SOCIUS = Path(sys.executable).parent / "socius"


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert SOCIUS.exists(), f"the socius entry point is missing: {SOCIUS}"
    return subprocess.run(
        [str(SOCIUS), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIUS_")}
    env |= {
        "SOCIUS_ARGON2_MEMORY_KIB": "1024",
        "SOCIUS_ARGON2_TIME_COST": "1",
        "SOCIUS_LOG_JSON": "false",
        "COLUMNS": "200",  # rich tables wide enough not to wrap names
    }
    return env | extra


@pytest.fixture
def cli_env(stack, settings, tmp_path):
    """Environment for the CLI that points at this test's database (and cache)."""
    if stack == "postgres":
        return base_env(
            SOCIUS_DATABASE_URL=settings.database_url,
            SOCIUS_REDIS_URL=REDIS_URL,
            SOCIUS_REDIS_PREFIX=settings.redis_prefix,
        )
    return base_env(SOCIUS_DATA_DIR=str(tmp_path))


def test_migrate_worker_version_and_a_bad_setting(tmp_path):
    data = tmp_path / "fresh"
    env = base_env(SOCIUS_DATA_DIR=str(data))

    result = run("migrate", env=env)
    assert result.returncode == 0, result.stderr
    db = data / "socius.db"
    assert db.is_file()
    with sqlite3.connect(db) as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert revision == head_revision()
    assert {"users", "sessions", "refresh_tokens", "signing_keys"} <= tables

    result = run("worker", "--once", env=env)
    assert result.returncode == 0, result.stderr

    result = run("version", env=env)
    assert result.returncode == 0
    assert result.stdout.strip() == socius.__version__

    result = run("migrate", env=env | {"SOCIUS_PORT": "abc"})
    assert result.returncode == 2
    assert "SOCIUS_PORT" in result.stderr


def refused_soon(http, token: str, path: str, within: float) -> None:
    """The token is refused on ``path`` now, or (when ``within`` > 0) within that many
    seconds: how long a revocation made by another process may take to reach this one."""
    deadline = time.monotonic() + within
    while True:
        response = http.get(path, headers={"Authorization": f"Bearer {token}"})
        if response.status_code == 401:
            return
        assert response.status_code == 200, response.text
        assert time.monotonic() < deadline, f"{path} still accepts a disabled user's token"
        time.sleep(0.05)


def test_admin_create_list_and_disable_user(stack, cli_env, register, sdk, http):
    bystander = register()
    name = unique_name("cli")
    result = run("admin", "create-user", name, "--password", PASSWORD, env=cli_env)
    assert result.returncode == 0, result.stderr

    result = run("admin", "list-users", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert name in result.stdout
    assert bystander.username in result.stdout

    # The running app (same database) sees the account the CLI made.
    user = sdk()
    user.login(name, PASSWORD)
    token = user.access_token
    assert user.me().username == name

    result = run("admin", "disable-user", name, env=cli_env)
    assert result.returncode == 0, result.stderr

    # With Redis the revocation is shared at once; the embedded server (in-process cache)
    # learns of revocations made by other processes by polling the database each second.
    within = 0.0 if stack == "postgres" else 3.0
    for path in ("/v1/me/sessions", f"/v1/users/{bystander.id}", "/v1/me"):
        refused_soon(http, token, path, within)
    response = http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"
    assert bystander.client.me().id == bystander.id

    result = run("admin", "disable-user", name, env=cli_env)
    assert result.returncode == 1
    assert "no_change" in result.stderr or "already" in result.stderr


def test_the_worker_prunes_the_event_logs(stack, cli_env, register, http, app):
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from contract import assert_error
    from socius.services.inbox import cursor_for
    from socius.storage.tables import user_events

    a, b = register(), register()
    b.client.send_friend_request(a.id)
    start = a.client.request("GET", "/v1/sync").json()
    assert start["items"]

    async def age() -> None:  # the worker keeps the real time: make the events old instead
        async with app.wiring.database.primary.begin() as conn:
            await conn.execute(
                update(user_events).values(created_at=datetime.now(UTC) - timedelta(days=2))
            )

    http.blocking_portal.call(age)
    keep_a_day = cli_env | {"SOCIUS_EVENT_LOG_RETENTION_SECONDS": "86400"}
    result = run("worker", "--once", env=keep_a_day)
    assert result.returncode == 0, result.stderr
    assert "pruned" in result.stderr

    response = a.client.raw("GET", "/v1/sync", params={"cursor": cursor_for(0)})
    assert_error(response, 410, "cursor_expired")
    resumed = a.client.request("GET", "/v1/sync").json()
    assert resumed == {"items": [], "next_cursor": start["next_cursor"]}
