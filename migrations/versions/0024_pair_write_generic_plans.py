"""socius_pair_write() on generic plans: its statements planned once per session (decision 0062)

The function of migration 0022 is replaced by the same body with
``SET plan_cache_mode = force_generic_plan``. PL/pgSQL caches a plan per statement and
session, but under the default ``auto`` mode a statement with parameters is planned again
at every call while its custom plans look cheaper than the generic one, and one that reads
its rows from ``unnest`` of array parameters always does: the custom plan sees the arrays'
lengths (2 rows), the generic one assumes 10. So every graph write planned its writes again
(the DELETE joined to ``edges`` dearest): about 10% of the backend's CPU in a follow and up
to a third of an unfollow's or an accept's. Every statement of the function is a look-up
or a write by primary key, whose generic plan is the custom one.

Same signature, same answers, same writes: ``CREATE OR REPLACE``; downgrade puts 0022's
function back (no ``SET``). No table changes: the W1 bench seed is kept (``keeps_seed``).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 10:55:00.000000
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

#: No table, column or index (bench/workloads/w1_seed.py keeps its template).
keeps_seed = True


def _of_0022() -> ModuleType:
    """Migration 0022's module (its ``_CREATE``: the function this one keeps)."""
    path = Path(__file__).with_name("0022_pair_write_function.py")
    spec = importlib.util.spec_from_file_location("socius_migration_0022", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SIGNATURE_END = "LANGUAGE plpgsql VOLATILE AS $$"


def _replace(create: str, settings: str) -> str:
    """0022's ``CREATE FUNCTION`` as ``CREATE OR REPLACE``, with ``settings`` added."""
    assert create.count(_SIGNATURE_END) == 1
    return create.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1).replace(
        _SIGNATURE_END, f"LANGUAGE plpgsql VOLATILE {settings}AS $$", 1
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_replace(_of_0022()._CREATE, "SET plan_cache_mode = force_generic_plan "))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_replace(_of_0022()._CREATE, ""))
