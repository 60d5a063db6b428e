"""What tracing costs a request: server CPU µs per ``GET /v1/me``, tracing off and on.

    .venv/bin/python bench/trace_cost.py                      # SQLite, in-process cache
    .venv/bin/python bench/trace_cost.py --postgres postgresql://postgres@127.0.0.1:5432/postgres \\
        --redis redis://127.0.0.1:6379/0

The app (``socius.bootstrap.create_app``, every middleware) is called as an ASGI callable
in this process, one request after another, without HTTP or a server: the figure is the
app's own CPU per request (``time.process_time``, every thread: the span exporter's
too), the median of ``--runs`` rounds of ``--requests`` requests. "on" exports to a local
OTLP/HTTP endpoint that answers at once. Run it from another checkout (``PYTHONPATH``)
to compare commits. With ``--postgres`` a fresh database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg

from socius.bootstrap import create_app
from socius.settings import load_settings
from socius.storage.migrate import upgrade

PASSWORD = "trace-cost bench password 1"  # noqa: S105 (a throwaway account)


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


async def _call(
    app: Any, method: str, path: str, headers: list, body: bytes = b""
) -> tuple[int, bytes]:
    """One request through the ASGI app; its status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def _lifespan(app: Any) -> tuple[asyncio.Task, asyncio.Queue]:
    inbox: asyncio.Queue = asyncio.Queue()
    outbox: asyncio.Queue = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    message = await outbox.get()
    assert message["type"] == "lifespan.startup.complete", message
    return task, inbox


async def measure(overrides: dict[str, Any], requests: int, runs: int) -> list[float]:
    settings = load_settings(
        {},
        argon2_memory_kib=1024,
        argon2_time_cost=1,
        log_json=True,
        log_level="warning",
        **overrides,
    )
    app = create_app(settings)
    task, inbox = await _lifespan(app)
    try:
        json_headers = [(b"content-type", b"application/json"), (b"host", b"bench")]
        name = f"tc_{secrets.token_hex(4)}"
        body = json.dumps({"username": name, "password": PASSWORD}).encode()
        status, _ = await _call(app, "POST", "/v1/auth/register", json_headers, body)
        assert status == 201, status
        status, answer = await _call(app, "POST", "/v1/auth/login", json_headers, body)
        assert status == 200, status
        token = json.loads(answer)["access_token"].encode()
        headers = [(b"authorization", b"Bearer " + token), (b"host", b"bench")]
        for _ in range(200):  # warm: caches, pools, code paths
            assert (await _call(app, "GET", "/v1/me", headers))[0] == 200
        figures = []
        for _ in range(runs):
            start = time.process_time()
            for _ in range(requests):
                await _call(app, "GET", "/v1/me", headers)
            figures.append((time.process_time() - start) / requests * 1e6)
        return figures
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await task


async def _postgres_database(url: str) -> tuple[str, str]:
    name = f"socius_trace_cost_{secrets.token_hex(3)}"
    conn = await asyncpg.connect(url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    base, _, _ = url.rpartition("/")
    return name, f"{base}/{name}"


async def _drop(url: str, name: str) -> None:
    conn = await asyncpg.connect(url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default="")
    parser.add_argument("--redis", default="")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--modes", default="off,on")
    args = parser.parse_args()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{sink.server_address[1]}"
    result: dict[str, Any] = {"requests": args.requests, "runs": args.runs}
    with tempfile.TemporaryDirectory() as data_dir:
        base: dict[str, Any] = {"data_dir": data_dir}
        name = ""
        if args.postgres:
            name, url = asyncio.run(_postgres_database(args.postgres))
            base = {
                "database_url": url,
                "redis_url": args.redis,
                "redis_prefix": f"trace-cost:{secrets.token_hex(4)}:",
            }
        try:
            url = base.get("database_url") or f"sqlite:///{data_dir}/socius.db"
            asyncio.run(upgrade(url))
            for mode in args.modes.split(","):
                overrides = {**base, "otlp_endpoint": endpoint if mode == "on" else ""}
                figures = asyncio.run(measure(overrides, args.requests, args.runs))
                result[mode] = {
                    "cpu_us_per_request": round(statistics.median(figures), 1),
                    "runs": [round(f, 1) for f in figures],
                }
        finally:
            if name:
                asyncio.run(_drop(args.postgres, name))
    result["stack"] = "postgres" if args.postgres else "embedded"
    result["python"] = sys.version.split()[0]
    result["source"] = os.path.dirname(os.path.dirname(__import__("socius").__file__))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
