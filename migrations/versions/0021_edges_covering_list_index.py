"""edges: the list index covers the list and suggestion reads on PostgreSQL (decision 0051)

``ix_edges_src_type_pos`` (src, type, pos) becomes (src, type, pos) INCLUDE (dst,
created_at) on PostgreSQL: a friend-list page, the refresher's newest friends and its
second-degree scan are index-only scans. It replaces the index (same name and key: the
same statements use it), so a write still updates two indexes of edges. SQLite is left
as it is (no INCLUDE; decision 0051).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 04:20:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_INDEX = "ix_edges_src_type_pos"
_KEY = ["src", "type", "pos"]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(_INDEX, table_name="edges")
    op.create_index(_INDEX, "edges", _KEY, postgresql_include=["dst", "created_at"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(_INDEX, table_name="edges")
    op.create_index(_INDEX, "edges", _KEY)
