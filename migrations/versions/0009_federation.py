"""federated sign-in and passkeys

federated_identities (OpenID Connect provider identities linked to accounts); passkeys
(WebAuthn credentials); auth_challenges (single-use states, exchange codes and WebAuthn
challenges). Numbered 0009 but applied after 0010 (the branches landed in that order).

Revision ID: 0009
Revises: 0010
Create Date: 2026-12-04 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import socius.storage.types

revision = "0009"
down_revision = "0010"
branch_labels = None
depends_on = None


def _when(name: str, *, nullable: bool) -> sa.Column:
    return sa.Column(name, socius.storage.types.UtcDateTime(timezone=True), nullable=nullable)


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def _user_index(table: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{table}_user_id"), ["user_id"], unique=False)


def upgrade() -> None:
    op.create_table(
        "federated_identities",
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        _when("created_at", nullable=False),
        _when("last_used_at", nullable=True),
        _user_fk("federated_identities"),
        sa.PrimaryKeyConstraint("provider", "subject", name=op.f("pk_federated_identities")),
    )
    _user_index("federated_identities")

    op.create_table(
        "passkeys",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("credential_id", sa.LargeBinary(length=1023), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=1024), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        _when("created_at", nullable=False),
        _when("last_used_at", nullable=True),
        _user_fk("passkeys"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passkeys")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_passkeys_credential_id")),
    )
    _user_index("passkeys")

    op.create_table(
        "auth_challenges",
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=24), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        _when("created_at", nullable=False),
        _when("expires_at", nullable=False),
        _when("used_at", nullable=True),
        _user_fk("auth_challenges"),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_auth_challenges")),
    )
    _user_index("auth_challenges")
    with op.batch_alter_table("auth_challenges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_auth_challenges_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("auth_challenges")
    op.drop_table("passkeys")
    op.drop_table("federated_identities")
