"""message search: an FTS5 index (SQLite) or a tsvector with a GIN index (PostgreSQL)

Revision ID: 0013
Revises: 0014
Create Date: 2026-12-04 19:20:00.000000

The index follows ``messages.body`` by triggers, in the transaction that changes the
message (docs/decisions/0020-message-search.md): a message whose body is cleared (deleted
for everyone, expired, erased with its sender's account) leaves the index at once. The
messages already stored are indexed here.

PostgreSQL indexes in the text search configuration ``socius_search_config()`` answers
('simple' here; ``socius migrate`` / ``serve`` switch it to ``SOCIUS_SEARCH_LANGUAGE``,
re-indexing: socius.storage.search_index.apply_search_language).

SQLite: a later migration that rebuilds ``messages`` (a batch ``ALTER``) drops these
triggers with the old table and must create them again.
"""

from __future__ import annotations

import sqlite3

from alembic import op

revision = "0013"
down_revision = "0014"
branch_labels = None
depends_on = None

_SQLITE = [
    # External content: the index keeps tokens, the text stays in ``messages``. The
    # conversation id is indexed too (one token), so that a search ANDs the caller's
    # conversations into the text match instead of filtering every match afterwards.
    "CREATE VIRTUAL TABLE messages_fts USING fts5(body, conversation_id, content='messages', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages "
    "WHEN new.body IS NOT NULL BEGIN "
    "INSERT INTO messages_fts(rowid, body, conversation_id) "
    "VALUES (new.id, new.body, new.conversation_id); END",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages "
    "WHEN old.body IS NOT NULL BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, body, conversation_id) "
    "VALUES ('delete', old.id, old.body, old.conversation_id); END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF body, conversation_id ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, body, conversation_id) "
    "SELECT 'delete', old.id, old.body, old.conversation_id WHERE old.body IS NOT NULL; "
    "INSERT INTO messages_fts(rowid, body, conversation_id) "
    "SELECT new.id, new.body, new.conversation_id WHERE new.body IS NOT NULL; "
    "END",
    "INSERT INTO messages_fts(rowid, body, conversation_id) "
    "SELECT id, body, conversation_id FROM messages WHERE body IS NOT NULL",
]
# SQLite 3.42+: a removed message's tokens are removed from the index pages themselves,
# not only masked until the next merge.
_SQLITE_SECURE_DELETE = "INSERT INTO messages_fts(messages_fts, rank) VALUES ('secure-delete', 1)"

_POSTGRES = [
    "CREATE FUNCTION socius_search_config() RETURNS regconfig "
    "LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT 'simple'::regconfig $$",
    "ALTER TABLE messages ADD COLUMN search_vector tsvector",
    "CREATE FUNCTION socius_messages_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN "
    "NEW.search_vector := CASE WHEN NEW.body IS NULL THEN NULL "
    "ELSE to_tsvector(socius_search_config(), NEW.body) END; "
    "RETURN NEW; "
    "END $$",
    "CREATE TRIGGER messages_search_vector BEFORE INSERT OR UPDATE OF body ON messages "
    "FOR EACH ROW EXECUTE FUNCTION socius_messages_search_vector()",
    "UPDATE messages SET search_vector = to_tsvector(socius_search_config(), body) "
    "WHERE body IS NOT NULL",
    "CREATE INDEX ix_messages_search_vector ON messages USING gin (search_vector)",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        statements = _POSTGRES
    else:
        statements = list(_SQLITE)
        if sqlite3.sqlite_version_info >= (3, 42):
            statements.append(_SQLITE_SECURE_DELETE)
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        statements = [
            "DROP INDEX ix_messages_search_vector",
            "DROP TRIGGER messages_search_vector ON messages",
            "DROP FUNCTION socius_messages_search_vector()",
            "ALTER TABLE messages DROP COLUMN search_vector",
            "DROP FUNCTION socius_search_config()",
        ]
    else:
        statements = [
            "DROP TRIGGER messages_fts_update",
            "DROP TRIGGER messages_fts_delete",
            "DROP TRIGGER messages_fts_insert",
            "DROP TABLE messages_fts",
        ]
    for statement in statements:
        op.execute(statement)
