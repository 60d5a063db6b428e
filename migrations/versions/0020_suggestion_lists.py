"""suggestion_lists: each user's precomputed "people you may know" (decision 0028)

Revision ID: 0020
Revises: 0015
Create Date: 2026-12-04 22:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import socius.storage.types

revision = "0020"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suggestion_lists",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("candidates", sa.LargeBinary(), nullable=False),
        sa.Column("computed_at", socius.storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("due_at", socius.storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_suggestion_lists")),
    )
    with op.batch_alter_table("suggestion_lists", schema=None) as batch_op:
        batch_op.create_index("ix_suggestion_lists_due_at", ["due_at"], unique=False)


def downgrade() -> None:
    op.drop_table("suggestion_lists")
