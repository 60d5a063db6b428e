"""edge_counts: a WITHOUT ROWID table on SQLite (decision 0059)

A list page reads three counts of each listed user from ``edge_counts`` by its primary
key (src, type). In a rowid table that key is a separate index: each look-up descends
the index, then the table by rowid. WITHOUT ROWID, the table is that key's b-tree: one
descent, the count in the leaf. The table is rebuilt with its rows (same columns, same
constraint name); PostgreSQL is left as it is (no such choice there: decision 0059).

The W1 bench seed is kept (``keeps_seed``): a run's copy is upgraded when its server
starts (300,000 rows: about a second on SQLite; nothing on PostgreSQL).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 10:45:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

keeps_seed = True

_TABLE = """CREATE TABLE {name} (
	src BIGINT NOT NULL,
	type SMALLINT NOT NULL,
	count BIGINT NOT NULL,
	CONSTRAINT pk_edge_counts PRIMARY KEY (src, type)
){options}"""


def _rebuild(options: str) -> None:
    """edge_counts made again with ``options`` after its definition, its rows kept."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TABLE IF EXISTS edge_counts_rebuilt")
    op.execute(_TABLE.format(name="edge_counts_rebuilt", options=options))
    op.execute(
        "INSERT INTO edge_counts_rebuilt (src, type, count) "
        "SELECT src, type, count FROM edge_counts ORDER BY src, type"
    )
    op.execute("DROP TABLE edge_counts")
    op.execute("ALTER TABLE edge_counts_rebuilt RENAME TO edge_counts")


def upgrade() -> None:
    _rebuild(" WITHOUT ROWID")


def downgrade() -> None:
    _rebuild("")
