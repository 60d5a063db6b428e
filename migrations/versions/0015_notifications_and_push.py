"""notifications and push: devices, per-kind settings, the VAPID key, consumer positions

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-04 19:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import socius.storage.types

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None


def _when(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, socius.storage.types.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "push_devices",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("endpoint_hash", sa.String(length=64), nullable=False),
        sa.Column("p256dh", sa.String(length=100), nullable=True),
        sa.Column("auth", sa.String(length=32), nullable=True),
        sa.Column("platform", sa.String(length=16), nullable=True),
        _when("created_at", nullable=False),
        _when("last_pushed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_devices")),
        sa.UniqueConstraint("endpoint_hash", name=op.f("uq_push_devices_endpoint_hash")),
    )
    with op.batch_alter_table("push_devices", schema=None) as batch_op:
        batch_op.create_index("ix_push_devices_user_id", ["user_id"], unique=False)
    op.create_table(
        "notification_settings",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("message", sa.Boolean(), nullable=False),
        sa.Column("mention", sa.Boolean(), nullable=False),
        sa.Column("reply", sa.Boolean(), nullable=False),
        sa.Column("reaction", sa.Boolean(), nullable=False),
        _when("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notification_settings")),
    )
    op.create_table(
        "vapid_keys",
        sa.Column("kid", sa.String(length=32), nullable=False),
        sa.Column("private_key_pem", sa.Text(), nullable=False),
        _when("created_at", nullable=False),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_vapid_keys")),
    )
    op.create_table(
        "stream_consumers",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_stream_consumers")),
    )


def downgrade() -> None:
    op.drop_table("stream_consumers")
    op.drop_table("vapid_keys")
    op.drop_table("notification_settings")
    op.drop_table("push_devices")
