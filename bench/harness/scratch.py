"""Where an in-process bench keeps its data, and where it writes its result.

``scratch_settings`` gives the settings overrides of a throw-away stack: a fresh
PostgreSQL database beside the admin URL (dropped afterwards, even after a failure), or
SQLite in a temporary data directory. ``save_result`` writes the result, with the
machine and the time, to ``bench/results/<name>-<UTC time>.json`` and prints it.
"""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.harness.machine import machine_info

__all__ = ["save_result", "scratch_settings"]

ROOT = Path(__file__).resolve().parent.parent.parent


@asynccontextmanager
async def scratch_settings(postgres_admin_url: str, tag: str) -> AsyncIterator[dict[str, Any]]:
    """Overrides for ``database_url`` (PostgreSQL when an admin URL is given) or
    ``data_dir`` (SQLite); everything is removed on the way out."""
    with tempfile.TemporaryDirectory() as tmp:
        if not postgres_admin_url:
            yield {"data_dir": tmp}
            return
        name = f"socius_{tag}_bench_{secrets.token_hex(3)}"
        conn = await asyncpg.connect(postgres_admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        try:
            yield {"database_url": postgres_admin_url.rpartition("/")[0] + "/" + name}
        finally:
            conn = await asyncpg.connect(postgres_admin_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()


def save_result(bench: str, name: str, stack: str, args: Any, result: dict[str, Any]) -> Path:
    """Write ``result`` to ``bench/results/<name>-<UTC time>.json``; print it and where."""
    report = {
        "bench": bench,
        "stack": stack,
        "args": vars(args),
        "result": result,
        "machine": machine_info(ROOT),
        "at": datetime.now(UTC).isoformat(),
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = ROOT / "bench" / "results" / f"{name}-{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print(f"\nsaved {out.relative_to(ROOT)}")
    return out
