"""event logs name their message; logs have a pruned floor

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 09:00:00.000000

``user_events.message_id`` (and ``notifications.message_id``) name the message an event is
about, so that erasing or editing it rewrites every logged copy; ``user_events.created_at``
is indexed for the retention's pruning; ``user_seqs.pruned_to`` is the highest position a
user's log has lost to it.

The data already stored is brought in line: logged message events get their
``message_id`` from their payload, the events of messages deleted before this revision
become tombstones, and the logged copies of edited messages take the current body.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_NOT_NULL = sa.text("message_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("user_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_id", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            "ix_user_events_message_id",
            ["message_id"],
            unique=False,
            sqlite_where=_NOT_NULL,
            postgresql_where=_NOT_NULL,
        )
        batch_op.create_index("ix_user_events_created_at", ["created_at"], unique=False)
    with op.batch_alter_table("user_seqs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pruned_to", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_id", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            "ix_notifications_message_id",
            ["message_id"],
            unique=False,
            sqlite_where=_NOT_NULL,
            postgresql_where=_NOT_NULL,
        )
    _erase_what_the_logs_kept(op.get_bind().dialect.name == "postgresql")


def _erase_what_the_logs_kept(postgres: bool) -> None:
    if postgres:
        statements = [
            "UPDATE user_events SET message_id = (payload -> 'message' ->> 'id')::bigint "
            "WHERE type IN ('message.created', 'message.updated')",
            "UPDATE user_events SET message_id = (payload ->> 'message_id')::bigint "
            "WHERE type IN ('message.deleted', 'reaction.updated')",
            "UPDATE user_events AS e SET type = 'message.deleted', payload = json_build_object("
            "'conversation_id', m.conversation_id::text, 'message_id', m.id::text, "
            "'seq', m.seq) FROM messages AS m "
            "WHERE m.id = e.message_id AND m.deleted_at IS NOT NULL",
            "UPDATE user_events AS e "
            "SET payload = jsonb_set(e.payload::jsonb, '{message,body}', to_jsonb(m.body))::json "
            "FROM messages AS m WHERE m.id = e.message_id AND m.edited_at IS NOT NULL "
            "AND m.deleted_at IS NULL AND e.type IN ('message.created', 'message.updated')",
        ]
    else:
        statements = [
            "UPDATE user_events SET message_id = "
            "CAST(json_extract(payload, '$.message.id') AS INTEGER) "
            "WHERE type IN ('message.created', 'message.updated')",
            "UPDATE user_events SET message_id = "
            "CAST(json_extract(payload, '$.message_id') AS INTEGER) "
            "WHERE type IN ('message.deleted', 'reaction.updated')",
            "UPDATE user_events SET type = 'message.deleted', payload = ("
            "SELECT json_object('conversation_id', CAST(m.conversation_id AS TEXT), "
            "'message_id', CAST(m.id AS TEXT), 'seq', m.seq) "
            "FROM messages AS m WHERE m.id = user_events.message_id) "
            "WHERE message_id IN (SELECT id FROM messages WHERE deleted_at IS NOT NULL)",
            "UPDATE user_events SET payload = json_set(payload, '$.message.body', ("
            "SELECT body FROM messages AS m WHERE m.id = user_events.message_id)) "
            "WHERE type IN ('message.created', 'message.updated') AND message_id IN ("
            "SELECT id FROM messages WHERE edited_at IS NOT NULL AND deleted_at IS NULL)",
        ]
    for statement in statements:
        op.execute(sa.text(statement))


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_message_id")
        batch_op.drop_column("message_id")
    with op.batch_alter_table("user_seqs", schema=None) as batch_op:
        batch_op.drop_column("pruned_to")
    with op.batch_alter_table("user_events", schema=None) as batch_op:
        batch_op.drop_index("ix_user_events_created_at")
        batch_op.drop_index("ix_user_events_message_id")
        batch_op.drop_column("message_id")
