"""Fixtures for the end-to-end tests: clusters of real ``socius serve`` processes.

They need PostgreSQL and Redis (``SOCIUS_TEST_POSTGRES_URL``, ``SOCIUS_TEST_REDIS_URL``) and,
for the NATS bus, ``SOCIUS_TEST_NATS_URL``; without them the tests are skipped, except
under CI (``CI=true``), where a missing service is an error. The database is created once
per run (migrated with ``socius migrate``) and dropped at the end; every test gets its own
Redis key prefix (tests/conftest.py's ``redis_prefix``, which also removes its keys), so
its nodes share their cache and bus with each other and nobody else.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from conftest import NATS_URL, POSTGRES_URL, REDIS_URL, _execute, require_service
from e2e.cluster import SOCIUS, Cluster

CLUSTER = pytest.StashKey[Cluster]()


def _base_env() -> dict[str, str]:
    """The test runner's environment without any SOCIUS_* setting of its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SOCIUS_")}


@pytest.fixture(scope="session")
def e2e_database() -> Iterator[str]:
    """A fresh PostgreSQL database, migrated by ``socius migrate``; its URL."""
    require_service(POSTGRES_URL, "postgres")
    require_service(REDIS_URL, "redis")
    name = f"socius_e2e_{os.getpid()}_{secrets.token_hex(3)}"
    base, _, _ = POSTGRES_URL.rpartition("/")
    url = f"{base}/{name}"
    asyncio.run(_execute(POSTGRES_URL, f'CREATE DATABASE "{name}"'))
    env = {**_base_env(), "SOCIUS_DATABASE_URL": url, "SOCIUS_LOG_LEVEL": "warning"}
    try:
        # The signing key is made up front: nodes starting together on an empty database
        # may each create their own, and then reject each other's tokens for up to a second
        # (AccessTokens.load_keys takes no lock; _reload_for reloads at most once a second).
        for command in (["migrate"], ["admin", "rotate-keys"]):
            done = subprocess.run(
                [str(SOCIUS), *command], env=env, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, f"socius {command} failed:\n{done.stdout}{done.stderr}"
        yield url
    finally:
        asyncio.run(_execute(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=[pytest.param("nats", marks=pytest.mark.nats), "redis"])
def bus(request: pytest.FixtureRequest) -> str:
    """The event bus between the nodes: NATS, or (without SOCIUS_NATS_URL) Redis pub/sub."""
    if request.param == "nats":
        require_service(NATS_URL, "nats")
    return str(request.param)


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest,
    e2e_database: str,
    redis_prefix: str,
    bus: str,
    tmp_path: Path,
) -> Iterator[Cluster]:
    """Nodes are started by the test (``await cluster.start("a", "b")``) and always killed
    at teardown; a failing test shows every node's output."""
    env = {
        **_base_env(),
        "SOCIUS_DATABASE_URL": e2e_database,
        "SOCIUS_REDIS_URL": REDIS_URL,
        "SOCIUS_REDIS_PREFIX": redis_prefix,
        "SOCIUS_ARGON2_MEMORY_KIB": "1024",
        "SOCIUS_ARGON2_TIME_COST": "1",
        "SOCIUS_LOG_LEVEL": "warning",
        "SOCIUS_AUTO_MIGRATE": "false",
        "SOCIUS_REGISTER_MAX_PER_IP_PER_HOUR": "100000",
        # One sender streams hundreds of messages as fast as the nodes take them (the
        # limits have their own tests).
        "SOCIUS_LIMIT_MESSAGES": "0",
        # The durable event stream in the test database, not in a stream of the shared
        # NATS server that would outlive the test (JetStream has tests of its own).
        "SOCIUS_EVENT_STREAM": "database",
    }
    if bus == "nats":
        env["SOCIUS_NATS_URL"] = NATS_URL
    c = Cluster(env, tmp_path, bus)
    request.node.stash[CLUSTER] = c
    try:
        yield c
    finally:
        c.sweep()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    c = item.stash.get(CLUSTER, None)
    if c is not None and report.failed:
        for node in c.nodes.values():
            report.sections.append((f"socius node {node.name} (:{node.port})", node.output()))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from e2e.browser import ARTIFACTS, Shots

    if Shots.taken:
        terminalreporter.write_line(
            f"browser screenshots: {len(Shots.taken)} in {ARTIFACTS}", bold=True
        )
