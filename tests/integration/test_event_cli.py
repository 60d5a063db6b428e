"""``socius events relay|replay|tail|export`` as an operator runs them, on both stacks:
SQLite with the stream in the database, PostgreSQL + Redis with the stream in JetStream."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import REDIS_URL
from event_support import jetstream_settings
from socius.settings import Settings
from socius.stream.jetstream import JetStreamEventStream

SOCIUS = Path(sys.executable).parent / "socius"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], stack: str) -> Iterator[Settings]:
    if stack == "sqlite":
        yield make_settings()
        return
    made = jetstream_settings(make_settings)
    yield made

    async def drop() -> None:
        stream = JetStreamEventStream(
            made.nats_url,
            stream=made.event_stream_name,
            subject_prefix=made.event_subject_prefix,
        )
        await stream.delete()
        await stream.close()

    asyncio.run(drop())


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIUS_")}
    env |= {
        "SOCIUS_DATA_DIR": str(settings.data_dir),
        "SOCIUS_LOG_JSON": "false",
        "SOCIUS_ARGON2_MEMORY_KIB": "1024",
        "SOCIUS_ARGON2_TIME_COST": "1",
    }
    if settings.database_url:
        env |= {
            "SOCIUS_DATABASE_URL": settings.database_url,
            "SOCIUS_REDIS_URL": REDIS_URL,
            "SOCIUS_REDIS_PREFIX": settings.redis_prefix,
            "SOCIUS_NATS_URL": settings.nats_url,
            "SOCIUS_EVENT_STREAM": "jetstream",
            "SOCIUS_EVENT_STREAM_NAME": settings.event_stream_name,
            "SOCIUS_EVENT_SUBJECT_PREFIX": settings.event_subject_prefix,
        }
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SOCIUS), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _line(proc: subprocess.Popen[str], within: float = 60.0) -> str:
    """The process's next line of output, waiting at most ``within`` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], within)
    assert ready, "no output in time"
    return proc.stdout.readline()


def _create(env: dict[str, str], name: str) -> None:
    made = _run(env, "admin", "create-user", name, "--password", "correct horse battery")
    assert made.returncode == 0, made.stderr


def test_relay_replay_tail_and_export(settings: Settings, tmp_path: Path) -> None:
    env = _env(settings)
    assert _run(env, "migrate").returncode == 0
    for name in ("ada", "bob"):
        _create(env, name)
    relayed = _run(env, "events", "relay", "--once")
    assert relayed.returncode == 0, relayed.stderr
    assert "published 4 event(s)" in relayed.stderr

    replay = _run(env, "events", "replay")
    assert replay.returncode == 0, replay.stderr
    lines = [json.loads(line) for line in replay.stdout.splitlines()]
    assert [(e["position"], e["type"]) for e in lines] == [
        (1, "account.created"),
        (2, "admin.user_create"),
        (3, "account.created"),
        (4, "admin.user_create"),
    ]
    assert lines[0]["data"]["via"] == "admin"
    assert lines[1]["data"]["via"] == "cli"
    later = _run(env, "events", "replay", "--from", "3")
    assert [json.loads(line)["position"] for line in later.stdout.splitlines()] == [3, 4]
    since = _run(env, "events", "replay", "--from", lines[2]["occurred_at"])
    assert [json.loads(line)["position"] for line in since.stdout.splitlines()] == [3, 4]
    bad = _run(env, "events", "replay", "--types", "Nope!")
    assert bad.returncode == 1
    assert "invalid_event_type" in bad.stderr

    # tail: from a position, then what is relayed while it waits, until interrupted.
    tail = subprocess.Popen(
        [str(SOCIUS), "events", "tail", "--from", "2", "--types", "account.*"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert json.loads(_line(tail))["position"] == 3
        _create(env, "cyd")
        assert _run(env, "events", "relay", "--once").returncode == 0
        more = json.loads(_line(tail))
        assert (more["position"], more["type"]) == (5, "account.created")
    finally:
        tail.send_signal(signal.SIGINT)
        tail.wait(timeout=30)

    out = tmp_path / "export"
    exported = _run(env, "events", "export", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "exported 6 event(s)" in exported.stdout
    assert list(out.glob("day=*/event_type=admin.user_create/part-*.parquet"))
    refused = _run(env, "events", "export", "--out", str(out), "--types", "message.*")
    assert refused.returncode == 2
    assert "other parameters" in refused.stderr


def test_export_without_pyarrow_says_what_to_install(tmp_path: Path) -> None:
    # pyarrow made unimportable, as where socius[analytics] is not installed.
    blocked = (
        "import sys; sys.modules['pyarrow'] = None;"
        f"sys.argv = ['socius', 'events', 'export', '--out', {str(tmp_path / 'out')!r}];"
        "from socius.cli import main; main()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIUS_")}
    env["SOCIUS_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run(
        [sys.executable, "-c", blocked],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "pip install 'socius[analytics]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
