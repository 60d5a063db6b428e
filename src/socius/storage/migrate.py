"""Schema migrations (Alembic), run from code: by ``socius migrate``, ``serve`` and tests."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from socius.storage.engine import make_engine

__all__ = ["current_revision", "head_revision", "migrations_dir", "upgrade"]

_LOCK_ID = 0x50C105  # PostgreSQL advisory lock: one migrator at a time across nodes


def migrations_dir() -> Path:
    """The Alembic scripts: packaged in a wheel, or ``migrations/`` in a source tree."""
    packaged = Path(str(resources.files("socius"))) / "_migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision``. Safe to run from several nodes."""
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _LOCK_ID})
                await conn.commit()
            try:
                await conn.run_sync(_run_upgrade, revision)
                await conn.commit()
            finally:
                if conn.dialect.name == "postgresql":
                    await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})
                    await conn.commit()
    finally:
        await engine.dispose()


def _run_upgrade(connection: Connection, revision: str) -> None:
    cfg = _config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def current_revision(url: str) -> str | None:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
