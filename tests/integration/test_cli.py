"""The real ``socius`` command: migrate, admin users, worker, version, bad settings, and
the one-line refusals operators get (a port in use, a dependency that does not answer, a
missing data directory, bench without its extras)."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

import socius
from conftest import PASSWORD, REDIS_URL, close_code, require_service, unique_name
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


# ------------------------------------------------------------------ operators' errors


def closed_port() -> int:
    """A port nothing listens on (bound for a moment, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def refused(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """The command failed with one line on stderr, naming each of ``names``; that line."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def serve_briefly(port: int, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``socius serve`` on ``port``; it must exit by itself (a refusal), or it is killed
    and the test fails."""
    proc = subprocess.Popen(
        [str(SOCIUS), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"socius serve on port {port} started instead of refusing")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_serve_refuses_a_port_in_use(tmp_path):
    # Listening as the server does (SO_REUSEPORT), which would let a second one share it.
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve_briefly(port, base_env(SOCIUS_DATA_DIR=str(tmp_path)))
    line = refused(result, f"127.0.0.1:{port}", "in use")
    assert "Traceback" not in result.stderr + result.stdout, line


@pytest.mark.slow
def test_unreachable_dependencies_are_named_on_one_line(tmp_path):
    port = closed_port()
    database = f"postgresql://socius:s3cret@127.0.0.1:{port}/socius"
    env = base_env(SOCIUS_DATABASE_URL=database)
    for command in (["migrate"], ["worker", "--once"], ["admin", "list-users"]):
        line = refused(run(*command, env=env), "SOCIUS_DATABASE_URL", f"127.0.0.1:{port}")
        assert "s3cret" not in line, line
    line = refused(serve_briefly(closed_port(), env), "SOCIUS_DATABASE_URL", f":{port}")
    assert "s3cret" not in line

    embedded = base_env(SOCIUS_DATA_DIR=str(tmp_path))
    redis = f"redis://:s3cret@127.0.0.1:{port}/0"
    line = refused(run("admin", "list-users", env=embedded | {"SOCIUS_REDIS_URL": redis}),
                   "SOCIUS_REDIS_URL", f"127.0.0.1:{port}")  # fmt: skip
    assert "s3cret" not in line
    nats = f"nats://socius:s3cret@127.0.0.1:{port}"
    line = refused(run("worker", "--once", env=embedded | {"SOCIUS_NATS_URL": nats}),
                   "SOCIUS_NATS_URL", f"127.0.0.1:{port}")  # fmt: skip
    assert "s3cret" not in line


def test_a_data_path_under_a_missing_directory_is_refused(tmp_path):
    missing = tmp_path / "no" / "such"
    result = run("migrate", env=base_env(SOCIUS_DATA_DIR=str(missing / "data")))
    assert result.returncode == 2
    refused(result, "SOCIUS_DATA_DIR", str(missing))
    url = f"sqlite:///{missing}/socius.db"
    result = run("admin", "list-users", env=base_env(SOCIUS_DATABASE_URL=url))
    assert result.returncode == 2
    refused(result, "SOCIUS_DATABASE_URL", str(missing))
    assert not (tmp_path / "no").exists()

    # The default data directory is made where the command runs (the README's first step).
    made = subprocess.run(
        [str(SOCIUS), "migrate"], env=base_env(), cwd=tmp_path, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "socius-data" / "socius.db").is_file()


def test_bench_without_its_extras_says_what_to_install(tmp_path):
    root = Path(__file__).resolve().parents[2]
    # matplotlib made unimportable, as where the dev extras are not installed.
    blocked = (
        "import sys; sys.modules['matplotlib'] = None; sys.argv = ['socius', 'bench', 'w4'];"
        "from socius.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocked], env=base_env(), cwd=root, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    line = refused(result, "matplotlib", "pip install")
    assert "Traceback" not in result.stderr, line

    # Without wrk on the PATH.
    result = subprocess.run(
        [str(SOCIUS), "bench", "w4"], env=base_env(PATH=str(tmp_path)), cwd=root,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "apt-get install wrk" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_disable_user_closes_the_users_sockets_at_once(stack, cli_env, app, http, register):
    victim, bystander = register(), register()
    realtime = app.wiring.container.realtime
    assert realtime is not None
    # The periodic re-check of every socket's session is put out of the test's reach:
    # only the revocation notice can close the socket (clustered: published on the bus
    # by the command; embedded: the server's poll of the database, every second).
    realtime.gateway.configure(recheck_interval=3600.0)
    with http.websocket_connect("/v1/ws") as ws, http.websocket_connect("/v1/ws") as other:
        for socket_, account in ((ws, victim), (other, bystander)):
            socket_.send_json({"type": "auth", "token": account.client.access_token})
            assert socket_.receive_json(timeout=10)["type"] == "ready"
        result = run("admin", "disable-user", victim.username, env=cli_env)
        assert result.returncode == 0, result.stderr
        assert close_code(ws) == 4401
        other.send_json({"type": "ping"})
        assert other.receive_json(timeout=10) == {"type": "pong"}


def test_grant_and_revoke_admin_from_the_command_line_are_audited(stack, cli_env, register):
    ada, bob = register(), register()
    result = run("admin", "grant-admin", ada.username, "--reason", "first admin", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{ada.username} is now an administrator"
    assert ada.client.me().is_admin is True

    # The last administrator stays, from the command line too.
    result = run("admin", "revoke-admin", ada.username, env=cli_env)
    assert result.returncode == 1
    assert "last_admin" in result.stderr
    result = run("admin", "grant-admin", bob.id, env=cli_env)  # an id works as well
    assert result.returncode == 0, result.stderr
    result = run("admin", "grant-admin", bob.username, env=cli_env)
    assert result.returncode == 1
    assert "no_change" in result.stderr
    result = run("admin", "revoke-admin", bob.username, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{bob.username} is no longer an administrator"
    result = run("admin", "disable-user", bob.username, "--reason", "spam", env=cli_env)
    assert result.returncode == 0, result.stderr
    result = run("admin", "grant-admin", "nobody_here", env=cli_env)
    assert result.returncode == 1
    assert "user_not_found" in result.stderr

    entries = ada.client.admin.audit(actor="cli").items
    assert [(e.action, e.target_username) for e in entries] == [
        ("user.disable", bob.username),
        ("user.revoke_admin", bob.username),
        ("user.grant_admin", bob.username),
        ("user.grant_admin", ada.username),
    ]
    assert {(e.via, e.actor_id, e.ip, e.request_id) for e in entries} == {("cli", None, None, None)}
    assert entries[0].details == {"reason": "spam", "sessions_revoked": 1}
    assert entries[-1].details == {"reason": "first admin"}

    result = run("admin", "rotate-keys", env=cli_env)
    assert result.returncode == 0, result.stderr
    kid = result.stdout.split()[-1]
    (rotated,) = ada.client.admin.audit(action="keys.rotate").items
    assert (rotated.via, rotated.details, rotated.target_id) == ("cli", {"kid": kid}, None)


# ------------------------------------------------------------------ the command surface


def test_help_and_version_flags():
    env = base_env()
    for args in (
        ["-h"],
        ["--help"],
        ["admin", "-h"],
        ["serve", "-h"],
        ["admin", "list-users", "-h"],
    ):
        result = run(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage: socius" in result.stdout, args

    result = run("--version", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == socius.__version__
    assert result.stderr == ""

    # Options a setting also sets show the default the server would use.
    help_text = run("serve", "--help", env=env).stdout
    for option, default in (("--host", "127.0.0.1"), ("--port", "8080"), ("--workers", "0")):
        line = next(line for line in help_text.splitlines() if option in line)
        rest = help_text[help_text.index(line) :]
        assert f"[default: {default}]" in rest.split("--", 2)[1], (option, help_text)


@pytest.mark.parametrize("args", [["version"], ["--version"], ["-h"], ["serve", "-h"]])
def test_version_and_help_do_not_load_the_server(args):
    # `socius version` took 1.5 s importing the app; what it loads is the measure here.
    heavy = ("sqlalchemy", "litestar", "granian", "alembic", "asyncpg", "redis", "nats",
             "socius.bootstrap", "socius.api", "socius.storage")  # fmt: skip
    probe = (
        "import sys\n"
        "from socius.cli import app\n"
        f"try:\n    app({args!r}, prog_name='socius')\nexcept SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        f"loaded = sorted(m for m in sys.modules if m.startswith({heavy!r}))\n"
        "print('LOADED', ','.join(loaded), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=base_env(), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded = result.stderr.rsplit("LOADED", 1)[1].strip()
    assert loaded == "", f"{args} imported {loaded}"


def test_results_go_to_stdout_and_progress_to_stderr(tmp_path):
    from socius.storage.migrate import pending_revisions

    env = base_env(SOCIUS_DATA_DIR=str(tmp_path))
    result = run("migrate", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"database at revision {head_revision()} (was empty)\n"
    # One progress line per migration, in order, numbered.
    steps = pending_revisions(None)
    progress = [line.strip() for line in result.stderr.splitlines() if "/" in line]
    assert len(progress) == len(steps) >= 2, result.stderr
    for number, (line, (revision, _)) in enumerate(zip(progress, steps, strict=True), 1):
        assert line.startswith(f"[{number}/{len(steps)}] {revision} "), line

    again = run("migrate", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"database at revision {head_revision()} (was {head_revision()})\n"
    assert "up to date" in again.stderr

    name = unique_name("out")
    result = run("admin", "create-user", name, "--password", PASSWORD, env=env)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(rf"created {name} \(\d+\)\n", result.stdout), result.stdout

    result = run("admin", "disable-user", name, env=env)
    assert (result.returncode, result.stdout) == (0, f"{name} is now disabled\n"), result.stderr
    result = run("admin", "rotate-keys", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("new signing key ")

    # Errors are diagnostics: nothing on stdout.
    result = run("admin", "enable-user", "nobody_here", env=env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip()


def test_list_users_piped_and_as_json(tmp_path):
    env = base_env(SOCIUS_DATA_DIR=str(tmp_path))
    del env["COLUMNS"]  # as in a pipe: no terminal width at all
    assert run("migrate", env=env).returncode == 0
    long_email = "someone.with.a.rather.long.address@example.com"
    names = [unique_name("list") for _ in range(3)]
    for name in names:
        result = run("admin", "create-user", name, "--password", PASSWORD,
                     "--email", f"{name}.{long_email}", env=env)  # fmt: skip
        assert result.returncode == 0, result.stderr

    result = run("admin", "list-users", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no spinner in a pipe
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["id", "username", "email", "status", "admin", "created"]
    assert len(lines) == 3
    for name, line in zip(names, lines, strict=True):
        cells = line.split()
        assert cells[1:3] == [name, f"{name}.{long_email}"], line
        # The whole timestamp, not cut to the width of a terminal there is not.
        assert datetime.fromisoformat(cells[-1]).tzinfo is not None, line
        assert not any(ch in line for ch in "│┃━…"), line
    # Columns line up: every cell of a column starts at the same offset.
    assert len({line.index(name) for name, line in zip(names, lines, strict=True)}) == 1

    result = run("admin", "list-users", "--json", env=env)
    assert result.returncode == 0, result.stderr
    page = json.loads(result.stdout)
    assert [u["username"] for u in page["items"]] == names
    assert page["next_after"] is None
    first = page["items"][0]
    assert set(first) >= {"id", "username", "email", "status", "is_admin", "created_at"}
    assert isinstance(first["id"], str)
    assert first["email"] == f"{names[0]}.{long_email}"
    assert (first["status"], first["is_admin"]) == ("active", False)
    assert first["created_at"].endswith("Z")

    # Paging with what the previous page says.
    seen, after = [], None
    while True:
        args = ["admin", "list-users", "--json", "--limit", "2"]
        result = run(*args, *(["--after", after] if after else []), env=env)
        assert result.returncode == 0, result.stderr
        page = json.loads(result.stdout)
        seen += [u["username"] for u in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == names


def test_list_users_on_a_narrow_terminal_keeps_whole_cells(tmp_path):
    env = base_env(SOCIUS_DATA_DIR=str(tmp_path), COLUMNS="40", TERM="xterm")
    assert run("migrate", env=env).returncode == 0
    name = unique_name("tty")
    assert run("admin", "create-user", name, "--password", PASSWORD, env=env).returncode == 0

    output = in_a_terminal(["admin", "list-users"], env)
    assert "listing accounts" in output  # the spinner while it works
    (line,) = [line for line in output.splitlines() if name in line]
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", line), output

    env["COLUMNS"] = "160"
    output = in_a_terminal(["admin", "list-users"], env)
    assert "┃" in output  # wide enough: a table
    assert name in output
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", output), output


def in_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """What ``socius args`` writes with both stdout and stderr on a terminal."""
    main, child = pty.openpty()
    try:
        proc = subprocess.Popen([str(SOCIUS), *args], env=env, stdin=subprocess.DEVNULL,
                                stdout=child, stderr=child)  # fmt: skip
    finally:
        os.close(child)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(main)
        assert proc.wait(timeout=60) == 0
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode())


@pytest.mark.redis
def test_commands_take_a_node_id_of_their_own_from_redis(tmp_path, redis_prefix):
    """With Redis and no SOCIUS_NODE_ID, a command (as a server does) takes its node id
    from the shared counter: in a container every process may be pid 1, so an id derived
    from the pid would collide with a server's (Kubernetes leaves SOCIUS_NODE_ID unset)."""
    import redis

    require_service(REDIS_URL, "redis")
    counter = redis.Redis.from_url(REDIS_URL)
    key = f"{redis_prefix}node_seq"
    counter.set(key, 700)  # far from any pid this test could have
    env = base_env(SOCIUS_DATA_DIR=str(tmp_path), SOCIUS_REDIS_URL=REDIS_URL,
                   SOCIUS_REDIS_PREFIX=redis_prefix)  # fmt: skip
    assert run("migrate", env=env).returncode == 0
    nodes = []
    for _ in range(2):
        result = run("admin", "create-user", unique_name("node"), "--password", PASSWORD, env=env)
        assert result.returncode == 0, result.stderr
        user_id = int(re.search(r"\((\d+)\)", result.stdout).group(1))
        nodes.append((user_id >> 12) & 1023)
    counter.close()
    assert nodes == [701, 702]
