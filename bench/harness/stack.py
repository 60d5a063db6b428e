"""A fresh, throw-away storage stack per bench run: a SQLite data dir, or a PostgreSQL
database (created and dropped with asyncpg) plus a private Redis key prefix."""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

__all__ = ["Stack", "fresh_stack"]


@dataclass
class Stack:
    """Where one bench run keeps its data, and the SOCIUS_* settings that point there."""

    kind: str  # "embedded" | "postgres"
    workdir: Path
    database_url: str = ""  # empty: SQLite in data_dir
    redis_url: str = ""
    redis_prefix: str = ""
    info: dict[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "socius.db"

    def settings_env(self) -> dict[str, str]:
        env = {"SOCIUS_DATA_DIR": str(self.data_dir)}
        if self.database_url:
            env["SOCIUS_DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["SOCIUS_REDIS_URL"] = self.redis_url
            env["SOCIUS_REDIS_PREFIX"] = self.redis_prefix
        return env


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


@asynccontextmanager
async def fresh_stack(
    kind: str, workdir: Path, *, postgres_admin_url: str, redis_url: str, tag: str
) -> AsyncIterator[Stack]:
    """Create the stack, yield it, and always remove it afterwards."""
    stack = Stack(kind=kind, workdir=workdir)
    await asyncio.to_thread(stack.data_dir.mkdir, parents=True, exist_ok=True)
    if kind == "embedded":
        try:
            yield stack
        finally:
            shutil.rmtree(stack.data_dir, ignore_errors=True)
        return

    name = f"socius_bench_{tag}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        stack.info["postgres_version"] = str(await admin.fetchval("SHOW server_version"))
    finally:
        await admin.close()
    stack.database_url = _with_database(postgres_admin_url, name)
    stack.redis_url = redis_url
    stack.redis_prefix = f"socius-bench-{name}:"
    stack.info["postgres_database"] = name
    try:
        r = aioredis.from_url(redis_url)
        try:
            info = await r.info("server")
            stack.info["redis_version"] = str(info.get("redis_version", "?"))
        finally:
            await r.aclose()
        yield stack
    finally:
        admin = await asyncpg.connect(postgres_admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        await _delete_prefix(redis_url, stack.redis_prefix)
        shutil.rmtree(stack.data_dir, ignore_errors=True)


async def _delete_prefix(url: str, prefix: str) -> None:
    r = aioredis.from_url(url)
    try:
        batch: list[bytes] = []
        async for key in r.scan_iter(match=prefix + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await r.delete(*batch)
                batch.clear()
        if batch:
            await r.delete(*batch)
    finally:
        await r.aclose()
