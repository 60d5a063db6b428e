"""Schema migrations (Alembic), run from code: by ``socius migrate``, ``serve`` and tests."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from socius.storage.engine import make_engine
from socius.storage.search_schema import apply_search_language

__all__ = [
    "OnApplied",
    "current_revision",
    "head_revision",
    "migrations_dir",
    "pending_revisions",
    "upgrade",
]

_LOCK_ID = 0x50C105  # PostgreSQL advisory lock: one migrator at a time across nodes

#: Told ``(revision, description)`` after each migration step is applied (progress).
OnApplied = Callable[[str, str], None]


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


def pending_revisions(current: str | None) -> list[tuple[str, str]]:
    """``(revision, description)`` of each migration past ``current``, oldest first."""
    scripts = ScriptDirectory.from_config(_config())
    newer = scripts.iterate_revisions("head", current or "base")
    return [(script.revision, script.doc) for script in reversed(list(newer))]


async def upgrade(
    url: str,
    revision: str = "head",
    *,
    on_applied: OnApplied | None = None,
    search_language: str | None = None,
) -> None:
    """Bring the database at ``url`` up to ``revision``. Safe to run from several nodes.
    ``on_applied`` hears of each step as it is applied (inside the one transaction).
    ``search_language``: the PostgreSQL text search configuration messages are indexed in
    (re-indexing them when it changes; docs/search.md)."""
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _LOCK_ID})
                await conn.commit()
            try:
                await conn.run_sync(_run_upgrade, revision, on_applied)
                await conn.commit()
                if search_language is not None and await apply_search_language(
                    conn, search_language
                ):
                    await conn.commit()
            finally:
                if conn.dialect.name == "postgresql":
                    await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})
                    await conn.commit()
    finally:
        await engine.dispose()


def _run_upgrade(connection: Connection, revision: str, on_applied: OnApplied | None) -> None:
    cfg = _config()
    cfg.attributes["connection"] = connection
    if on_applied is not None:
        cfg.attributes["on_version_apply"] = _step_reporter(on_applied)
    command.upgrade(cfg, revision)


def _step_reporter(on_applied: OnApplied) -> Callable[..., None]:
    """Alembic's ``on_version_apply`` callback (keyword arguments only) for ``on_applied``."""

    def report(*, step: Any, **_: Any) -> None:
        script = step.up_revision
        on_applied(step.up_revision_id or "", script.doc if script is not None else "")

    return report


async def current_revision(url: str) -> str | None:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
