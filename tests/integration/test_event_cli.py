"""``socius events relay|replay|tail|export`` as an operator runs them (embedded)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

SOCIUS = Path(sys.executable).parent / "socius"


def _env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIUS_")}
    return env | {
        "SOCIUS_DATA_DIR": str(data),
        "SOCIUS_LOG_JSON": "false",
        "SOCIUS_ARGON2_MEMORY_KIB": "1024",
        "SOCIUS_ARGON2_TIME_COST": "1",
    }


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SOCIUS), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_relay_replay_tail_and_export(tmp_path: Path) -> None:
    env = _env(tmp_path / "data")
    assert _run(env, "migrate").returncode == 0
    for name in ("ada", "bob"):
        made = _run(env, "admin", "create-user", name, "--password", "correct horse battery")
        assert made.returncode == 0, made.stderr
    relayed = _run(env, "events", "relay", "--once")
    assert relayed.returncode == 0, relayed.stderr
    assert "published 2 event(s)" in relayed.stderr

    replay = _run(env, "events", "replay")
    assert replay.returncode == 0, replay.stderr
    lines = [json.loads(line) for line in replay.stdout.splitlines()]
    assert [(e["position"], e["type"]) for e in lines] == [
        (1, "admin.user_create"),
        (2, "admin.user_create"),
    ]
    assert lines[0]["data"]["via"] == "cli"
    later = _run(env, "events", "replay", "--from", "2")
    assert [json.loads(line)["position"] for line in later.stdout.splitlines()] == [2]
    since = _run(env, "events", "replay", "--from", lines[1]["occurred_at"])
    assert [json.loads(line)["position"] for line in since.stdout.splitlines()] == [2]
    bad = _run(env, "events", "replay", "--types", "Nope!")
    assert bad.returncode == 1
    assert "invalid_event_type" in bad.stderr

    # tail: from a position, then waits for more until interrupted.
    tail = subprocess.Popen(
        [str(SOCIUS), "events", "tail", "--from", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert tail.stdout is not None
        first = [json.loads(tail.stdout.readline())["position"] for _ in range(2)]
        assert first == [1, 2]
    finally:
        tail.send_signal(signal.SIGINT)
        tail.wait(timeout=30)

    out = tmp_path / "export"
    exported = _run(env, "events", "export", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "exported 2 event(s)" in exported.stdout
    assert list(out.glob("day=*/event_type=admin.user_create/part-*.parquet"))
    refused = _run(env, "events", "export", "--out", str(out), "--types", "message.*")
    assert refused.returncode == 2
    assert "other parameters" in refused.stderr
