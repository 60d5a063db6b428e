"""attachments: uploads and what each message carries

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 16:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import socius.storage.types

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _when(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, socius.storage.types.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("conversation_id", sa.BigInteger(), nullable=True),
        _when("created_at", nullable=False),
        _when("doomed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.create_index("ix_attachments_owner_id", ["owner_id"], unique=False)
        batch_op.create_index(
            "ix_attachments_message_id_created_at", ["message_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_attachments_doomed_at", ["doomed_at"], unique=False)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attachments", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("attachments")
    op.drop_table("attachments")
