"""The relay killed with SIGKILL between publishing to JetStream and marking the events
sent: after a new relay has run, a consumer of the JetStream stream sees every event
exactly once (JetStream de-duplicates by ``Nats-Msg-Id`` = the event id), and the outbox
is empty. Both stacks; the relays are real processes."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REDIS_URL, Account, App, make_app
from event_support import jetstream_settings
from socius.settings import Settings
from socius.stream.jetstream import JetStreamEventStream

HERE = Path(__file__).parent
SOCIUS = Path(sys.executable).parent / "socius"
USERS = 12


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return jetstream_settings(make_settings, event_relay_lease_seconds=1)


@pytest.fixture
def app(settings: Settings) -> Iterator[App]:
    made = make_app(settings)
    yield made
    stream = made.wiring.container.events.stream
    assert isinstance(stream, JetStreamEventStream)

    async def drop() -> None:
        await stream.delete()
        await stream.close()

    asyncio.run(drop())


def _env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIUS_")}
    env |= {
        "SOCIUS_LOG_JSON": "false",
        "SOCIUS_NATS_URL": settings.nats_url,
        "SOCIUS_EVENT_STREAM": "jetstream",
        "SOCIUS_EVENT_STREAM_NAME": settings.event_stream_name,
        "SOCIUS_EVENT_SUBJECT_PREFIX": settings.event_subject_prefix,
        "SOCIUS_EVENT_RELAY_LEASE_SECONDS": "1",
        "SOCIUS_NODE_ID": "7",
    }
    if settings.database_url:
        env |= {
            "SOCIUS_DATABASE_URL": settings.database_url,
            "SOCIUS_REDIS_URL": REDIS_URL,
            "SOCIUS_REDIS_PREFIX": settings.redis_prefix,
        }
    else:
        env["SOCIUS_DATA_DIR"] = str(tmp_path)
    return env


def test_a_relay_killed_between_publish_and_mark_loses_and_duplicates_nothing(
    app: App,
    http: Any,
    register: Callable[..., Account],
    settings: Settings,
    tmp_path: Path,
) -> None:
    accounts = [register() for _ in range(USERS)]
    for a, b in itertools.pairwise(accounts):
        a.client.follow(b.id)
    written = USERS + (USERS - 1)  # account.created, graph.followed

    async def outbox() -> int:
        return await app.wiring.container.events.pending()

    assert http.blocking_portal.call(outbox) == written
    env = _env(settings, tmp_path)

    # A relay publishes the first 10 and is killed before it marks them sent.
    hung = subprocess.Popen(
        [sys.executable, str(HERE / "relay_then_hang.py"), "10"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert hung.stdout is not None
        line = hung.stdout.readline()
        assert line.strip() == "published 10", hung.stderr.read() if hung.stderr else line
    finally:
        hung.send_signal(signal.SIGKILL)
        hung.wait(timeout=30)
    assert hung.returncode == -signal.SIGKILL
    assert http.blocking_portal.call(outbox) == written  # none marked sent

    # Another relay, the real command, takes over once the lease has expired.
    done = subprocess.run(
        [str(SOCIUS), "events", "relay", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"published {written} event(s)" in done.stderr
    assert http.blocking_portal.call(outbox) == 0

    # What a consumer of the JetStream stream sees: each event once, in order.
    async def consume() -> tuple[list[Any], int]:
        reader = JetStreamEventStream(
            settings.nats_url,
            stream=settings.event_stream_name,
            subject_prefix=settings.event_subject_prefix,
        )
        try:
            return await reader.read(after=0, limit=1000), await reader.head()
        finally:
            await reader.close()

    seen, head = asyncio.run(consume())
    ids = [item.event.id for item in seen]
    assert len(ids) == written
    assert len(set(ids)) == written
    assert head == written  # JetStream stored no second copy
    assert ids == sorted(ids)
    assert [item.event.type for item in seen].count("account.created") == USERS
