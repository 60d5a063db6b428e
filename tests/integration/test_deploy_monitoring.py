"""deploy/grafana and deploy/prometheus: promtool accepts the rules and the configuration
and the rules' unit tests pass; the dashboard is well formed and covers what operators
watch; and every metric the dashboard and the rules query is one that a running
``socius serve`` exports (a renamed metric breaks this test, not the dashboard).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from conftest import PASSWORD, unique_name
from deploy_support import DEPLOY, promtool

DASHBOARD = DEPLOY / "grafana" / "socius.json"
RULES = DEPLOY / "prometheus" / "alerts.yml"
SOCIUS = Path(sys.executable).parent / "socius"

#: Series that Prometheus makes itself, not the servers it scrapes.
PROMETHEUS_MADE = {"up"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}  # fmt: skip


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def test_promtool_accepts_the_rules_and_their_tests_pass():
    result = run_promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["query"]["query"])
    return queries


def rule_queries() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression (or a Grafana label_values query) reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,[^)]*\)", r"\1", expr)
    expr = re.sub(r"\$\w+", "", expr)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?", expr):
        word, call = match.groups()
        if call is None and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def test_the_names_are_read_from_promql_as_prometheus_would():
    assert metric_names(
        "histogram_quantile(0.99, sum by (route, le) (rate(http_request_duration_seconds_bucket"
        '{job=~"$job", status!="503"}[$__rate_interval]))) > 1 and on (job) up == 0'
    ) == {"http_request_duration_seconds_bucket", "up"}
    assert metric_names('label_values(http_requests_total{job=~"$job"}, instance)') == {
        "http_requests_total"
    }


def test_the_dashboard_is_well_formed_and_covers_the_service():
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"]
    assert board["title"] == "socius"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in board["panels"]:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]

    everything = "\n".join(dashboard_queries())
    topics = {
        "request rate": r"rate\(http_requests_total",
        "latency quantiles per route": r"histogram_quantile\(0\.99, sum by \(route, le\)",
        "errors": r'status=~"5\.\."',
        "WebSocket connections": r"ws_connections",
        "delivery": r"ws_events_sent_total",
        "cache hit ratio": r'cache_requests_total\{[^}]*result="hit"',
        "DB pool": r"db_pool_connections",
        "bus errors": r"bus_errors_total",
    }
    for topic, pattern in topics.items():
        assert re.search(pattern, everything), topic


# ------------------------------------------------------------------ against a server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``socius serve`` (embedded, its own data directory); its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIUS_")} | {
        "SOCIUS_DATA_DIR": str(tmp_path_factory.mktemp("served")),
        "SOCIUS_ARGON2_MEMORY_KIB": "1024",
        "SOCIUS_ARGON2_TIME_COST": "1",
        "SOCIUS_PORT": str(port),
        "SOCIUS_WORKERS": "1",  # one process: one registry behind /metrics
    }
    proc = subprocess.Popen(
        [str(SOCIUS), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "socius serve did not start"
            time.sleep(0.1)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def exercise(base: str) -> None:
    """Some of everything the dashboard shows: requests (ok, 4xx, unauthenticated), a
    WebSocket session that receives an event, and look-ups through the caches."""
    with httpx.Client(base_url=base, timeout=10) as http:
        tokens = []
        for _ in range(2):
            response = http.post(
                "/v1/auth/register", json={"username": unique_name("m"), "password": PASSWORD}
            )
            assert response.status_code == 201, response.text
            tokens.append(response.json())
        (a, b) = tokens
        auth_a = {"Authorization": f"Bearer {a['access_token']}"}
        auth_b = {"Authorization": f"Bearer {b['access_token']}"}
        assert http.get("/v1/me", headers=auth_a).status_code == 200
        assert http.get("/v1/me", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert http.get("/no/such/path").status_code == 404
        user_b = b["user"]["id"]
        assert http.get(f"/v1/users/{user_b}", headers=auth_a).status_code == 200

        ws_url = base.replace("http://", "ws://") + "/v1/ws"
        with connect(ws_url) as ws:
            ws.send(json.dumps({"type": "auth", "token": b["access_token"]}))
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
            response = http.post("/v1/friends/requests", json={"user_id": user_b}, headers=auth_a)
            assert response.status_code < 300, response.text
            frame = json.loads(ws.recv(timeout=10))
            assert frame["type"] == "event", frame
        assert http.get("/v1/me", headers=auth_b).status_code == 200


def exported(base: str) -> set[str]:
    """Every series name the server's /metrics offers, including those of families that
    have no sample yet (a labelled counter nobody has incremented, e.g. bus errors)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("_sum", "_count", ""),
        }.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names


def test_every_metric_the_dashboard_and_the_rules_query_is_exported(server):
    exercise(server)
    offered = exported(server)
    queried = set().union(*map(metric_names, dashboard_queries() + rule_queries()))
    assert "http_request_duration_seconds_bucket" in queried  # the parse found them
    assert "db_pool_connections" in queried
    missing = sorted(queried - offered - PROMETHEUS_MADE)
    assert missing == [], f"queried but not exported by socius: {missing}"
    # The ones the test made happen carry samples, not just a declaration.
    text = httpx.get(f"{server}/metrics", timeout=10).text
    for sample in ("ws_events_sent_total", "cache_requests_total", "http_requests_total"):
        assert re.search(rf"^{sample}(\{{[^}}]*\}})? [1-9]", text, re.MULTILINE), sample
