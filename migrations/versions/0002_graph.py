"""graph: edges, edge counts, outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 05:33:25.448827
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import socius.storage.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "edge_counts",
        sa.Column("src", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("type", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("src", "type", name=op.f("pk_edge_counts")),
    )
    op.create_table(
        "edges",
        sa.Column("src", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("type", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("dst", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("pos", sa.BigInteger(), nullable=False),
        sa.Column("created_at", socius.storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("src", "type", "dst", name=op.f("pk_edges")),
    )
    with op.batch_alter_table("edges", schema=None) as batch_op:
        batch_op.create_index("ix_edges_src_type_pos", ["src", "type", "pos"], unique=False)

    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", socius.storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_user_id_id", ["user_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_user_id_id")

    op.drop_table("outbox")
    with op.batch_alter_table("edges", schema=None) as batch_op:
        batch_op.drop_index("ix_edges_src_type_pos")

    op.drop_table("edges")
    op.drop_table("edge_counts")
