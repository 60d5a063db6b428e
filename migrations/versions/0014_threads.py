"""threads: a message's thread root, the root's summary, per-thread read pointers

Revision ID: 0014
Revises: 0016
Create Date: 2026-12-04 19:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import socius.storage.types

revision = "0014"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("thread_root_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("thread_reply_count", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "thread_last_reply_at",
                socius.storage.types.UtcDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("thread_participants", sa.JSON(), nullable=True))
        batch_op.create_index(
            "ix_messages_thread_root_id_seq", ["thread_root_id", "seq"], unique=False
        )
    op.create_table(
        "thread_reads",
        sa.Column("root_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("last_read_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("root_id", "user_id", name=op.f("pk_thread_reads")),
    )
    with op.batch_alter_table("thread_reads", schema=None) as batch_op:
        batch_op.create_index("ix_thread_reads_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("thread_reads")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_thread_root_id_seq")
        batch_op.drop_column("thread_participants")
        batch_op.drop_column("thread_last_reply_at")
        batch_op.drop_column("thread_reply_count")
        batch_op.drop_column("thread_root_id")
