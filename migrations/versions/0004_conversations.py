"""conversations, members, messages, reactions, notifications

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 06:10:04.518940
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import socius.storage.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=True),
        sa.Column("owner_id", sa.BigInteger(), nullable=True),
        sa.Column("direct_key", sa.String(length=48), nullable=True),
        sa.Column("message_ttl_seconds", sa.Integer(), nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column(
            "last_message_at", socius.storage.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column("created_at", socius.storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", socius.storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
        sa.UniqueConstraint("direct_key", name=op.f("uq_conversations_direct_key")),
    )
    op.create_table(
        "members",
        sa.Column("conversation_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("joined_at", socius.storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_read_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "user_id", name=op.f("pk_members")),
    )
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.create_index("ix_members_user_id", ["user_id"], unique=False)

    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("sender_id", sa.BigInteger(), nullable=True),
        sa.Column("client_msg_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("reply_to", sa.BigInteger(), nullable=True),
        sa.Column("created_at", socius.storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("edited_at", socius.storage.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", socius.storage.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", socius.storage.types.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint(
            "conversation_id",
            "sender_id",
            "client_msg_id",
            name=op.f("uq_messages_conversation_id_sender_id_client_msg_id"),
        ),
        sa.UniqueConstraint("conversation_id", "seq", name=op.f("uq_messages_conversation_id_seq")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index("ix_messages_sender_id", ["sender_id"], unique=False)

    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", socius.storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("read", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_user_id_id", ["user_id", "id"], unique=False)

    op.create_table(
        "reactions",
        sa.Column("message_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("emoji", sa.String(length=64), nullable=False),
        sa.Column("created_at", socius.storage.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("message_id", "user_id", "emoji", name=op.f("pk_reactions")),
    )
    with op.batch_alter_table("reactions", schema=None) as batch_op:
        batch_op.create_index("ix_reactions_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reactions", schema=None) as batch_op:
        batch_op.drop_index("ix_reactions_user_id")

    op.drop_table("reactions")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_user_id_id")

    op.drop_table("notifications")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_sender_id")
        batch_op.drop_index(batch_op.f("ix_messages_expires_at"))

    op.drop_table("messages")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index("ix_members_user_id")

    op.drop_table("members")
    op.drop_table("conversations")
