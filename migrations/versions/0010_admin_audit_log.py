"""audit_log: every administrator action; an index of the administrators

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-05 10:00:00.000000

``users.is_admin`` exists since 0001; the partial index ``ix_users_is_admin`` lets the
last-admin rule find the administrators without reading every account.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import socius.storage.types

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None

_ADMINS = sa.column("is_admin") == sa.true()


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", socius.storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("via", sa.String(length=8), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.BigInteger(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_actor_id_id", ["actor_id", "id"], unique=False)
        batch_op.create_index("ix_audit_log_action_id", ["action", "id"], unique=False)
        batch_op.create_index("ix_audit_log_target_id_id", ["target_id", "id"], unique=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(
            "ix_users_is_admin",
            ["is_admin"],
            unique=False,
            sqlite_where=_ADMINS,
            postgresql_where=_ADMINS,
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_is_admin")
    op.drop_table("audit_log")
